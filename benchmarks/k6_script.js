// k6 peer for benchmarks/run.py: each VU loops a keep-alive GET of URL as fast as it can.
// Run: k6 run --vus 50 --duration 10s --summary-export OUT.json -e URL=http://127.0.0.1:PORT/ k6_script.js
import http from 'k6/http';

export default function () {
  http.get(__ENV.URL);
}
