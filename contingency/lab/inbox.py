"""The lab's notification inbox: a tiny HTTP receiver for apprise ``json://`` URLs.

Every POST is appended as one JSON line to ``<lab_dir>/inbox.jsonl`` with its path
(``/cc``, ``/ops``, ...) so ``contingency lab inbox`` can show what each role was sent
— including the one-time approval codes of the command center. Standard library only.

    python -m contingency.lab.inbox FILE ADDRESS PORT
"""

from __future__ import annotations

import json
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
            with _lock, out.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    return Handler


def serve(out: Path, address: str, port: int) -> ThreadingHTTPServer:
    return ThreadingHTTPServer((address, port), make_handler(out))


def read(out: Path, path: str | None = None) -> list[dict[str, object]]:
    if not out.exists():
        return []
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines() if line]
    return [r for r in rows if path is None or r.get("path") == path]


if __name__ == "__main__":
    serve(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])).serve_forever()
