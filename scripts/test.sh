#!/usr/bin/env bash
# The tests: setup, lint, types (mypy), then the whole suite against real sshd, Prefect and Alertmanager.
# pytest's exit code 5 (no tests collected) is a failure here like any other non-zero code.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PREFECT_SERVER_ANALYTICS_ENABLED=false
# tests that use Prefect without a stack get a temporary server; on a busy 2-core
# machine it once took longer than Prefect's 20 s to start
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=120
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
# Two workers (one stack each where a module needs one); a whole file stays on one
# worker, so module-scoped stacks are shared by its tests. CONTINGENCY_TEST_WORKERS=0: serial.
exec .venv/bin/python -m pytest -q -p no:cacheprovider -n "${CONTINGENCY_TEST_WORKERS:-2}" --dist loadfile "$@"
