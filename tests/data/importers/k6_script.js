// The k6 load used for the fixture files: an open model (constant arrival rate) over three GET
// endpoints of the perfbench demo target, each tagged with a request name.
import http from "k6/http";

const BASE = __ENV.TARGET;

export const options = {
  discardResponseBodies: true,
  scenarios: {
    demo: { executor: "constant-arrival-rate", rate: 25, timeUnit: "1s", duration: "4s",
            preAllocatedVUs: 5, maxVUs: 20 },
  },
};

const PATHS = [
  ["health", "/health"],
  ["posts_naive", "/api/posts?limit=10"],
  ["posts_naive", "/api/posts?limit=10"],
  ["posts_eager", "/api/v2/posts?limit=10"],
  ["posts_eager", "/api/v2/posts?limit=10"],
];

export default function () {
  const [name, path] = PATHS[Math.floor(Math.random() * PATHS.length)];
  http.get(`${BASE}${path}`, { tags: { name } });
}
