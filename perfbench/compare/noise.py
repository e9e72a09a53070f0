"""Whether a side of a comparison was measured on a compromised machine: pure, from the run's own records.

A run records its generator's state (``summary.json`` ``generator``: send lag, arrivals capped or never
sent) and the machine's other load (``machine``: other processes' CPU, steal, load average; see
``perfbench.analysis.machine``). A comparison refuses to judge ("inconclusive: noisy") when either side

- **saturated its generator**: arrivals waited for the in-flight cap or were never sent, or the send lag
  p99 was above its bound; part of the latency is then the generator's, not the service's;
- **ran beside other work**: other processes used more than ``max_other_cpu`` cores on average
  (default 0.5: on a 2-CPU machine, a quarter of it; a neighbour that takes half a core or more was seen
  to move a run's p50 by tens of percent, see benchmarks/README.md), or more than ``max_steal`` (10%) of
  the CPU time was stolen by the hypervisor.

These are statements about the run, not about the code; ``judge_noisy`` makes the comparison judge
anyway and say so. A paired A/B run (``perfbench ab``) shares machine load and send lag between its two
sides block by block, so by default it refuses only when a side did not get its planned load (capped or
unsent arrivals): ``AB_LIMITS``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DEFAULT_MAX_OTHER_CPU = 0.5  # cores used by other processes, on average over the run
DEFAULT_MAX_STEAL = 0.10  # share of the machine's CPU time stolen by the hypervisor


@dataclass(frozen=True)
class NoiseLimits:
    """What makes a run too noisy to judge. ``None`` switches a check off."""

    max_other_cpu: float | None = DEFAULT_MAX_OTHER_CPU
    max_steal: float | None = DEFAULT_MAX_STEAL
    lag: bool = True  # a send lag p99 above the run's bound counts as saturation

    def describe(self) -> str:
        parts = ["generator saturation (capped or unsent arrivals" + (", send lag above its bound)" if self.lag
                                                                      else ")")]
        if self.max_other_cpu is not None:
            parts.append(f"other processes above {self.max_other_cpu:g} cores on average")
        if self.max_steal is not None:
            parts.append(f"steal above {self.max_steal:.0%}")
        return "; ".join(parts)


COMPARE_LIMITS = NoiseLimits()
AB_LIMITS = NoiseLimits(max_other_cpu=None, max_steal=None, lag=False)


def reasons(label: str, generator: dict[str, Any] | None, machine: dict[str, Any] | None,
            limits: NoiseLimits = COMPARE_LIMITS) -> list[str]:
    """Why the side ``label`` is too noisy to judge (empty: it is not, or nothing was recorded)."""
    out = []
    g = generator or {}
    if limits.lag:  # the run's own judgement (summary.json generator.saturated: lag, capped, unsent)
        if g.get("saturated"):
            out.append(f"{label}: the load generator saturated: "
                       + "; ".join(g.get("saturation_reasons") or ["(no reason recorded)"]))
    else:  # only what means a side did not get its planned load
        capped, unsent = g.get("capped") or 0, g.get("unsent") or 0
        if capped:
            out.append(f"{label}: the load generator saturated: {capped} arrivals waited for the in-flight cap")
        if unsent:
            out.append(f"{label}: the load generator saturated: {unsent} planned requests were never sent")
    m = machine or {}
    other = (m.get("other_cpu_cores") or {}).get("mean")
    if limits.max_other_cpu is not None and isinstance(other, int | float) and other > limits.max_other_cpu:
        load = (m.get("load1") or {}).get("mean")
        out.append(f"{label}: the machine was busy: other processes used {other:.2f} cores on average (limit "
                   f"{limits.max_other_cpu:g})" + (f", load average {load:.1f}" if isinstance(load, int | float)
                                                    else ""))
    steal = (m.get("steal_share") or {}).get("mean")
    if limits.max_steal is not None and isinstance(steal, int | float) and steal > limits.max_steal:
        out.append(f"{label}: the hypervisor stole {steal:.0%} of the CPU time (limit {limits.max_steal:.0%})")
    return out


def ab_reasons(summary: dict[str, Any], limits: NoiseLimits = AB_LIMITS) -> list[str]:
    """Why an A/B run (its summary.json, with ``sides``) is too noisy to judge: each side's generator, and the
    machine once for both sides (it is one machine)."""
    sides = summary.get("sides") or {}
    return [*(r for side, s in sides.items() for r in reasons(side, s.get("generator"), None, limits)),
            *reasons("both sides", None, summary.get("machine"), limits)]
