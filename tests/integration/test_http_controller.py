"""Contract tests for the HTTP drivers, against a local HTTP server on 127.0.0.1.

``http-controller``: a contract test — the request a network controller receives
(method, path, JSON body, bearer token) is exactly what the inventory says.
``dns``: a MOCK of a cloud DNS API (the real one cannot run here): it checks only the
request we send, not a provider's behaviour.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from inventory.errors import NetworkError
from inventory.models import Host
from inventory.network import DnsAddress, Link
from tasks.actions.address import apply_dns
from tasks.actions.failover import driver_for

TOKEN = "ctl-token-value-0123456789"  # noqa: S105 - a test secret


class Recorder(ThreadingHTTPServer):
    status = 200
    seen: list[dict[str, Any]]


class _Handler(BaseHTTPRequestHandler):
    server: Recorder

    def _any(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.seen.append(
            {"method": self.command, "path": self.path, "json": json.loads(body or b"null"),
             "auth": self.headers.get("Authorization")}
        )  # fmt: skip
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"ok": true}')

    do_POST = do_PUT = do_PATCH = _any  # noqa: N815

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def controller(monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorder]:
    monkeypatch.setenv("CONTINGENCY_SECRET_CTL_TOKEN", TOKEN)
    server = Recorder(("127.0.0.1", 0), _Handler)
    server.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _link(port: int, **driver: Any) -> Link:
    return Link(
        name="uplink-b", router="edge-1", interface="eth2", gateway="198.51.100.6",
        role="backup", probe_targets=["203.0.113.1"],
        driver={"kind": "http-controller", "auth_secret": "ctl-token",
                "url": f"http://127.0.0.1:{port}/api/routers/{{router}}/uplink",
                "body": {"active": "{link}", "dev": "{interface}", "via": "{gateway}", "prio": 10},
                **driver},
    )  # fmt: skip


def test_contract_controller_receives_the_inventory_request(controller: Recorder) -> None:
    link = _link(controller.server_address[1], method="PUT")
    res = driver_for(link).activate(link, inv=None)  # type: ignore[arg-type]
    assert res.ok and res.driver == "http-controller"
    assert controller.seen == [
        {
            "method": "PUT",
            "path": "/api/routers/edge-1/uplink",
            "json": {"active": "uplink-b", "dev": "eth2", "via": "198.51.100.6", "prio": 10},
            "auth": f"Bearer {TOKEN}",
        }
    ]
    assert TOKEN not in res.model_dump_json()
    host, what = driver_for(link).describe(link)
    assert host == "controller" and what.startswith("PUT http://127.0.0.1:") and TOKEN not in what


def test_contract_controller_error_status_is_reported_not_raised(controller: Recorder) -> None:
    controller.status = 503
    link = _link(controller.server_address[1])
    res = driver_for(link).activate(link, inv=None)  # type: ignore[arg-type]
    assert not res.ok and "HTTP 503" in res.detail


def test_contract_unreachable_controller_names_the_link_not_the_token(controller: Recorder) -> None:
    port = controller.server_address[1]
    controller.shutdown()
    controller.server_close()
    link = _link(port)
    with pytest.raises(NetworkError, match="uplink-b") as err:
        driver_for(link).activate(link, inv=None)  # type: ignore[arg-type]
    assert TOKEN not in str(err.value)


def test_mock_dns_api_gets_an_a_record_for_the_standby(controller: Recorder) -> None:
    addr = DnsAddress(
        api_url=f"http://127.0.0.1:{controller.server_address[1]}/v1", zone="example.org",
        record="portal", ttl=30, auth_secret="ctl-token",
    )  # fmt: skip
    standby = Host(name="hw-b", address="192.0.2.19", user="root", key_secret="k")
    res = apply_dns(addr, standby)
    assert res.ok
    assert controller.seen[0]["path"] == "/v1/zones/example.org/records/portal"
    assert controller.seen[0]["json"] == {"type": "A", "content": "192.0.2.19", "ttl": 30}
