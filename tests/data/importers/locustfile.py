"""The Locust load used for the fixture files: three GET endpoints of the perfbench demo target.

Also writes Locust's per-request log (locust.contrib.csv_request_logger) to $LOCUST_REQUEST_LOG.
"""

import os

from locust import HttpUser, constant_pacing, events, task
from locust.contrib.csv_request_logger import CsvRequestLogger

_log = CsvRequestLogger(os.environ.get("LOCUST_REQUEST_LOG", "locust_requests.csv"))


@events.init.add_listener
def _on_init(environment, **kwargs):
    _log.register(environment)


class DemoUser(HttpUser):
    wait_time = constant_pacing(0.2)

    @task(1)
    def health(self):
        self.client.get("/health", name="health")

    @task(2)
    def posts_naive(self):
        self.client.get("/api/posts?limit=10", name="posts_naive")

    @task(2)
    def posts_eager(self):
        self.client.get("/api/v2/posts?limit=10", name="posts_eager")
