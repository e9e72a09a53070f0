"""Stop requests that came by signal, remembered in this process.

The CLI turns SIGTERM into an exception so every ``with``/``finally`` runs. Python cannot deliver an
exception everywhere: raised while a weakref callback or a ``__del__`` runs (the import system's own
locks use one), it is printed as "Exception ignored" and dropped, and the command would go on as if
never asked to stop. So the handler records the request here first, and whoever takes over the
signals next (the engine, when a load starts) acts on a request it finds already made.
"""

from __future__ import annotations

_requested: list[str] = []


def request(reason: str) -> None:
    """Remember a stop asked by a signal (``"terminated"``, ``"interrupted"``)."""
    _requested.append(reason)


def pending() -> str | None:
    """The first stop asked since :func:`clear`, or None."""
    return _requested[0] if _requested else None


def clear() -> None:
    """Forget earlier requests (a new command starts)."""
    _requested.clear()
