"""Plans in text form, as the command line takes them: durations, k6-style stages, think times."""

from __future__ import annotations

import math

from ..errors import ConfigError
from .closed_plans import Constant, Think, Uniform


def parse_duration(text: str) -> float:
    """``"30"``, ``"30s"``, ``"2m"``, ``"1h"`` or ``"500ms"`` as seconds."""
    t = text.strip().lower()
    for suffix, factor in (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)):
        if t.endswith(suffix):
            t, mult = t[: -len(suffix)], factor
            break
    else:
        mult = 1.0
    try:
        value = float(t) * mult
    except ValueError:
        raise ConfigError(f"duration {text!r}: a number of seconds, or with a unit: 500ms, 30s, 2m, 1h") from None
    if not value > 0 or value == math.inf:
        raise ConfigError(f"duration {text!r} must be > 0 and finite")
    return value


def parse_stages(text: str) -> list[tuple[float, float]]:
    """k6-style stages ``"30s:100,1m:100,30s:0"`` as ``[(30, 100), (60, 100), (30, 0)]``."""
    out, problems = [], []
    for i, part in enumerate(p for p in text.split(",") if p.strip()):
        if ":" not in part:
            problems.append(f"stage {i + 1} {part.strip()!r}: write DURATION:TARGET, e.g. 30s:100")
            continue
        d, target = part.split(":", 1)
        try:
            duration = parse_duration(d)
            value = float(target)
            if value < 0:
                raise ValueError
            out.append((duration, value))
        except ConfigError as exc:
            problems.append(f"stage {i + 1}: {exc}")
        except ValueError:
            problems.append(f"stage {i + 1}: target {target.strip()!r} must be a number >= 0")
    if not out and not problems:
        problems.append("no stages given, e.g. 30s:100,1m:100,30s:0")
    if problems:
        raise ConfigError("bad --stages", problems)
    return out


def parse_think(text: str) -> Think:
    """``"0.5"`` constant, ``"1..3"`` uniform between 1 and 3 seconds."""
    try:
        if ".." in text:
            lo, hi = text.split("..", 1)
            return Uniform(parse_duration(lo) if lo.strip() not in ("0", "0.0") else 0.0, parse_duration(hi))
        return Constant(0.0 if text.strip() in ("0", "0.0") else parse_duration(text))
    except ConfigError:
        raise ConfigError(f"think time {text!r}: SECONDS (e.g. 0.5) or LOW..HIGH (e.g. 1..3)") from None

