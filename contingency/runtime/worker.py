"""The process worker: Prefect's own ``prefect worker start``, run after
:func:`tasks.prefect_api.share_api_tls_context` — the worker makes a few API clients
for every flow run it starts, and each would otherwise parse the CA bundle again
(~25 ms of CPU on the worker's event loop, between a run's Pending and its start).

    python -m contingency.runtime.worker worker start --type process --pool NAME
"""

from __future__ import annotations

import sys


def main() -> None:
    from tasks.prefect_api import share_api_tls_context

    share_api_tls_context()
    from prefect.cli import app

    sys.argv[0] = "prefect"
    app()


if __name__ == "__main__":
    main()
