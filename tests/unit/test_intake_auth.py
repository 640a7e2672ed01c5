import hashlib
import hmac

import pytest
from pydantic import SecretStr

from contingency.intake.auth import ReplayCache, SignatureError, verify_generic, verify_grafana

OLD, NEW = SecretStr("old-secret"), SecretStr("new-secret")
BODY = b'{"version":"1","status":"firing","alerts":[]}'


def sign(secret: SecretStr, msg: bytes) -> str:
    return hmac.new(secret.get_secret_value().encode(), msg, hashlib.sha256).hexdigest()


def test_grafana_with_and_without_timestamp_and_rotation() -> None:
    verify_grafana([NEW], BODY, sign(NEW, BODY), None)
    verify_grafana([OLD, NEW], BODY, sign(OLD, b"1000:" + BODY), "1000", now=1100)
    with pytest.raises(SignatureError, match="bad signature"):
        verify_grafana([NEW], BODY, sign(OLD, BODY), None)
    with pytest.raises(SignatureError, match="outside"):
        verify_grafana([NEW], BODY, sign(NEW, b"1000:" + BODY), "1000", now=1301)


def test_generic_valid_invalid_stale() -> None:
    sig = "sha256=" + sign(NEW, b"1000." + BODY)
    assert verify_generic([OLD, NEW], BODY, sig, "1000", now=1000) == sig[7:]
    with pytest.raises(SignatureError):
        verify_generic([OLD], BODY, sig, "1000", now=1000)
    with pytest.raises(SignatureError, match="outside"):
        verify_generic([NEW], BODY, sig, "1000", now=700 - 1)
    with pytest.raises(SignatureError):
        verify_generic([NEW], BODY, sig[7:], "1000", now=1000)


def test_replay_cache() -> None:
    cache = ReplayCache(window=600)
    assert cache.check_and_add("a", now=0)
    assert not cache.check_and_add("a", now=10)
    assert cache.check_and_add("a", now=700)
