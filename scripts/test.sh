#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs what the tests need
# (redis-server via apt-get, the official OpenAI and Anthropic SDKs into .venv),
# then runs every Rust test (unit and integration) with cargo-nextest.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
  echo "== installing redis-server"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  python3 -m venv .venv
fi
echo "== installing the SDKs used as test clients"
.venv/bin/pip install -q --disable-pip-version-check -r tests/sdk/requirements.txt
export HAECHI_PYTHON="$PWD/.venv/bin/python"
export HAECHI_REQUIRE_REDIS=1

# Unit and integration tests (benches and examples are built by clippy in CI, not run).
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "== cargo-nextest not found: using cargo test"
  exec cargo test --lib --bins --tests --no-fail-fast
fi
cargo nextest run --lib --bins --tests --no-fail-fast
