"""Render a results JSON of benchmarks/run.py as the Markdown tables of benchmarks/README.md.

Run: python benchmarks/report_md.py benchmarks/results/DATE.json
"""

import json
import sys


def fmt(v, spec=",.0f", none="-"):
    return none if v is None else format(v, spec)


def main(path: str) -> None:
    res = json.load(open(path))  # noqa: SIM115 - a one-shot script
    cfg = res.get("config", {})
    cmp_ = res.get("comparison") or {}
    if cmp_.get("summary"):
        print(f"{cfg['connections']} keep-alive connections, {cfg['seconds']:g} s per run, median of "
              f"{cfg['repeat']} repetitions [min - max]; ratios are taken within each repetition, then the median.\n")
        print("| generator | req per generator CPU-s | [min - max] | vs naive aiohttp | vs k6 | req/s | "
              "generator CPU s | nginx worker CPU |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for s in sorted(cmp_["summary"].values(), key=lambda s: -s["req_per_cpu_s_median"]):
            name = s["name"] + (f", open model {s['open_rate']:,.0f}/s cap {cfg['connections']}"
                                if s["open_rate"] else "")
            print(f"| {name} | **{fmt(s['req_per_cpu_s_median'])}** | {fmt(s['req_per_cpu_s_min'])} - "
                  f"{fmt(s['req_per_cpu_s_max'])} | {fmt(s['vs_naive_median'], '.2f')} | "
                  f"{fmt(s.get('vs_k6_median'), '.2f')} | {fmt(s['rps_median'])} | {fmt(s['cpu_s_median'], '.2f')} | "
                  f"{fmt(s['server_cpu_util_median'] * 100, '.0f')}% |")
        for k, why in cmp_.get("unavailable", {}).items():
            print(f"\nUnavailable: {k}: {why}")
    for fx in res.get("fixed_rate", []):
        lag = fx["send_lag_ms"] or {}
        print(f"\nFixed rate, perfbench [{fx['path_reported']}], {fx['target_rps']:g} req/s for {fx['seconds']:g} s: "
              f"achieved {fx['achieved_rps']:.1f} req/s ({fx['achieved_vs_target_pct']:+.2f}%), "
              f"dropped/failed {fx['dropped_or_failed']} (aborted {fx['aborted']}, waited for the cap "
              f"{fx['capped']}), send lag p50 / p99 / max {fmt(lag.get('p50'), '.3f')} / "
              f"{fmt(lag.get('p99'), '.3f')} / {fmt(lag.get('max'), '.3f')} ms, generator CPU "
              f"{fmt(fx['cpu_pct_steady'], '.1f')}% of one core (steady window; "
              f"{fx['cpu_pct_whole_process']:.1f}% with start-up; engine's own figure "
              f"{fx.get('cpu_pct_engine_reported_steady')}%), latency p99 {fmt(fx['latency_p99_ms'], '.2f')} ms.")
    fk = res.get("fixed_vs_k6")
    if fk and fk.get("table"):
        print(f"\nFixed rate {fk['rate']:,.0f} req/s for {fk['seconds']:g} s, {fk['repeat']} repetition(s); CPU = the "
              "process tree's user + system time over the whole run (start-up and end included) as % of one core, "
              "median [min - max]; vs k6 = over k6's CPU in the same repetition (median [min - max]); achieved, "
              "dropped and lag: the worst repetition.\n")
        print("| generator | achieved req/s | vs target | dropped | send lag p99 ms | CPU % of a core | steady % | vs k6 | "
              "latency p99 ms |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for t in fk["table"]:
            print(f"| {t['generator']} | {fmt(t['achieved_rps_median'], ',.1f')} | "
                  f"{t['achieved_vs_target_pct_worst']:+.2f}% | {t['dropped_or_failed_max']} | "
                  f"{fmt(t['send_lag_p99_ms_max'], '.3f')} | **{fmt(t['cpu_pct_whole_process_median'], '.1f')}** "
                  f"[{t['cpu_pct_whole_process_min']:.1f} - {t['cpu_pct_whole_process_max']:.1f}] | "
                  f"{fmt(t['cpu_pct_steady_median'], '.1f')} | **{fmt(t['cpu_vs_k6_median'], '.2f')}** "
                  f"[{fmt(t['cpu_vs_k6_min'], '.2f')} - {fmt(t['cpu_vs_k6_max'], '.2f')}] | "
                  f"{fmt(t['latency_p99_ms_median'], '.2f')} |")
    g = res.get("gzip")
    if g and g.get("summary"):
        print(f"\ngzip: nginx `gzip on` (level 1), the {g['body_bytes']}-byte JSON body sent as {g['gzip_bytes']} bytes "
              f"of gzip to a client that accepts it; {g['seconds']:g} s per run, {g['repeat']} repetition(s), median "
              "[min - max].\n")
        print("| generator | req per generator CPU-s | [min - max] | vs naive aiohttp | req/s | bytes recorded per row |")
        print("|---|---:|---:|---:|---:|---|")
        for s in sorted(g["summary"].values(), key=lambda s: -s["req_per_cpu_s_median"]):
            cols = ", ".join(f"`{c}` {v['median']:g}" for c, v in s["byte_columns"].items()) or "-"
            print(f"| {s['name']} | **{fmt(s['req_per_cpu_s_median'])}** | {fmt(s['req_per_cpu_s_min'])} - "
                  f"{fmt(s['req_per_cpu_s_max'])} | {fmt(s['vs_naive_median'], '.2f')} | {fmt(s['rps_median'])} | {cols} |")
        for p, text in g["what_was_measured"].items():
            print(f"\n[{p}] {text}")
    for mx in res.get("max_rps", []):
        print(f"\nMax throughput of one perfbench process [{mx['path']}], cap {cfg['connections']}: "
              f"{fmt(mx['rps_median'])} req/s (median; {fmt(mx['rps_min'])} - {fmt(mx['rps_max'])}).")
    if res.get("soak"):
        sk = res["soak"]
        print(f"\nSoak [{sk['path_reported']}], {sk['rate']:g} req/s for {sk['seconds'] / 60:g} min: RSS slope "
              f"{fmt(sk['rss_slope_bytes_per_min'])} bytes/min after a {sk['warmup_s']:g} s warm-up "
              f"({sk['rss_at_warmup_end_mb']:.1f} MB -> {sk['rss_at_end_mb']:.1f} MB, max {sk['rss_max_mb']:.1f} MB).")


if __name__ == "__main__":
    main(sys.argv[1])
