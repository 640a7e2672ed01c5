"""The intake's fast path (pure parts): the answered-keys cache and the plan label."""

from pathlib import Path

from contingency.intake.dedup import AnsweredCache
from contingency.intake.dispatch import routed_target
from inventory.alert import Alert
from inventory.loader import load_inventory

LAB = Path(__file__).parents[2] / "inventory" / "examples" / "lab"


def test_cache_answers_only_keys_it_was_told() -> None:
    cache = AnsweredCache(max_entries=2, ttl_s=60)
    assert cache.get("a", now=0) is None
    cache.put("a", "run-a", now=0)
    assert cache.get("a", now=1) == "run-a"
    assert (cache.hits, cache.misses) == (1, 1)


def test_cache_is_bounded_lru_and_entries_expire() -> None:
    cache = AnsweredCache(max_entries=2, ttl_s=60)
    cache.put("a", "1", now=0)
    cache.put("b", "2", now=0)
    assert cache.get("a", now=1) == "1"  # a is now the most recently used
    cache.put("c", "3", now=1)  # evicts b, the least recently used
    assert len(cache) == 2
    assert cache.get("b", now=1) is None and cache.get("a", now=1) == "1"
    assert cache.get("c", now=62) is None  # older than the TTL: ask Prefect again
    assert len(cache) == 1


def test_disabled_cache_never_answers() -> None:
    cache = AnsweredCache(max_entries=0)
    cache.put("a", "1")
    assert cache.get("a") is None and len(cache) == 0 and not cache.enabled


def test_new_incidents_are_counted_by_routed_plan() -> None:
    inv = load_inventory(LAB)

    def alert(**labels: str) -> Alert:
        return Alert(fingerprint="f", labels=labels)

    def plan_of(a: Alert, inv_: object) -> str:
        return routed_target(a, inv_)[1]  # type: ignore[arg-type]

    assert plan_of(alert(alertname="ServiceDown", service="web"), inv) == "software_crash"
    assert routed_target(alert(alertname="ServiceDown", service="web"), inv)[0] == (
        "service",
        "web",
    )
    assert plan_of(alert(alertname="ServiceDown", service="$(touch /tmp/x)"), inv) == "unroutable"
    assert plan_of(alert(alertname="Nothing"), inv) == "unroutable"
    assert plan_of(alert(alertname="ServiceDown", service="web"), None) == "unknown"
