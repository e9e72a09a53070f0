"""The machine's other load: /proc/stat parsing, the derived columns and the summary block, each checked
against a recomputation from raw (synthetic) samples; the sampler writes machine.parquet and the run's
summary gets its ``machine`` block."""

from __future__ import annotations

import math

import polars as pl
import pytest

from perfbench.analysis import machine as mach
from perfbench.engine.machine import MachineSampler


def stat_text(user, nice, system, idle, iowait, irq, softirq, steal, guest=0, guest_nice=0) -> str:
    return (f"cpu  {user} {nice} {system} {idle} {iowait} {irq} {softirq} {steal} {guest} {guest_nice}\n"
            f"cpu0 1 2 3 4 5 6 7 8 0 0\nintr 12345\nctxt 999\n")


def test_parse_proc_stat_sums_the_right_fields():
    t = mach.parse_proc_stat(stat_text(100, 5, 40, 800, 20, 3, 7, 25, 9, 0))
    assert t.busy == 100 + 5 + 40 + 3 + 7  # guest time is inside user: not added twice
    assert t.steal == 25
    assert t.total == t.busy + 800 + 20 + 25
    with pytest.raises(ValueError):
        mach.parse_proc_stat("intr 1\n")


def test_old_kernels_with_fewer_fields():
    t = mach.parse_proc_stat("cpu 10 0 5 100\n")
    assert (t.busy, t.steal, t.total) == (15, 0, 115)


