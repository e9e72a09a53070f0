import itertools
import math

import pytest

from perfbench import shapes
from perfbench.errors import ConfigError

NS = 1_000_000_000


def offsets(plan, n=None):
    it = (a.offset_ns for a in plan.arrivals())
    return list(itertools.islice(it, n) if n else it)


def test_constant_rate_exact_times():
    assert offsets(shapes.constant(4, 1)) == [0, 250_000_000, 500_000_000, 750_000_000]
    assert len(offsets(shapes.constant(200, 20))) == 4000


def test_fractional_count_rounds_down_to_whole_arrivals():
    # 3 req/s for 1.5 s is 4.5 expected arrivals: arrivals at 0, 1/3, 2/3, 1 s, 4/3 s
    assert offsets(shapes.constant(3, 1.5)) == [0, 333_333_333, 666_666_667, NS, 1_333_333_333]


def test_linear_ramp_follows_the_integral_of_the_rate():
    # rate 0 -> 10 over 2 s: N(t) = 2.5 t^2, so arrival k is at sqrt(k / 2.5)
    got = offsets(shapes.ramp(0, 10, 2))
    assert len(got) == 10
    for k, t in enumerate(got):
        assert t == round(math.sqrt(k / 2.5) * NS)


def test_steps_and_stage_indices():
    plan = shapes.steps([2, 4], step_duration=1)
    arr = list(plan.arrivals())
    assert [a.offset_ns for a in arr] == [0, 500_000_000, NS, 1_250_000_000, 1_500_000_000, 1_750_000_000]
    assert [a.stage for a in arr] == [0, 0, 1, 1, 1, 1]


def test_spike_has_three_stages_with_their_rates():
    plan = shapes.spike(10, 100, before=1, during=1, after=1)
    arr = list(plan.arrivals())
    assert len(arr) == 120
    assert sum(a.stage == 1 for a in arr) == 100
    assert plan.rate_at(0.5) == 10 and plan.rate_at(1.5) == 100 and plan.rate_at(2.5) == 10


def test_ramp_up_prepends_a_linear_stage():
    plan = shapes.constant(10, 1, ramp_up=2)
    assert plan.stages[0].start == 0 and plan.stages[0].end == 10 and plan.duration == 3
    assert len(offsets(plan)) == 20  # 10 in the ramp (area 0.5*10*2) + 10


def test_custom_stages_k6_style():
    plan = shapes.stages([(1, 10), (1, 10), (1, 0)])
    assert plan.expected_requests == pytest.approx(5 + 10 + 5)
    assert len(offsets(plan)) == 20


def test_soak_checkpoints():
    plan = shapes.soak(5, 180, checkpoint_every=60)
    assert plan.checkpoints == (60, 120, 180)


def test_poisson_is_reproducible_and_has_the_right_rate():
    a = offsets(shapes.constant(1000, 20, poisson=True, seed=7))
    b = offsets(shapes.constant(1000, 20, poisson=True, seed=7))
    assert a == b
    assert 20_000 * 0.97 < len(a) < 20_000 * 1.03  # sd of a Poisson count is ~141
    assert a == sorted(a)
    assert offsets(shapes.constant(1000, 20, poisson=True, seed=8)) != a


def test_arrivals_are_lazy():
    plan = shapes.constant(1000, 24 * 3600)  # 86.4M arrivals: never materialised
    assert offsets(plan, 3) == [0, 1_000_000, 2_000_000]


def test_invalid_plans_name_every_problem():
    with pytest.raises(ConfigError) as e:
        shapes.OpenPlan((shapes.Stage(-1, 5, 5), shapes.Stage(1, -3, float("nan"))))
    msg = str(e.value)
    assert "stage 0: duration" in msg and "stage 1: rate start" in msg and "stage 1: rate end" in msg
    with pytest.raises(ConfigError, match="no requests"):
        shapes.constant(0, 10)


from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

rates = st.floats(0.01, 1e6, allow_nan=False, allow_infinity=False)


@given(st.lists(st.tuples(st.floats(0.001, 5), rates, st.one_of(st.none(), rates)), min_size=1, max_size=3))
def test_constant_stages_take_the_fast_branch_with_the_same_times(stages):
    """arrival_tuples' branch for constant stages gives exactly Stage.time_of's times (ramps mixed in)."""
    plan = shapes.stages([(d, r, r if r2 is None else r2) for d, r, r2 in stages])
    got = list(itertools.islice(plan.arrival_tuples(), 5000))
    begin, count_before, want = 0.0, 0.0, []
    for k, stage in enumerate(plan.stages):
        n = float(len(want))
        while n < count_before + stage.arrivals and len(want) < 5000:
            want.append((len(want), round((begin + stage.time_of(n - count_before)) * NS), k))
            n = float(len(want))
        begin += stage.duration
        count_before += stage.arrivals
    assert got == want


