"""uvicorn's httptools protocol with bounded request heads: size, field count and time.

httptools (llhttp) has no limit of its own: it hands every header name and value piece
to Python, which joins them, so one connection sending a 256 MiB header made the intake
hold hundreds of MB before it could answer 401. ``GuardedHttpTools`` counts the bytes of
each request head (request line + headers) *before* they reach the parser and feeds it
at most ``CONTINGENCY_INTAKE_MAX_HEADER_BYTES``; more, or more than
``CONTINGENCY_INTAKE_MAX_HEADERS`` fields, is answered ``431``; a head that has not
arrived ``CONTINGENCY_INTAKE_HEADER_TIMEOUT_S`` after the connection (or after the
first byte of a keep-alive request) is answered ``408``. After such an answer the
connection is half-closed and what the client still sends is read and dropped for at
most ``LINGER_S`` (so it gets the answer instead of a reset), then closed.

The stack starts the intake with it (``contingency/runtime/stack.py``)::

    uvicorn --http contingency.intake.protocol:GuardedHttpTools ...

Bodies are not buffered here beyond what uvicorn itself holds (64 KiB, then it stops
reading until the application asks for more — which the intake does only after auth).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from inventory.settings import Settings

log = logging.getLogger("contingency.intake")
LINGER_S = 1.0
"""After a 431/408, drop what the client still sends this long before closing."""


class _TooManyHeaders(Exception):
    pass


class HeadLimits:
    """The head limits of this process (read once from the environment)."""

    _loaded: tuple[int, int, float] | None = None

    @classmethod
    def get(cls) -> tuple[int, int, float]:
        if cls._loaded is None:
            s = Settings()
            cls._loaded = (
                s.intake_max_header_bytes,
                s.intake_max_headers,
                s.intake_header_timeout_s,
            )
        return cls._loaded


class GuardedHttpTools(HttpToolsProtocol):
    """``HttpToolsProtocol`` that refuses oversized, over-long and slow request heads."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_head, self.max_fields, self.head_timeout = HeadLimits.get()
        self._in_head = True  # waiting for (the rest of) a request line and headers
        self._head_bytes = 0
        self._fields = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._refusal: tuple[int, str] | None = None
        self._refused = False

    # connection -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # lingering after a refusal: drop it
        if self._in_head and self._head_timer is None:
            self._arm_head_timer()  # first byte of a keep-alive request
        while data:
            if not self._in_head:
                super().data_received(data)
                return
            room = self.max_head - self._head_bytes
            if room <= 0:
                self._refuse(431, "Request header fields too large")
                return
            piece, data = data[:room], data[room:]
            self._head_bytes += len(piece)
            super().data_received(piece)
            if self._refused or self.transport.is_closing():
                return

    # parser callbacks ---------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._fields = 0
        super().on_message_begin()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._fields += 1
        if self._fields > self.max_fields:
            self._refusal = (431, "Too many header fields")
            raise _TooManyHeaders  # httptools stops and raises HttpParserCallbackError
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        self._cancel_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True  # the next bytes are the next request's head
        self._head_bytes = 0

    def send_400_response(self, msg: str) -> None:
        """uvicorn answers a parser error 400; ours (too many fields) is a 431."""
        if self._refusal is not None:
            self._refuse(*self._refusal)
        else:
            super().send_400_response(msg)

    # refusing -----------------------------------------------------------------------
    def _arm_head_timer(self) -> None:
        if self.head_timeout > 0:
            self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self._in_head or self.transport.is_closing():
            return
        if self._head_bytes:
            self._refuse(408, "Request header timeout")
        else:  # nothing of a request arrived: just close (like an idle keep-alive)
            self.transport.close()

    def _refuse(self, status: int, reason: str) -> None:
        """Answer ``status`` and close; the rest of what the client sends is dropped."""
        if self._refused or self.transport.is_closing():
            return
        self._refused = True
        self._cancel_head_timer()
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "?"
        log.info("intake: %s %s from %s; connection closed", status, reason, client)
        body = reason.encode("ascii")
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
            body,
        ]
        self.transport.write(b"".join(head))
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.flow.resume_reading()  # keep draining so the client sees the answer, not a reset
        self.loop.call_later(LINGER_S, self.transport.close)
