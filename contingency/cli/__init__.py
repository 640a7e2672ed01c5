"""The `contingency` command line; :func:`main` is the console script's entry point."""

from contingency.cli.main import app, main

__all__ = ["app", "main"]
