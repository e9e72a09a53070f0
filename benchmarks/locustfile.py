"""Locust peers for benchmarks/run.py: a keep-alive GET of / in a loop, no wait between requests.

Run: locust -f benchmarks/locustfile.py --headless -u 50 -r 50 -t 10s --only-summary --json
     --host http://127.0.0.1:PORT Http   (or Fast, for FastHttpUser)
"""

import os

from locust import HttpUser, constant, task
from locust.contrib.fasthttp import FastHttpUser


class Http(HttpUser):
    wait_time = constant(0)

    def on_start(self):
        # HttpUser verifies against certifi's bundle, not SSL_CERT_FILE: trust the benchmark's own
        # CA when run.py --tls names one (FastHttpUser does not verify at all, like wrk and hey)
        if os.environ.get("SSL_CERT_FILE"):
            self.client.verify = os.environ["SSL_CERT_FILE"]

    @task
    def get(self):
        self.client.get("/")


class Fast(FastHttpUser):
    wait_time = constant(0)

    @task
    def get(self):
        self.client.get("/")
