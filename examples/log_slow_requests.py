"""The notification guide's "log every request slower than 5 s as it happens", as a Python scenario:
the register -> login -> act journey of register_login_act.toml, with an on_request hook.

    perfbench run http://127.0.0.1:8080 --scenario examples/log_slow_requests.py --users 10 --duration 60s

on_request gets every row as a dict, batch by batch as the run flushes them (at least once a second);
on_stop gets the summary. What they raise is reported and counted (meta.json: hooks), never fatal.
"""

from pathlib import Path

from perfbench.scenario_toml import load_toml

SLOW_NS = 5_000_000_000  # 5 s
slow: list[dict] = []

scenario = load_toml(Path(__file__).with_name("register_login_act.toml"))


def on_request(row: dict) -> None:
    if row["latency_ns"] > SLOW_NS:
        slow.append(row)
        print(f"slow: {row['endpoint']} {row['latency_ns'] / 1e6:.0f} ms (request {row['request_id']})")


def on_stop(summary: dict) -> None:
    print(f"{len(slow)} requests slower than {SLOW_NS / 1e9:g} s of {summary['overall']['count']}")
