"""Attacks on the request head and on the rate limit, against real intake processes
started with the uvicorn argv `contingency up` runs (`contingency intake` execs
``contingency.cli.components.intake_argv``: the guarded httptools protocol,
``contingency/intake/protocol.py``).

The head attacks never get past the request line and headers, so that intake's Prefect
API is a closed port; the flood test needs Prefect to answer the legitimate sender
(the lab stack's)."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from threading import Event

import pytest
import requests

from contingency.cli.components import intake_argv
from contingency.runtime.processes import StartupError, free_port, http_ok, wait_until
from contingency.runtime.stack import _argvs
from inventory.settings import Settings
from tests.fixtures_stack import Stack

TOKEN = "attack-test-token"
MB = 1024 * 1024


def _rss_kb(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _start(
    state_dir: Path, env_extra: dict[str, str], prefect: str | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    port, dead = free_port(), free_port()
    # what `contingency up` runs is `contingency intake`, which execs exactly this argv
    stack = _argvs(Settings(state_dir=state_dir), dead, port, state_dir / "run")["intake"]
    assert stack[1:4] == ["-m", "contingency", "intake"]
    argv = intake_argv("127.0.0.1", port)
    assert "contingency.intake.protocol:GuardedHttpTools" in argv
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CONTINGENCY_"))}
    env |= {
        "PREFECT_API_URL": prefect or f"http://127.0.0.1:{dead}/api",
        "PREFECT_CLIENT_MAX_RETRIES": "0",
        "CONTINGENCY_STATE_DIR": str(state_dir),
        "CONTINGENCY_WEBHOOK_TOKEN": TOKEN,
        **env_extra,
    }
    proc = subprocess.Popen([*argv, "--log-level", "warning"], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_ok(f"{url}/healthz"), "intake", 60)
    except StartupError:
        proc.kill()
        raise
    return proc, url


@pytest.fixture(scope="module")
def intake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, str]]:
    """An intake with the default head limits (16 KiB, 100 fields, 5 s)."""
    proc, url = _start(
        tmp_path_factory.mktemp("attacks"), {"CONTINGENCY_GRAFANA_HMAC_SECRETS": "g1"}
    )
    try:
        yield proc.pid, url
    finally:
        proc.terminate()
        proc.wait(10)


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=30)


def _read_all(sock: socket.socket, timeout_s: float = 30) -> bytes:
    """Everything until the intake closes the connection (a reset ends it too)."""
    sock.settimeout(timeout_s)
    out = b""
    try:
        while data := sock.recv(65536):
            out += data
    except ConnectionResetError:
        pass
    return out


def _healthy(url: str) -> bool:
    return requests.get(f"{url}/healthz", timeout=10).ok


def test_256_mib_header_is_refused_431_with_bounded_memory(intake: tuple[int, str]) -> None:
    pid, url = intake
    for _ in range(10):  # warm the paths the attack touches
        requests.post(f"{url}/webhook/generic", json={}, timeout=5)
    time.sleep(0.5)
    idle = _rss_kb(pid)
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := current RSS
    peak = idle
    sock = _connect(url)
    sent, chunk = 0, b"a" * 65536
    try:
        sock.sendall(b"POST /webhook/generic HTTP/1.1\r\nHost: x\r\nX-Big: ")
        while sent < 256 * MB:
            if select.select([sock], [], [], 0)[0]:
                break  # answered or closed: stop sending
            sock.sendall(chunk)
            sent += len(chunk)
            if sent % (4 * MB) == 0:
                peak = max(peak, _rss_kb(pid))
    except (BrokenPipeError, ConnectionResetError):
        pass
    answer = _read_all(sock)  # returns only once the intake closed the connection
    sock.close()
    peak = max(peak, _rss_kb(pid, "VmHWM"))
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b"connection: close" in answer.lower()
    assert sent < 64 * MB, f"the intake kept reading: {sent} bytes sent"
    assert (peak - idle) * 1024 < 60 * MB, f"idle {idle} kB, peak {peak} kB"
    assert _healthy(url)


def test_too_many_header_fields_is_431(intake: tuple[int, str]) -> None:
    _, url = intake
    fine = requests.get(f"{url}/healthz", headers={f"X-F{i}": "1" for i in range(90)}, timeout=10)
    assert fine.status_code == 200  # 90 fields (+ requests' own) are within 100
    sock = _connect(url)
    fields = b"".join(b"X-F%d: 1\r\n" % i for i in range(1000))  # ~10 KiB: under the size
    sock.sendall(b"POST /webhook/generic HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n")
    answer = _read_all(sock)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b"Too many header fields" in answer
    assert _healthy(url)


def test_headers_over_the_size_limit_in_one_request_are_431(intake: tuple[int, str]) -> None:
    _, url = intake
    r = requests.get(f"{url}/healthz", headers={"X-Pad": "p" * 20_000}, timeout=10)
    assert r.status_code == 431
    assert requests.get(f"{url}/healthz", headers={"X-Pad": "p" * 8_000}, timeout=10).ok


def test_slow_headers_are_cut_off(intake: tuple[int, str]) -> None:
    """A client dribbling its head a byte a second is answered 408 and disconnected
    within the 5 s head timeout (plus slack for a loaded machine)."""
    _, url = intake
    sock = _connect(url)
    start = time.monotonic()
    sock.sendall(b"POST /webhook/generic HTTP/1.1\r\nHost: x\r\n")
    closed_after = None
    try:
        for byte in b"X-Slow: " + b"s" * 60:
            if select.select([sock], [], [], 1.0)[0]:  # a byte a second until it answers
                break
            sock.sendall(bytes([byte]))
    except (BrokenPipeError, ConnectionResetError):
        pass
    answer = _read_all(sock, timeout_s=15)
    closed_after = time.monotonic() - start
    sock.close()
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert closed_after < 5 + 4, closed_after
    # a connection that sends nothing at all is closed too
    idle = _connect(url)
    start = time.monotonic()
    assert _read_all(idle, timeout_s=15) == b""
    assert time.monotonic() - start < 5 + 4
    idle.close()


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/webhook/generic", b""),  # no bearer token
        ("/webhook/alertmanager", b"Authorization: Bearer wrong\r\n"),
        ("/webhook/grafana", b""),  # HMAC endpoint: no signature header
        (
            "/webhook/grafana",
            b"X-Grafana-Alerting-Signature: ab\r\nX-Grafana-Alerting-Signature-Timestamp: 1\r\n",
        ),  # stale timestamp
    ],
)
def test_refused_before_the_body_is_sent(
    intake: tuple[int, str], path: str, headers: bytes
) -> None:
    """The answer comes while the declared body has not been sent at all: the intake
    never waits for (or buffers) a body before authentication."""
    _, url = intake
    sock = _connect(url)
    sock.sendall(
        b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 200000\r\n%s\r\n" % (path.encode(), headers)
    )
    answer = _read_all(sock, timeout_s=10)
    sock.close()
    assert answer.startswith((b"HTTP/1.1 401 ", b"HTTP/1.1 429 ")), answer[:200]
    assert b"connection: close" in answer.lower()


def test_unauthenticated_budget_is_its_own_429_past_it(tmp_path: Path) -> None:
    """Past the address's unauthenticated budget a bad token is 429 (with Retry-After),
    consistently; the right token from the same address still gets through."""
    proc, url = _start(
        tmp_path,
        {
            "CONTINGENCY_INTAKE_UNAUTH_BURST": "5",
            "CONTINGENCY_INTAKE_UNAUTH_RATE_PER_SECOND": "0.01",
        },
    )
    try:
        bad = {"Authorization": "Bearer wrong"}
        codes = [
            requests.post(f"{url}/webhook/generic", json={}, headers=bad, timeout=10)
            for _ in range(15)
        ]
        assert [r.status_code for r in codes] == [401] * 5 + [429] * 10
        assert all(int(r.headers["Retry-After"]) >= 1 for r in codes[5:])
        good = {"Authorization": f"Bearer {TOKEN}"}
        r = requests.post(f"{url}/webhook/generic", json={}, headers=good, timeout=10)
        assert r.status_code == 422  # authenticated: on to the body (which is invalid)
    finally:
        proc.terminate()
        proc.wait(10)


def test_unauthenticated_flood_never_429s_the_legitimate_sender(
    lab_stack: Stack, tmp_path: Path
) -> None:
    """An unauthenticated flood from 127.0.0.1 while a sender with the token posts 31
    alerts from 127.0.0.1 to the same endpoint: all 31 are 202. The authenticated budget
    (burst 40) would be spent by the flood if it counted there (it did before)."""
    proc, url = _start(
        tmp_path,
        {
            "CONTINGENCY_INTAKE_RATE_BURST": "40",
            "CONTINGENCY_INTAKE_RATE_PER_SECOND": "1",
            "CONTINGENCY_WEBHOOK_TOKEN": lab_stack.token,
            "PREFECT_API_AUTH_STRING": lab_stack.auth,
            "PREFECT_CLIENT_MAX_RETRIES": "3",
            "CONTINGENCY_INVENTORY": str(lab_stack.inventory),
        },
        prefect=lab_stack.api_url,
    )
    stop = Event()
    flood_codes: list[int] = []

    def flood() -> None:
        with requests.Session() as s:
            while not stop.is_set():
                r = s.post(
                    f"{url}/webhook/generic",
                    json={"alerts": [{"labels": {"alertname": "Flood"}}]},
                    headers={"Authorization": "Bearer not-the-token"},
                    timeout=10,
                )
                flood_codes.append(r.status_code)

    tag = uuid.uuid4().hex
    try:
        with ThreadPoolExecutor(4) as pool:
            floods = [pool.submit(flood) for _ in range(3)]
            while len(flood_codes) < 50:  # the flood is on before the first alert
                time.sleep(0.05)
            legit = []
            with requests.Session() as s:
                for i in range(31):  # resolved alerts: answered by Prefect, start no runs
                    alert = {"labels": {"alertname": "FloodVictim", "t": tag, "n": str(i)}}
                    legit.append(
                        s.post(
                            f"{url}/webhook/generic",
                            json={"alerts": [{**alert, "status": "resolved"}]},
                            headers={"Authorization": f"Bearer {lab_stack.token}"},
                            timeout=60,
                        ).status_code
                    )
            stop.set()
            for f in floods:
                f.result()
    finally:
        stop.set()
        proc.terminate()
        proc.wait(10)
    assert legit == [202] * 31, legit
    assert set(flood_codes) <= {401, 429}
    assert 429 in flood_codes and len(flood_codes) > 60
