#!/usr/bin/env python3
"""labctl — the lab's tiny service manager (a stand-in for systemd on lab hosts).

Runs on a lab host (through SSH, like ``systemctl`` would). Each lab host has its own
directory (``LAB_HOST_DIR``, set by the host's sshd) holding ``services.json``:
``{"web": {"address": "127.0.0.2", "port": 8080}}``. Every service is a small HTTP
server answering ``GET /health`` with ``{"service": ..., "pid": ...}``.

    labctl start|stop|restart|status|kill NAME

``kill`` simulates a crash (SIGKILL, pid file left behind). Standard library only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def _host_dir() -> Path:
    return Path(os.environ.get("LAB_HOST_DIR", "."))


def _config(name: str) -> dict:
    services = json.loads((_host_dir() / "services.json").read_text())
    if name not in services:
        sys.exit(f"labctl: unknown service {name!r}")
    return services[name]


def _pidfile(name: str) -> Path:
    return _host_dir() / "run" / f"{name}.pid"


def _pid(name: str) -> int | None:
    try:
        pid = int(_pidfile(name).read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def _wait_up(cfg: dict, timeout: float = 5.0) -> bool:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((cfg["address"], cfg["port"]), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def start(name: str) -> int:
    cfg = _config(name)
    if _pid(name):
        print(f"{name} already running")
        return 0
    _pidfile(name).parent.mkdir(parents=True, exist_ok=True)
    log = open(_host_dir() / "run" / f"{name}.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "serve", name],
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    _pidfile(name).write_text(str(proc.pid))
    if not _wait_up(cfg):
        print(f"{name} did not start listening on {cfg['address']}:{cfg['port']}")
        return 1
    print(f"{name} started (pid {proc.pid})")
    return 0


def stop(name: str, sig: int = signal.SIGTERM) -> int:
    pid = _pid(name)
    if pid:
        os.kill(pid, sig)
        for _ in range(100):
            if _pid(name) is None:
                break
            time.sleep(0.05)
    return 0


def status(name: str) -> int:
    pid = _pid(name)
    print(f"{name} active (pid {pid})" if pid else f"{name} inactive")
    return 0 if pid else 3


def serve(name: str) -> None:
    cfg = _config(name)
    body = json.dumps({"service": name, "pid": os.getpid()}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            ok = self.path in ("/", "/health")
            self.send_response(200 if ok else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body if ok else b"{}")

        def log_message(self, *args: object) -> None:
            pass

    ThreadingHTTPServer((cfg["address"], int(cfg["port"])), Handler).serve_forever()


def _audit(action: str, name: str) -> None:
    """The host's command log (``run/labctl.log``): what was asked of the service
    manager, once a line — so a test can count how often a restart really ran."""
    try:
        (_host_dir() / "run").mkdir(parents=True, exist_ok=True)
        with open(_host_dir() / "run" / "labctl.log", "a", encoding="utf-8") as fh:
            fh.write(f"{time.time():.3f} {action} {name}\n")
    except OSError:
        pass  # a full disk on the host must not stop the service manager


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.exit(__doc__)
    action, name = argv
    if action != "serve":
        _audit(action, name)
    if action == "serve":
        serve(name)
        return 0
    if action == "restart":
        stop(name)
        return start(name)
    if action == "kill":
        return stop(name, signal.SIGKILL)
    actions = {"start": start, "stop": stop, "status": status}
    if action not in actions:
        sys.exit(__doc__)
    return actions[action](name)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
