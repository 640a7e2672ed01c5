"""The reconciler: finishes the story of every incident whose owner died (work in progress).

    python -m contingency.reconciler [--once] [--interval SECONDS]
"""

from __future__ import annotations

import argparse
import time


def reconcile_once() -> list[str]:
    return []


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="contingency.reconciler")
    parser.add_argument("--once", action="store_true")
    parser.add_argument("--interval", type=float, default=3.0)
    args = parser.parse_args(argv)
    while True:
        for line in reconcile_once():
            print(line, flush=True)
        if args.once:
            return
        time.sleep(args.interval)


if __name__ == "__main__":
    main()
