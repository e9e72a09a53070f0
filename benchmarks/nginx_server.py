"""A private nginx for benchmarks: our own config in a temp dir, one worker, stopped by its own PID.

Never touches the system nginx service: the prefix, config, pid file, error log and temp paths
all live in a fresh temp dir, the master runs in the foreground (``daemon off``) as our child,
and it is stopped by signalling that child's PID only.

    with NginxServer(cpu=1) as url:   # url = "http://127.0.0.1:PORT/"
        ...
    with NginxServer(cpu=1, tls=True) as url:   # "https://127.0.0.1:PORT/"; server.ca_file: its CA
        ...

TLS: a throwaway CA and a certificate for 127.0.0.1 from ``trustme`` (a dev dependency), written
into the temp dir; clients trust it through ``SSL_CERT_FILE=<ca_file>`` (:meth:`client_env`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import string
import subprocess
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
TEMPLATE = HERE / "nginx.conf.template"
BODY = b'{"ok":true}'


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.path.exists(p)), None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# gzip=True: nginx compresses the JSON body for a client that accepts gzip (level 1, nginx's default),
# however short the body (the default gzip_min_length, 20 bytes, would leave the 11-byte body alone)
GZIP_LINES = ("    gzip on;\n    gzip_types application/json;\n    gzip_min_length 1;\n    gzip_comp_level 1;\n"
              "    gzip_proxied any;\n")


def render(prefix: Path, port: int, cpu: int | None, tls: tuple[Path, Path] | None = None, gzip: bool = False,
           body: bytes = BODY) -> str:
    ncpu = os.cpu_count() or 1
    # worker_cpu_affinity takes a bit mask, lowest CPU rightmost ("10" = CPU 1)
    mask = "auto" if cpu is None else "".join("1" if i == cpu else "0" for i in reversed(range(max(ncpu, cpu + 1))))
    user_line = "user nobody nogroup;" if os.geteuid() == 0 else ""
    ssl_flag, ssl_lines = "", ""
    if tls is not None:
        cert, key = tls
        ssl_flag = "ssl "
        ssl_lines = (f"        ssl_certificate {cert};\n        ssl_certificate_key {key};\n"
                     "        ssl_protocols TLSv1.2 TLSv1.3;\n")
    if b"'" in body or b"\\" in body:
        raise ValueError("the body is written between single quotes in nginx.conf: no ' or \\ in it")
    return string.Template(TEMPLATE.read_text()).substitute(prefix=prefix, port=port, cpu_mask=mask,
                                                            user_line=user_line, ssl_flag=ssl_flag,
                                                            ssl_lines=ssl_lines, gzip_lines=GZIP_LINES if gzip else "",
                                                            body=body.decode())


def write_tls_files(prefix: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1: ``(ca_file, cert_chain, key)``."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    paths = prefix / "ca.pem", prefix / "server.pem", prefix / "server.key"
    ca.cert_pem.write_to_path(str(paths[0]))
    cert.private_key_and_cert_chain_pem.write_to_path(str(paths[1]))  # nginx reads key and chain from one file
    cert.private_key_pem.write_to_path(str(paths[2]))
    for p in paths:
        os.chmod(p, 0o644)  # the worker runs as nobody when we are root; a throwaway key
    return paths


def _dechunk(payload: bytes) -> bytes:
    out, rest = b"", payload
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, rest = out + rest[:size], rest[size + 2:]
    return out


class NginxServer:
    def __init__(self, cpu: int | None = 1, start_timeout: float = 10.0, tls: bool = False, gzip: bool = False,
                 body: bytes = BODY):
        self.cpu = cpu
        self.tls = tls
        self.gzip = gzip
        self.body = body
        self.ca_file: Path | None = None
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None
        self.url = ""
        self.gzip_wire = b""  # with gzip: the compressed body as nginx sends it
        self.pid = 0
        self.version = ""

    def __enter__(self) -> str:
        binary = nginx_binary()
        if not binary:
            raise RuntimeError("nginx is not installed (run benchmarks/install_peers.sh)")
        self.version = subprocess.run([binary, "-v"], capture_output=True, text=True).stderr.strip()
        self._tmp = tempfile.TemporaryDirectory(prefix="perfbench-nginx-")
        prefix = Path(self._tmp.name)
        os.chmod(prefix, 0o755)  # the worker runs as nobody when we are root
        last_err = ""
        tls_files = None
        if self.tls:
            self.ca_file, cert, key = write_tls_files(prefix)
            tls_files = (cert, key)
        for _attempt in range(3):  # the free port can be taken between probe and bind: retry
            port = free_port()
            conf = prefix / "nginx.conf"
            conf.write_text(render(prefix, port, self.cpu, tls_files, self.gzip, self.body))
            cmd = [binary, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")]
            if self.cpu is not None and shutil.which("taskset"):
                cmd = ["taskset", "-c", str(self.cpu)] + cmd
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                         start_new_session=True)  # a Ctrl-C in the terminal reaches us, not it
            if self._wait_listening(port):
                self.pid = self.proc.pid
                self.url = f"{'https' if self.tls else 'http'}://127.0.0.1:{port}/"
                try:
                    self._check()
                except BaseException:  # __exit__ will not run: stop our nginx here
                    self.__exit__()
                    raise
                return self.url
            last_err = self._stop() or (prefix / "error.log").read_text(errors="replace")[-2000:]
        self._tmp.cleanup()
        raise RuntimeError(f"nginx did not start: {last_err}")

    def _wait_listening(self, port: int) -> bool:
        deadline = time.monotonic() + self.start_timeout
        assert self.proc is not None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return True
            except OSError:
                time.sleep(0.05)
        return False

    def client_env(self) -> dict[str, str]:
        """Environment for a client process: trust this server's CA (none needed over http)."""
        if not self.ca_file:
            return {}
        return {"SSL_CERT_FILE": str(self.ca_file), "REQUESTS_CA_BUNDLE": str(self.ca_file)}  # (requests: Locust)

    def _check(self) -> None:
        """One real GET: the body and content type must be what the benchmark expects (over TLS,
        verified against our CA); with gzip, a GET that accepts gzip must come back compressed."""
        data = self._get(b"")
        if not data.startswith(b"HTTP/1.1 200") or b"application/json" not in data or not data.endswith(self.body):
            raise RuntimeError(f"nginx answered unexpectedly: {data[:300]!r}")
        if self.gzip:
            import gzip

            zipped = self._get(b"Accept-Encoding: gzip\r\n")
            head, _, payload = zipped.partition(b"\r\n\r\n")
            if b"content-encoding: gzip" not in head.lower():
                raise RuntimeError(f"nginx did not compress: {head[:300]!r}")
            self.gzip_wire = _dechunk(payload) if b"chunked" in head.lower() else payload
            if gzip.decompress(self.gzip_wire) != self.body:
                raise RuntimeError("nginx's gzip body does not decompress to the body")

    def _get(self, extra: bytes) -> bytes:
        with contextlib.ExitStack() as stack:
            s = stack.enter_context(socket.create_connection(
                ("127.0.0.1", int(self.url.rsplit(":", 1)[1].strip("/"))), timeout=2))
            if self.ca_file:
                import ssl

                ctx = ssl.create_default_context(cafile=str(self.ca_file))
                s = stack.enter_context(ctx.wrap_socket(s, server_hostname="127.0.0.1"))
            s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" + extra + b"\r\n")
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        return data

    def worker_pids(self) -> list[int]:
        try:
            out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.pid)], capture_output=True, text=True)
            return [int(x) for x in out.stdout.split()]
        except (OSError, ValueError):
            return []

    def _stop(self) -> str:
        """Stop our master by its PID (SIGQUIT = graceful, then SIGTERM, then SIGKILL); its stderr."""
        p = self.proc
        if p is None:
            return ""
        err = ""
        if p.poll() is None:
            for sig, wait in ((signal.SIGQUIT, 5), (signal.SIGTERM, 5), (signal.SIGKILL, 5)):
                try:
                    os.kill(p.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    p.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if p.stderr:
            err = p.stderr.read().decode(errors="replace")
            p.stderr.close()
        self.proc = None
        return err

    def __exit__(self, *exc) -> None:
        self._stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


if __name__ == "__main__":  # smoke test: start, show the response, stop (--tls: over https)
    import sys

    server = NginxServer(cpu=1 if (os.cpu_count() or 1) > 1 else None, tls="--tls" in sys.argv)
    with server as url:
        print(url)
        ca = ["--cacert", str(server.ca_file)] if server.ca_file else []
        print(subprocess.run(["curl", "-si", "--max-time", "2", *ca, url], capture_output=True, text=True).stdout)
