"""The lab's notification inbox: a tiny HTTP receiver for apprise ``json://`` URLs.

Every POST is appended as one JSON line to ``<lab_dir>/inbox.jsonl`` with its path
(``/cc``, ``/ops``, ... for roles; ``/person/NAME`` for a person's own channel) so
``contingency lab inbox`` can show what each role or person was sent — including each
approver's own one-time code (``--person``). Standard library only.

    python -m contingency.lab.inbox FILE ADDRESS PORT
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

_lock = threading.Lock()


def make_handler(out: Path) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            size = min(int(self.headers.get("Content-Length") or 0), 1 << 20)
            raw = self.rfile.read(size)
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                body = {"raw": raw.decode(errors="replace")}
            record = {"at": time.time(), "path": self.path, **body}
            fd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)  # owner only
            with _lock, open(fd, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    return Handler


def serve(out: Path, address: str, port: int) -> ThreadingHTTPServer:
    return ThreadingHTTPServer((address, port), make_handler(out))


def person_path(name: str) -> str:
    """The inbox path of a person's own lab channel (see ``LAB_CHANNELS``)."""
    return f"/person/{name}"


def read(out: Path, path: str | None = None) -> list[dict[str, object]]:
    if not out.exists():
        return []
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines() if line]
    return [r for r in rows if path is None or r.get("path") == path]


_CODE = re.compile(r"code: (\d{6})")


def codes_for(out: Path, run_id: str, person: str) -> list[str]:
    """Every one-time sign-off code ``person``'s own lab channel got for a flow run,
    oldest first (a reminder repeats a code that is still valid)."""
    return [
        m.group(1)
        for msg in read(out, person_path(person))
        if run_id in str(msg.get("message", "")) and (m := _CODE.search(str(msg["message"])))
    ]


if __name__ == "__main__":
    serve(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])).serve_forever()
