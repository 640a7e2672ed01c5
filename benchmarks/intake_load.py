"""Load generators for the intake benchmark: little client CPU per post, so on a 2-core
machine the intake (not the client) is what is measured.

``blast`` drives several keep-alive HTTP/1.1 connections from one thread with a selector
(closed loop: a connection sends its next post when its answer is complete). ``paced``
posts at a fixed rate from a few threads (open loop: latency counts from each post's
scheduled time, so a slow answer also delays the posts queued behind it).
"""

from __future__ import annotations

import http.client
import selectors
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field


def http_post(url: str, path: str, token: str, body: bytes) -> bytes:
    """One whole HTTP/1.1 POST request, ready to write to a socket."""
    host = url.removeprefix("http://")
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def _address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


@dataclass
class Answers:
    """Status and latency (seconds) of every post, in the order they were given."""

    statuses: list[int]
    latencies: list[float]
    seconds: float

    @property
    def per_second(self) -> float:
        return len(self.statuses) / self.seconds

    def codes(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for s in self.statuses:
            out[s] = out.get(s, 0) + 1
        return out


@dataclass
class _Conn:
    sock: socket.socket
    index: int = -1
    sent: float = 0.0
    buf: bytearray = field(default_factory=bytearray)


def _complete(buf: bytearray) -> int | None:
    """Status code if ``buf`` holds one whole response (uvicorn always sends Content-Length)."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buf[:end]).lower()
    at = head.find(b"content-length:")
    stop = head.find(b"\r\n", at)
    length = int(head[at + 15 : stop if stop > 0 else None])
    if len(buf) < end + 4 + length:
        return None
    return int(buf[9:12])


def blast(url: str, requests: Sequence[bytes], conns: int) -> Answers:
    """Send every request (bytes from ``http_post``) over ``conns`` connections at once."""
    statuses, latencies = [0] * len(requests), [0.0] * len(requests)
    sel = selectors.DefaultSelector()
    queue = iter(range(len(requests)))

    def send_next(c: _Conn) -> bool:
        i = next(queue, None)
        if i is None:
            sel.unregister(c.sock)
            c.sock.close()
            return False
        c.index, c.sent, c.buf = i, time.perf_counter(), bytearray()
        c.sock.sendall(requests[i])
        return True

    began = time.perf_counter()
    active = 0
    for _ in range(min(conns, len(requests))):
        sock = socket.create_connection(_address(url), timeout=60)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = _Conn(sock)
        sel.register(sock, selectors.EVENT_READ, conn)
        active += send_next(conn)
    while active:
        events = sel.select(timeout=60)
        if not events:
            raise TimeoutError("the intake answered nothing for 60 s")
        for key, _ in events:
            c: _Conn = key.data
            chunk = c.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the intake closed a keep-alive connection")
            c.buf += chunk
            status = _complete(c.buf)
            if status is None:
                continue
            statuses[c.index] = status
            latencies[c.index] = time.perf_counter() - c.sent
            if not send_next(c):
                active -= 1
    sel.close()
    return Answers(statuses, latencies, time.perf_counter() - began)


def paced(
    url: str, path: str, token: str, bodies: Sequence[bytes], rate: float, threads: int = 16
) -> Answers:
    """Post ``bodies`` at ``rate`` posts/s. Each post is sent at its time by whichever of
    ``threads`` threads (one keep-alive connection each) is free, so one slow answer does
    not hold back the posts behind it unless every thread is busy."""
    statuses, latencies = [0] * len(bodies), [0.0] * len(bodies)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    t_zero = time.perf_counter() + 0.2
    schedule = iter(range(len(bodies)))
    lock = threading.Lock()

    def work() -> None:
        host, port = _address(url)
        conn = http.client.HTTPConnection(host, port, timeout=60)
        while True:
            with lock:
                i = next(schedule, None)
            if i is None:
                break
            due = t_zero + i / rate
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            conn.request("POST", path, body=bodies[i], headers=headers)
            resp = conn.getresponse()
            resp.read()
            statuses[i], latencies[i] = resp.status, time.perf_counter() - due
        conn.close()

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return Answers(statuses, latencies, time.perf_counter() - t_zero)


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0
