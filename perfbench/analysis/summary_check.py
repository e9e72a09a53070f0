"""The shape a summary.json must have before it is read (a file edited by hand, or another tool's)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import RunDirError
from ..rundir import READ_VERSIONS, SCHEMA_VERSION


def check_summary(path: Path, summary: dict[str, Any]) -> dict[str, Any]:
    """``summary`` (read from ``path``) if it has the shape of a summary.json, else RunDirError."""
    version = summary.get("schema_version", SCHEMA_VERSION)
    if version not in READ_VERSIONS:
        raise RunDirError(f"{path}: schema_version {version!r} is not one this perfbench reads (it reads "
                          f"{', '.join(map(str, READ_VERSIONS))}); left as it is")
    problems = []

    def block(where: str, b: Any) -> None:
        if not isinstance(b, dict):
            problems.append(f"{where} is not an object")
            return
        for key in ("latency_ms", "errors_by_kind", "service_ms"):
            if key in b and not isinstance(b[key], dict):
                problems.append(f"{where}.{key} is not an object")
        for key in ("count", "errors", "rps", "error_rate", "bytes"):
            if b.get(key) is not None and (not isinstance(b[key], int | float) or isinstance(b[key], bool)):
                problems.append(f"{where}.{key} is not a number")
        for key in ("latency_ms", "errors_by_kind"):
            values = b.get(key)
            if isinstance(values, dict) and any(v is not None and (not isinstance(v, int | float) or isinstance(v, bool))
                                                for v in values.values()):
                problems.append(f"{where}.{key} holds a value that is not a number")

    endpoints = summary.get("endpoints", {})
    if not isinstance(endpoints, dict):
        problems.append("endpoints is not an object")
    else:
        for name, b in endpoints.items():
            block(f"endpoints.{name}", b)
    block("overall", summary.get("overall", {}))
    for key, typ in (("generator", dict), ("notes", list), ("slo", list), ("status_counts", dict)):
        if key in summary and not isinstance(summary[key], typ):
            problems.append(f"{key} is not {'an object' if typ is dict else 'a list'}")
    if isinstance(summary.get("generator"), dict):
        gen = summary["generator"]
        if not isinstance(gen.get("lag_ms", {}), dict) or not isinstance(gen.get("saturation_reasons", []), list):
            problems.append("generator.lag_ms or generator.saturation_reasons has the wrong type")
    if isinstance(summary.get("slo"), list) and not all(isinstance(r, dict) for r in summary["slo"]):
        problems.append("slo holds an entry that is not an object")
    if problems:
        raise RunDirError(f"{path}: not a perfbench summary ({'; '.join(problems[:3])}); left as it is "
                          f"(perfbench summary --recompute writes it again from the rows)")
    return summary