@pytest.mark.parametrize("poisson", [False, True])
def test_arrivals_do_not_depend_on_how_many_are_computed_at_a_time(monkeypatch, poisson):
    """arrival_tuples makes its tuples in chunks; a chunk boundary anywhere (within a stage, at a
    stage's end) changes nothing."""
    plan = shapes.stages([(1.0, 50, 50), (0.5, 50, 200), (0.3, 120, 120)], poisson=poisson, seed=7)
    whole = list(plan.arrival_tuples())
    assert len(whole) > 100 and [a[0] for a in whole] == list(range(len(whole)))
    for size in (1, 3, 50, 64):
        monkeypatch.setattr(shapes, "ARRIVAL_CHUNK", size)
        assert list(plan.arrival_tuples()) == whole


# ------------------------------------------------------------------------------------ shards
@pytest.mark.parametrize("plan", [
    shapes.stages([(0.7, 30, 30), (0.5, 30, 90), (0.6, 45, 45)], ramp_up=0.3),
    shapes.spike(20, 70, before=0.5, during=0.4, after=0.5, poisson=True, seed=3),
    shapes.soak(25, 2.0, checkpoint_every=0.5, poisson=True, seed=11),
])
@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_the_union_of_the_shards_arrivals_is_the_plan(plan, n):
    whole = list(plan.arrival_tuples())
    parts = [list(plan.shard(i, n).arrival_tuples()) for i in range(n)]
    assert sorted(a for part in parts for a in part) == whole
    assert all(a[0] % n == i for i, part in enumerate(parts) for a in part)
    assert [[(a.index, a.offset_ns, a.stage) for a in plan.shard(i, n).arrivals()] for i in range(n)] == parts


@pytest.mark.parametrize("poisson", [False, True])
def test_a_shard_keeps_the_plan_properties_the_aligned_tick_needs(poisson):
    plan = shapes.steps([40, 120], 0.5, ramp_up=0.25, poisson=poisson, seed=5)
    shard = plan.shard(1, 4)
    assert shard.model == "open" and shard.poisson is poisson and shard.seed == 5
    assert (shard.duration, shard.checkpoints, shard.kind) == (plan.duration, plan.checkpoints, plan.kind)
    # the stages at the shard's share of the rate, the same bounds and names
    assert [(s.duration, s.start, s.end, s.name) for s in shard.stages] == \
        [(s.duration, s.start / 4, s.end / 4, s.name) for s in plan.stages]
    assert shard.stage_bounds() == plan.stage_bounds()
    assert shard.rate_at(0.6) == plan.rate_at(0.6) / 4 == 10
    assert shard.expected_requests == pytest.approx(plan.expected_requests / 4)
    assert shard.describe() == {**plan.describe(), "shard": 1, "shards": 4}
    if not poisson:
        # in a constant stage the shard's arrivals are evenly spaced at its stage's rate
        for k, st in enumerate(shard.stages):
            if st.start == st.end:
                times = [a.offset_ns for a in shard.arrivals() if a.stage == k]
                gaps = {b - a for a, b in itertools.pairwise(times)}
                assert len(times) > 3 and max(gaps) - min(gaps) <= 1 and min(gaps) == pytest.approx(NS / st.start, abs=1)


def test_a_closed_shard_has_its_users_and_the_plan_think_time():
    plan = shapes.user_stages([(1, 5), (1, 2), (1, 7)], think=shapes.Pacing(0.2), seed=4)
    parts = [plan.shard(i, 3) for i in range(3)]
    assert [p.max_users for p in parts] == [3, 2, 2]
    for t in (0.5, 1.5, 2.9):
        assert sum(p.users_at(t) for p in parts) == plan.users_at(t)
        assert all(p.stage_at(t) == plan.stage_at(t) for p in parts)
    for p in parts:
        assert p.model == "closed" and (p.think, p.seed, p.duration) == (plan.think, plan.seed, plan.duration)


@pytest.mark.parametrize("index, count", [(0, 0), (3, 3), (-1, 2)])
def test_a_shard_out_of_range_is_refused(index, count):
    with pytest.raises(ConfigError):
        shapes.constant(10, 1).shard(index, count)
    with pytest.raises(ConfigError):
        shapes.users(2, 1).shard(index, count)
