"""The breaking-point search: step the arrival rate up until the service breaks.

``stress(target, scenario, start=50, step=50, step_duration=10, slos=["p95<300ms", "errors<1%"])``
runs one open-model step after another at rising rates (``start``, then ``+step`` or
``*factor``), each a complete run directory under ``<stress dir>/steps/``. After each step its
SLOs are checked; the search stops at the first step that breaks one, or whose generator
saturated (then the limit found is the generator's, not the server's, and the verdict says so),
or at ``max_rate``. The result names the breaking point and the highest rate that held, with the
evidence of every step, in ``stress.json``.

Layout of a stress directory (``data/runs/<id>/``)::

    meta.json     kind "stress", schema_version, target, scenario, parameters, machine
    stress.json   the verdict and one row of evidence per step
    steps/<NN>-<rate>rps/   a run directory per step (the usual contract)

Each step opens fresh connections, so its first requests pay connection set-up: the first
``warmup_s`` seconds of every step (default 2 s, at most a quarter of the step) are left out of its
SLO check and its figures (the step's run directory keeps every request).

A step breaks an upper limit on a share of requests (``errors<1%``, ``http_5xx<0.5%``) only when the
share's 95% interval (Wilson) lies above the limit: a few failures in a short step can read 1.2%
by chance where the service fails 0.8% of requests at every rate. Such a step is "not clearly
broken": it is kept in the step's ``undecided`` list, counted as held, and the search goes on.

When the load generator saturates before any SLO breaks, the limit found is the generator's: the
verdict then has ``limit`` "generator", ``generator_limit_rps`` the rate it could not keep, and
``breaking_rps`` None (the service did not break); ``limit`` is "service" when an SLO broke and
None when nothing stopped the search.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import shapes
from ..analysis.results import Run
from ..analysis.slo import broken, evaluate, parse_all, within_noise
from ..analysis.trends import summary_after_warmup, warmup_for
from ..errors import ConfigError
from ..load import run_load
from ..rundir import RunDir, machine_info, new_run_id, read_json, utc_now_iso, write_json
from ..scenario import Scenario

STRESS = "stress.json"
DEFAULT_SLOS = ("p99<1s", "errors<1%")
WARMUP_S = 2.0  # seconds of each step left out of its SLO check (at most a quarter of the step)


def rates(start: float, *, step: float | None = None, factor: float | None = None, max_rate: float,
          max_steps: int = 100) -> list[float]:
    """The offered rates of the search: ``start``, then ``+step`` or ``*factor``, up to ``max_rate``."""
    problems = []
    if not start > 0:
        problems.append(f"start rate must be > 0 req/s, got {start!r}")
    if (step is None) == (factor is None):
        problems.append("give exactly one of step (add req/s per step) or factor (multiply per step)")
    if step is not None and not step > 0:
        problems.append(f"step must be > 0 req/s, got {step!r}")
    if factor is not None and not factor > 1:
        problems.append(f"factor must be > 1, got {factor!r}")
    if not max_rate >= start:
        problems.append(f"max rate {max_rate!r} must be >= the start rate {start!r}")
    if problems:
        raise ConfigError("bad stress search", problems)
    out: list[float] = []
    r = float(start)
    while r <= max_rate * (1 + 1e-9) and len(out) < max_steps:
        out.append(round(r, 6))
        if step is not None:
            r = r + step
        else:
            assert factor is not None  # exactly one of step and factor, checked above
            r = r * factor
    return out


@dataclass
class StressResult:
    path: Path
    verdict: dict[str, Any]
    steps: list[dict[str, Any]]


def stress(target: str, scenario: Scenario | None = None, *, start: float = 50, step: float | None = None,
           factor: float | None = None, max_rate: float = 10_000, step_duration: float = 10.0,
           slos: Iterable[str] = DEFAULT_SLOS, runs_dir: str | Path = "data/runs", run_id: str | None = None,
           allow_hosts: Iterable[str] = (), max_in_flight: int = 10_000, timeout: float = 10.0,
           progress: Callable[[dict], None] | bool | None = False, announce: Callable[[str], None] = print,
           handle_signals: bool = False, http_path: str = "aiohttp", lag_bound_ms: float = 10.0,
           warmup_s: float = WARMUP_S) -> StressResult:
    """Run the breaking-point search; see the module docstring."""
    if step is None and factor is None:
        step = start
    plan_rates = rates(start, step=step, factor=factor, max_rate=max_rate)
    slo_list = parse_all(slos)
    if not slo_list:
        raise ConfigError("a stress search needs at least one SLO to break, e.g. p99<1s or errors<1%")
    if not step_duration > 0:
        raise ConfigError(f"step duration must be > 0 s, got {step_duration!r}")
    warm = warmup_for(warmup_s, step_duration)
    rd = RunDir.create(runs_dir, run_id or new_run_id("stress"))
    rd.write_meta({"kind": "stress", "target": target,
                   "scenario": scenario.describe() if scenario else None,
                   "parameters": {"start": start, "step": step, "factor": factor, "max_rate": max_rate,
                                  "step_duration_s": step_duration, "slos": [s.text for s in slo_list],
                                  "timeout_s": timeout, "max_in_flight": max_in_flight,
                                  "lag_bound_ms": lag_bound_ms, "warmup_s": warm},
                   "started_at": utc_now_iso(), "machine": machine_info()})
    announce(f"perfbench stress: {len(plan_rates)} steps of {step_duration:g} s from {plan_rates[0]:g} to "
             f"{plan_rates[-1]:g} req/s until {', '.join(s.text for s in slo_list)} breaks; {rd.path}")
    steps: list[dict[str, Any]] = []
    end_reason = "max_rate"
    for k, rate in enumerate(plan_rates):
        res = run_load(target, shapes.constant(rate, step_duration), scenario, runs_dir=rd.path / "steps",
                       run_id=f"{k:02d}-{_fmt(rate)}rps", allow_hosts=allow_hosts, max_in_flight=max_in_flight,
                       timeout=timeout, progress=progress, announce=lambda line: None,
                       handle_signals=handle_signals, http_path=http_path, lag_bound_ms=lag_bound_ms)
        judged = summary_after_warmup(Run.load(res.path), warm) if res.end_reason == "completed" else res.summary
        row = _evidence(k, rate, step_duration - (warm if judged is not res.summary else 0), judged,
                        evaluate(slo_list, judged), res.path, rd.path)
        steps.append(row)
        announce(_step_line(row))
        write_json(rd.path / STRESS, {"verdict": None, "steps": steps})  # progress survives an interruption
        if res.end_reason != "completed":
            end_reason = res.end_reason
            break
        if row["broken"] or row["saturated"]:
            end_reason = "saturated" if row["saturated"] and not row["broken"] else "broken"
            break
    verdict = _verdict(steps, end_reason) | {"warmup_s": warm}
    write_json(rd.path / STRESS, {"verdict": verdict, "steps": steps})
    rd.update_meta(ended_at=utc_now_iso(), end_reason=end_reason)
    announce("perfbench stress: " + verdict["text"])
    return StressResult(rd.path, verdict, steps)


def _fmt(rate: float) -> str:
    return f"{rate:g}".replace(".", "_")


def _evidence(k: int, rate: float, duration: float, summary: dict, slo_results: list, path: Path, root: Path) -> dict:
    o = summary.get("overall", {})
    lat = o.get("latency_ms", {})
    gen = summary.get("generator", {})
    notes = {r["slo"]: within_noise(r, summary) for r in broken(slo_results)}  # a break within noise: its note
    undecided = [note for note in notes.values() if note]
    bad = [slo for slo, note in notes.items() if not note]
    return {
        "step": k, "offered_rps": rate, "duration_s": duration, "requests": o.get("count", 0),
        "achieved_rps": o.get("rps"), "ok_rps": (o.get("count", 0) - o.get("errors", 0)) / duration,
        "p50_ms": lat.get("p50"), "p95_ms": lat.get("p95"), "p99_ms": lat.get("p99"), "max_ms": lat.get("max"),
        "error_rate": o.get("error_rate"), "errors_by_kind": o.get("errors_by_kind", {}),
        "saturated": bool(gen.get("saturated")), "saturation_reasons": gen.get("saturation_reasons", []),
        "slo": slo_results, "broken": bad, "undecided": undecided,
        "run_dir": str(path.relative_to(root)),
    }


def _step_line(row: dict) -> str:
    status = ("BROKEN " + ", ".join(row["broken"])) if row["broken"] else (
        "generator saturated" if row["saturated"] else
        "held, not clearly broken (" + "; ".join(row["undecided"]) + ")" if row.get("undecided") else "held")
    p99 = "-" if row["p99_ms"] is None else f"{row['p99_ms']:.1f}"
    return (f"  step {row['step']:2d}: {row['offered_rps']:8g} req/s offered, {row['achieved_rps'] or 0:8.1f} achieved, "
            f"p99 {p99} ms, errors {100 * (row['error_rate'] or 0):.2f}%: {status}")


def _verdict(steps: list[dict], end_reason: str) -> dict[str, Any]:
    verdict = _found(steps, end_reason)
    unclear = [s for s in steps if s.get("undecided")]
    if unclear:
        rates_text = ", ".join(f"{s['offered_rps']:g}" for s in unclear)
        notes = "; ".join(s["undecided"][0] for s in unclear[:2])
        verdict["text"] += f"; not clearly broken, within sampling noise, at {rates_text} req/s: {notes}"
        verdict["undecided_rps"] = [s["offered_rps"] for s in unclear]
    return verdict


def _found(steps: list[dict], end_reason: str) -> dict[str, Any]:
    held = [s for s in steps if not s["broken"] and not s["saturated"]]
    last_ok = held[-1]["offered_rps"] if held else None
    failed = next((s for s in steps if s["broken"] or s["saturated"]), None)
    if failed is None:
        text = (f"no breaking point up to {steps[-1]['offered_rps']:g} req/s (the search's maximum)"
                if end_reason == "max_rate" else f"stopped early ({end_reason}) after {len(steps)} steps")
        return {"breaking_rps": None, "highest_ok_rps": last_ok, "cause": end_reason, "text": text, "limit": None,
                "generator_limit_rps": None}
    if failed["broken"]:
        cause = "slo"
        text = (f"broke at {failed['offered_rps']:g} req/s ({', '.join(failed['broken'])})"
                + (f"; the highest rate that held was {last_ok:g} req/s" if last_ok else
                   "; it broke at the first step: start lower"))
    else:
        cause = "generator"
        held_text = (f"the service held up to at least {last_ok:g} req/s" if last_ok is not None else
                     "no step held, so what the service can take is not known")
        text = (f"the load generator saturated at {failed['offered_rps']:g} req/s before the service broke "
                f"({'; '.join(failed['saturation_reasons'])}): {held_text}; use more workers to go higher")
        return {"breaking_rps": None, "highest_ok_rps": last_ok, "cause": cause, "text": text, "limit": "generator",
                "generator_limit_rps": failed["offered_rps"]}
    return {"breaking_rps": failed["offered_rps"], "highest_ok_rps": last_ok, "cause": cause, "text": text,
            "limit": "service", "generator_limit_rps": None}


def load_stress(path: str | Path) -> dict[str, Any]:
    """``stress.json`` of a stress directory (verdict and steps)."""
    path = Path(path)
    meta = RunDir(path).meta()
    if meta.get("kind") != "stress":
        raise ConfigError(f"{path} is not a stress directory (its meta.json kind is {meta.get('kind')!r})")
    return read_json(path / STRESS)


def steps_frame(path: str | Path):
    """The steps' evidence as a Polars frame (one row per step), for notebooks and charts."""
    import polars as pl

    data = load_stress(path)
    rows = [{k: v for k, v in s.items() if k not in ("slo", "errors_by_kind", "saturation_reasons", "broken",
                                                      "undecided")}
            | {"broken": ", ".join(s["broken"]), "undecided": "; ".join(s.get("undecided", []))}
            for s in data["steps"]]
    return pl.DataFrame(rows)



