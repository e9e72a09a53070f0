"""Where a statement came from: the first frame of the service's own code that issued it.

A frame is a library's when its file is in the standard library, in an installed distribution
(``site-packages``, ``dist-packages``, the interpreter's prefixes), generated (``<string>``,
``<frozen ...>``), or perfbench's own (the agent's hooks; the demo service under ``perfbench/demo``
is service code). The first frame that is none of these is the call site. Decisions are memoised per
file, so a walk costs a few hundred nanoseconds; the agent walks once per fingerprint per endpoint.

SQLAlchemy's asyncio layer runs the statement in a greenlet whose stack starts inside SQLAlchemy: when
the walk finds no service frame there, it goes on in the greenlet's parent (suspended in the
``await`` that issued the statement), which leads back to the service's code.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from types import FrameType

_PERFBENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_SERVICE_INSIDE_PERFBENCH = _PERFBENCH + "demo" + os.sep  # the demo is a service, not a library


def _library_roots() -> tuple[str, ...]:
    roots = set()
    for name in ("stdlib", "platstdlib", "purelib", "platlib"):
        with_sep = sysconfig.get_paths().get(name)
        if with_sep:
            roots.add(os.path.abspath(with_sep) + os.sep)
    for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}:
        roots.add(os.path.join(os.path.abspath(prefix), "lib") + os.sep)
    return tuple(sorted(roots))


_ROOTS = _library_roots()
_MARKERS = (os.sep + "site-packages" + os.sep, os.sep + "dist-packages" + os.sep)
_is_library: dict[str, bool] = {}
_display: dict[str, str] = {}
MAX_FILES = 10_000  # bound on the memo (a service that generates code per request would grow it)


def is_library(filename: str) -> bool:
    """Whether ``filename`` (a code object's ``co_filename``) is library code, not the service's."""
    known = _is_library.get(filename)
    if known is None:
        if len(_is_library) >= MAX_FILES:
            _is_library.clear()
        path = filename if filename.startswith("<") else os.path.abspath(filename)
        known = (filename.startswith("<") or any(m in path for m in _MARKERS)
                 or (path.startswith(_PERFBENCH) and not path.startswith(_SERVICE_INSIDE_PERFBENCH))
                 or path.startswith(_ROOTS))
        _is_library[filename] = known
    return known


def display_path(filename: str) -> str:
    """``filename`` relative to the working directory when it is inside it, else as it is."""
    shown = _display.get(filename)
    if shown is None:
        if len(_display) >= MAX_FILES:
            _display.clear()
        try:
            rel = os.path.relpath(filename)
        except ValueError:  # another drive (Windows)
            rel = filename
        shown = _display[filename] = filename if rel.startswith("..") else rel
    return shown


def _first_service_frame(frame: FrameType | None) -> FrameType | None:
    while frame is not None:
        if not is_library(frame.f_code.co_filename):
            return frame
        frame = frame.f_back
    return None


def find(skip: int = 1) -> tuple[str, str] | None:
    """The call site of the caller's caller...: ``("path/to/file.py:57", "function")``, or None when every
    frame is a library's. ``skip``: frames to skip first (this function's caller by default)."""
    try:
        frame: FrameType | None = sys._getframe(skip + 1)
    except ValueError:
        return None
    found = _first_service_frame(frame)
    if found is None:
        greenlet = sys.modules.get("greenlet")
        current = greenlet.getcurrent() if greenlet is not None else None
        hops = 0
        while found is None and current is not None and current.parent is not None and hops < 8:
            hops += 1
            current = current.parent
            found = _first_service_frame(current.gr_frame)
    if found is None:
        return None
    return f"{display_path(found.f_code.co_filename)}:{found.f_lineno}", found.f_code.co_name
