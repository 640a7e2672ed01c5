"""The inventory as the intake sees it: re-read at most every ``ttl_s`` (an edited
inventory applies without restarting the intake), shared by the board and the dispatcher."""

from __future__ import annotations

import logging
import threading
import time

from inventory.loader import load_inventory
from inventory.models import Inventory
from inventory.settings import Settings

log = logging.getLogger("contingency.intake")


class InventoryCache:
    """The inventory the dispatcher correlates and labels metrics with, re-read at most
    every ``ttl_s`` (an edited inventory applies without restarting the intake)."""

    def __init__(self, settings: Settings, ttl_s: float = 30.0) -> None:
        self.settings, self.ttl_s = settings, ttl_s
        self._inv: Inventory | None = None
        self._at = -1e9
        self._lock = threading.Lock()

    def __call__(self) -> Inventory | None:
        with self._lock:  # called from worker threads
            if time.monotonic() - self._at > self.ttl_s:
                self._at = time.monotonic()
                try:
                    self._inv = load_inventory(self.settings.inventory_path())
                except Exception as exc:  # noqa: BLE001 - no correlation; the flow reports it
                    log.warning("intake: inventory not loaded, no correlation (%s)", exc)
            return self._inv
