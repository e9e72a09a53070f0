// k6 at a fixed arrival rate for benchmarks/run.py (the fixed-rate comparison with perfbench's open model):
// RATE requests per second for DURATION, each a keep-alive GET of URL, from up to VUS virtual users
// (preallocated; k6 counts an arrival that finds none free in dropped_iterations).
// Run: k6 run -e URL=http://127.0.0.1:PORT/ -e RATE=2000 -e DURATION=30s -e VUS=50 --summary-export OUT.json k6_rate.js
import http from 'k6/http';

export const options = {
  scenarios: {
    fixed: {
      executor: 'constant-arrival-rate',
      rate: Number(__ENV.RATE),
      timeUnit: '1s',
      duration: __ENV.DURATION,
      preAllocatedVUs: Number(__ENV.VUS),
      maxVUs: Number(__ENV.VUS),
      gracefulStop: '2s',
    },
  },
  summaryTrendStats: ['avg', 'min', 'med', 'max', 'p(90)', 'p(99)'],
};

export default function () {
  http.get(__ENV.URL);
}
