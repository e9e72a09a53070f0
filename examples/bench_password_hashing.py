"""Password hashing, benchmarked as the guides do it (hashing is meant to be slow: know how slow).

    pytest examples/bench_password_hashing.py                      # the bench fixture (perfbench's pytest plugin)
    pytest examples/bench_password_hashing.py --bench-save hashing # then, after a change: --bench-compare hashing
    python examples/bench_password_hashing.py                      # the same in a script, with the scaling fit

Where perfbench is not installed (a source checkout), add ``-p perfbench.bench.plugin`` to pytest.
"""

from __future__ import annotations

import hashlib

import pytest

from perfbench.demo.auth import hash_password, verify_password

SALT = b"0123456789abcdef"
PASSWORD = b"correct horse battery staple"


def pbkdf2(password: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", password, SALT, iterations)


def scrypt(password: bytes) -> bytes:
    return hashlib.scrypt(password, salt=SALT, n=2**14, r=8, p=1)  # 16 MiB per hash, inside OpenSSL


@pytest.mark.parametrize("iterations", [1_000, 10_000, 100_000])
def test_pbkdf2_sha256(bench, iterations):
    assert len(bench(pbkdf2, PASSWORD, iterations)) == 32


def test_scrypt(bench):
    assert len(bench(scrypt, PASSWORD)) == 64


def test_demo_login_check(bench):
    """The demo service's own check (PBKDF2, its default iterations), as a login runs it."""
    stored = hash_password("secret", salt=SALT)
    assert bench(verify_password, "secret", stored) is True


def main() -> None:
    from perfbench import bench

    s = bench.Session("hashing", max_time=0.5)
    results = s.parametrize(lambda n: pbkdf2(PASSWORD, n), [1_000, 3_000, 10_000, 30_000, 100_000],
                            name="pbkdf2_sha256")
    s.run(scrypt, PASSWORD, name="scrypt_n16384")
    print(s)
    print(bench.scaling(results)["text"])


if __name__ == "__main__":
    main()
