"""The demo target's load mix: what its users do, weighted like a real API's traffic."""

from __future__ import annotations

from ..scenario import IntRange, Login, Request, Scenario


def demo_scenario(user: int = 0, seed: int = 0, per_user: bool = False) -> Scenario:
    """A read-heavy mix over the demo API, logged in as seeded user ``user`` (or, with
    ``per_user``, virtual user k of a closed-model run as seeded user k).

    Weights: mostly notification reads and post listings (the naive N+1 listing beside the eager
    one), some writes, the cached report. Notification ids are drawn across the whole table, so
    some belong to other users and answer 404: accepted, as a real client would see them.
    """
    from .seed import credentials

    def login_body(vu: int) -> dict[str, str]:
        email, password = credentials(vu % 1000)
        return {"email": email, "password": password}

    return Scenario(
        name="demo",
        seed=seed,
        login=Login("/auth/login", login_body if per_user else login_body(user)),
        requests=[
            Request("health", "GET", "/health", weight=1, auth=False),
            Request("notifications", "GET", "/api/notifications?limit=20", weight=6),
            Request("notification", "GET", "/api/notifications/{nid}", weight=4,
                    vars={"nid": IntRange(1, 12000)}, expect=(200, 404)),
            Request("create_notification", "POST", "/api/notifications", weight=1,
                    json={"kind": "mention", "title": "Load test mention", "body": "You were mentioned"}),
            Request("posts_naive", "GET", "/api/posts?limit=10", weight=3, auth=False),
            Request("posts_eager", "GET", "/api/posts?limit=10&eager=1", weight=3, auth=False),
            Request("report", "GET", "/api/reports/activity", weight=2),
        ],
    )
