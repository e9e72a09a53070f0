"""Whether two measurements can be compared at all: machines, versions, tools, targets, load shapes."""

from __future__ import annotations

from typing import Any

from ..importers.base import Measurements

MACHINE_KEYS = ("node", "machine", "cpu_count", "implementation", "os")


def _minor(version: Any) -> str | None:
    if not version:
        return None
    return ".".join(str(version).split(".")[:2])


def compatibility_warnings(base: Measurements, cur: Measurements) -> list[str]:
    """Every reason to distrust this comparison, one line each (empty when none is known)."""
    out = []
    if base.source != cur.source and {base.source, cur.source} != {"perfbench", "baseline"}:
        out.append(f"different tools: the baseline was measured by {base.source}, the current by {cur.source}; "
                   "they time requests differently (e.g. from the planned or from the actual send)")
    mb, mc = base.machine, cur.machine
    for label, m in (("baseline", base), ("current", cur)):
        if not m.machine:
            out.append(f"machine unknown for the {label} ({m.source} output does not record it): cannot check "
                       "that both ran on the same machine")
    if mb and mc:
        diffs = [f"{k} {mb.get(k)!r} vs {mc.get(k)!r}" for k in MACHINE_KEYS
                 if mb.get(k) is not None and mc.get(k) is not None and mb.get(k) != mc.get(k)]
        if diffs:
            out.append("DIFFERENT MACHINES: " + "; ".join(diffs) + ": a difference may be the machine's, not the code's")
        for key in ("python", "perfbench"):
            vb = mb.get(key) or (base.meta.get("versions") or {}).get(key)
            vc = mc.get(key) or (cur.meta.get("versions") or {}).get(key)
            if _minor(vb) and _minor(vc) and _minor(vb) != _minor(vc):
                out.append(f"DIFFERENT {key.upper()} VERSIONS: {vb} vs {vc}")
    tb, tc = base.meta.get("target"), cur.meta.get("target")
    if tb and tc and tb != tc and _hostless(tb) != _hostless(tc):
        out.append(f"different targets: {tb} vs {tc}")
    sb, sc = base.meta.get("shape") or {}, cur.meta.get("shape") or {}
    if sb and sc:
        keys = ("model", "kind", "params")
        if any(sb.get(k) != sc.get(k) for k in keys):
            out.append(f"different load shapes: {_shape(sb)} vs {_shape(sc)}; throughput and latency depend on it")
    for label, m in (("baseline", base), ("current", cur)):  # a run saved before the generator block was kept
        if m.meta.get("saturated") and not m.meta.get("generator"):
            out.append(f"the load generator saturated in the {label} run: part of its latency is the generator's")
    return out


def _hostless(url: str) -> str:
    """A loopback URL without its port (ports are picked at random for each demo target)."""
    from urllib.parse import urlsplit

    u = urlsplit(url)
    return f"{u.scheme}://{u.hostname}{u.path}"


def _shape(s: dict[str, Any]) -> str:
    return f"{s.get('model')} {s.get('kind')} {s.get('params')}"