def _series(rng_seed: int = 3):
    """Synthetic snapshots of a 2-CPU machine at clk_tck 100, 1 s apart: per interval 200 ticks in all."""
    import random

    rng = random.Random(rng_seed)
    cum = [0] * 8
    own = 0.0
    texts, owns, truth = [], [], []
    for i in range(12):
        if i:
            steal = rng.randint(0, 30)
            busy = rng.randint(0, 200 - steal)
            split = [busy // 2, 0, busy - busy // 2 - 2, 0, 0, 1, 1]  # user nice system idle iowait irq softirq
            split[3] = 200 - busy - steal - 10
            split[4] = 10
            own_s = rng.uniform(0, busy / 100)
            for k, v in enumerate([*split, steal]):
                cum[k] += v
            own += own_s
            truth.append({"machine": busy / 100, "own": own_s, "other": busy / 100 - own_s, "steal": steal / 200})
        texts.append(stat_text(*cum))
        owns.append(own)
    return texts, owns, truth


def test_derive_recomputes_the_synthetic_truth():
    texts, owns, truth = _series()
    ticks = [mach.parse_proc_stat(t) for t in texts]
    d = mach.derive([t.busy for t in ticks], [t.steal for t in ticks], [t.total for t in ticks], owns,
                    cpu_count=2, clk_tck=100)
    assert d["other_cpu"][0] is None and d["steal_share"][0] is None
    for i, want in enumerate(truth, start=1):
        assert d["machine_cpu"][i] == pytest.approx(want["machine"])
        assert d["own_cpu"][i] == pytest.approx(want["own"])
        assert d["other_cpu"][i] == pytest.approx(max(want["other"], 0.0))
        assert d["steal_share"][i] == pytest.approx(want["steal"])


def test_other_cpu_is_never_negative_and_empty_intervals_are_null():
    a, b = mach.CpuTicks(100, 0, 1000), mach.CpuTicks(150, 0, 1200)
    d = mach.interval(a, b, 0.0, 5.0, cpu_count=2, clk_tck=100)  # own CPU read later than /proc/stat: above busy
    assert d["other_cpu"] == 0.0 and d["own_cpu"] == pytest.approx(5.0)
    assert mach.interval(b, b, 1.0, 1.0, cpu_count=2, clk_tck=100)["other_cpu"] is None


def test_summary_block_against_a_recomputation():
    frame = pl.DataFrame({"other_cpu": [None, 0.2, 1.4, 0.6], "own_cpu": [None, 0.1, 0.1, 0.3],
                          "machine_cpu": [None, 0.3, 1.5, 0.9], "steal_share": [None, 0.0, 0.2, 0.1],
                          "load1": [1.0, 2.0, 3.0, 6.0]})
    s = mach.machine_summary(frame, cpu_count=2, clk_tck=100)
    assert s["samples"] == 4
    assert s["other_cpu_cores"] == {"mean": round((0.2 + 1.4 + 0.6) / 3, 4), "max": 1.4}
    assert s["steal_share"]["mean"] == pytest.approx(0.1) and s["steal_share"]["max"] == 0.2
    assert s["load1"] == {"mean": 3.0, "max": 6.0}
    empty = mach.machine_summary(frame.head(0))
    assert empty["other_cpu_cores"] == {"mean": None, "max": None}


def test_the_sampler_writes_raw_and_derived_columns(tmp_path):
    """Fed synthetic snapshots (no clock involved): the file's derived columns are derive() of its raw ones."""
    texts, owns, truth = _series(5)
    it_t, it_o = iter(texts), iter(owns)
    s = MachineSampler(interval_s=3600, read_stat=lambda: next(it_t), own_cpu=lambda: next(it_o))
    s.start_sync()  # one sample now; the next tick is an hour away
    for _ in range(len(texts) - 2):
        s._sample()
    info = s.stop_sync(tmp_path)  # the last sample
    assert info["samples"] == len(texts) and info["file"] == mach.MACHINE
    df = mach.read_machine(tmp_path)
    assert df is not None and df.height == len(texts)
    again = mach.derive(df["busy_ticks"].to_list(), df["steal_ticks"].to_list(), df["total_ticks"].to_list(),
                        df["own_cpu_s"].to_list(), cpu_count=info["cpu_count"], clk_tck=info["clk_tck"])
    for k, v in again.items():
        assert df[k].to_list() == v
    assert df["t_ns"].to_list() == sorted(df["t_ns"].to_list())


def test_without_proc_stat_nothing_is_written(tmp_path):
    def broken() -> str:
        raise FileNotFoundError("/proc/stat")

    s = MachineSampler(read_stat=broken, own_cpu=lambda: 0.0)
    s.start_sync()
    info = s.stop_sync(tmp_path)
    assert info["file"] is None and "cannot read" in info["errors"][0]
    assert mach.read_machine(tmp_path) is None


def test_a_real_run_records_the_machine(tmp_path, http_server):
    """A short run against the test server: machine.parquet is there and summary.json has its block,
    equal to machine_summary of the file."""
    from perfbench import shapes
    from perfbench.analysis.results import Run
    from perfbench.load import run_load
    from perfbench.scenario import single

    res = run_load(http_server.url, shapes.constant(20, 1.5), single("/"), runs_dir=tmp_path, progress=False,
                   announce=lambda line: None)
    df = mach.read_machine(res.path)
    assert df is not None and df.height >= 2
    run = Run.load(res.path)
    block = run.summary()["machine"]
    assert block == mach.summary_of_run(res.path, run.meta)
    assert block["cpu_count"] >= 1
    other = [x for x in df["other_cpu"].to_list() if x is not None]
    assert block["other_cpu_cores"]["mean"] == pytest.approx(round(math.fsum(other) / len(other), 4))


def test_compare_through_the_cli_refuses_a_busy_run_and_judges_when_told(tmp_path, capsys):
    """Run directories with a machine.parquet of 1.5 other cores (synthetic /proc/stat snapshots): exit 0 and
    'INCONCLUSIVE: noisy' naming the side; --judge-noisy or a higher --max-other-cpu judge the x2 change."""
    from perfbench.cli import main
    from tests.test_baselines import make_run

    base = make_run(tmp_path / "runs", "base", seed=1)
    slow = make_run(tmp_path / "runs", "slow", scale=2.0, seed=2)
    texts = [stat_text(150 * i, 0, 0, 50 * i, 0, 0, 0, 0) for i in range(6)]  # 1.5 of 2 CPUs busy, none ours
    it = iter(texts)
    s = MachineSampler(interval_s=3600, read_stat=lambda: next(it), own_cpu=lambda: 0.0)
    s.start_sync()
    for _ in range(len(texts) - 2):
        s._sample()
    s.stop_sync(slow)
    code = main(["compare", str(base), str(slow), "--boot", "300", "--threshold", "10%"])
    out, errs = capsys.readouterr()
    assert code == 0, out
    assert "INCONCLUSIVE: noisy: current: the machine was busy: other processes used 1.50 cores" in errs
    assert main(["compare", str(base), str(slow), "--boot", "300", "--threshold", "10%", "--judge-noisy"]) == 10
    assert "NOISY, JUDGED ANYWAY (--judge-noisy)" in capsys.readouterr().out
    assert main(["compare", str(base), str(slow), "--boot", "300", "--threshold", "10%", "--max-other-cpu", "2"]) == 10
    assert main(["compare", str(base), str(slow), "--max-other-cpu", "-1"]) == 2


def test_a_corrupt_machine_file_is_a_run_directory_error(tmp_path):
    from perfbench.errors import RunDirError

    (tmp_path / mach.MACHINE).write_bytes(b"not parquet")
    with pytest.raises(RunDirError, match="machine.parquet: could not be read"):
        mach.read_machine(tmp_path)


@pytest.mark.parametrize("busy", [True, False])
def test_summary_text_shows_the_machine_block_and_whether_the_run_is_noisy(tmp_path, capsys, busy):
    """`perfbench summary` prints other processes' CPU, steal and the load average as recomputed from
    machine.parquet, and calls the run noisy exactly when compare's rule (noise.reasons) would."""
    from perfbench.cli import main
    from perfbench.compare.noise import DEFAULT_MAX_OTHER_CPU
    from tests.test_baselines import make_run

    run = make_run(tmp_path / "runs", "r", seed=1)
    per_s = (150, 50) if busy else (20, 180)  # busy and idle ticks a second of a 2-CPU machine: 1.5 or 0.2 cores
    texts = [stat_text(per_s[0] * i, 0, 0, per_s[1] * i, 0, 0, 0, 3 * i) for i in range(6)]
    it = iter(texts)
    s = MachineSampler(interval_s=3600, read_stat=lambda: next(it), own_cpu=lambda: 0.0)
    s.start_sync()
    for _ in range(len(texts) - 2):
        s._sample()
    s.stop_sync(run)
    assert main(["summary", str(run)]) == 0
    out = capsys.readouterr().out
    df = pl.read_parquet(run / mach.MACHINE)

    def mean_max(col: str) -> tuple[float, float]:
        v = [x for x in df[col].to_list() if x is not None]
        return round(math.fsum(v) / len(v), 4), round(max(v), 4)

    other, steal, load = mean_max("other_cpu"), mean_max("steal_share"), mean_max("load1")
    line = next(x for x in out.splitlines() if x.startswith("machine: "))
    assert line == (f"machine: other processes used {other[0]:.2f} cores on average (max {other[1]:.2f}), steal "
                    f"{steal[0]:.1%} (max {steal[1]:.1%}), load average {load[0]:.1f} (max {load[1]:.1f}); "
                    f"{df.height} samples in machine.parquet")
    assert (other[0] > DEFAULT_MAX_OTHER_CPU) is busy
    if busy:
        assert f"noisy: yes: this run: the machine was busy: other processes used {other[0]:.2f} cores" in out
    else:
        assert "noisy: no (noisy would be: generator saturation" in out
