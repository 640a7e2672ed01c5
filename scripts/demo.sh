#!/usr/bin/env bash
# The demo: start the stack and the local lab, crash a service, send the alert, show the
# restart and the report; the stack stays up (stop it with `.venv/bin/contingency down`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/contingency demo "$@"
