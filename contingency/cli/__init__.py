"""The `contingency` command line; `app` is the console script's entry point."""

from contingency.cli.main import app

__all__ = ["app"]
