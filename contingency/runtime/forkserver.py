"""Fork server: a warm interpreter that forks one child per flow run.

Started by ``contingency up`` beside the worker. It imports Prefect and the flow
modules once, then waits on a unix socket (mode 0600) for ``contingency.runtime.forkexec``.
Each request carries the launcher's stdio descriptors, environment and working
directory; the server forks, the child takes them over and runs Prefect's engine
exactly as ``python -m prefect.engine`` would. The server itself starts no threads,
so forking is safe. A run outlives its launcher, so restarting the worker does not
kill runs waiting at a gate.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import runpy
import selectors
import signal
import socket
import struct
import sys
import traceback
from pathlib import Path
from typing import NotRequired, TypedDict

from remediations import MODULES
from tasks.prefect_api import share_api_tls_context

PRELOAD = [
    "prefect.engine",
    "prefect.flow_engine",
    "flows.incident",
    # Imported lazily by every incident before its first command (the task engine,
    # the target lock's leases, the suspension observer, the plans, the security
    # holds): importing them in each run cost ~0.2 s of CPU.
    "prefect.task_engine",
    "prefect.concurrency._sync",
    "prefect.concurrency._leases",
    "prefect._flow_run_suspension",
    "prefect._internal.observers",
    "anyio._backends._asyncio",
    "prefect.utilities.visualization",
    "remediations.executor",
    "tasks.security.holds",
    *MODULES.values(),
]
"""Modules a run would otherwise import itself (none of them starts a thread)."""


class LaunchRequest(TypedDict):
    """What ``contingency.runtime.forkexec`` sends (JSON): the run's process as it would be."""

    env: dict[str, str]
    cwd: str
    argv: NotRequired[list[str]]


def _child(req: LaunchRequest, fds: list[int], log_dir: Path) -> None:
    code = 1
    try:
        # Output goes to a per-run file, not to the launcher's pipes: the run must
        # outlive its launcher, and a write to a dead pipe would kill it (rich exits on
        # BrokenPipeError). Prefect's logs reach the API either way.
        run_id = str(dict(req["env"]).get("PREFECT__FLOW_RUN_ID", "unknown"))
        log_fd = _open_log(log_dir / f"{run_id[:64]}.log")
        null_fd = os.open(os.devnull, os.O_RDONLY)
        for target, fd in ((0, null_fd), (1, log_fd), (2, log_fd)):
            os.dup2(fd, target)
        for fd in (*fds, log_fd, null_fd):
            os.close(fd)
        os.chdir(str(req["cwd"]))
        os.environ.clear()
        env = {str(k): str(v) for k, v in dict(req["env"]).items()}
        # The worker's control channel would tie the run's life to the worker process;
        # cancellation still arrives as SIGTERM through the launcher (see forkexec).
        for key in ("PREFECT__CONTROL_PORT", "PREFECT__CONTROL_TOKEN"):
            env.pop(key, None)
        os.environ.update(env)
        sys.argv = ["prefect.engine", *[str(a) for a in req.get("argv") or []]]
        runpy.run_module("prefect.engine", run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - report anything and exit non-zero
        traceback.print_exc()
    finally:
        _flush_and_exit(code)


def _open_log(path: Path) -> int:
    """A run's log file, or /dev/null when the state disk is full or broken: a run must
    never die because its local log cannot be written (its logs reach the API)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    except OSError:
        return os.open(os.devnull, os.O_WRONLY)


def _flush_and_exit(code: int) -> None:
    """Leave a forked child without running the parent's cleanup (atexit, finalizers)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def _warm_notifications() -> None:
    """Load apprise and its plugins once here: the first notification of every run
    (``incident_opened``, sent from a background thread while the plan runs) otherwise
    imports ~700 modules (~0.3 s of CPU competing with the run's path to its first
    command). Parsing a URL sends nothing and starts no thread."""
    try:
        import apprise

        apprise.Apprise().add("json://localhost")
    except Exception as exc:  # noqa: BLE001 - only a warm-up: the run imports it itself
        print(f"fork server: apprise not preloaded: {exc}", file=sys.stderr)


class ForkServer:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.sel = selectors.DefaultSelector()
        self.children: dict[int, socket.socket] = {}
        self.by_conn: dict[socket.socket, int] = {}
        self.run_ids: dict[int, str] = {}

    def _read_request(self, conn: socket.socket) -> tuple[LaunchRequest, list[int]]:
        msg, fds, _, _ = socket.recv_fds(conn, 1 << 16, 3)
        (size,) = struct.unpack("!I", msg[:4])
        data = msg[4:]
        while len(data) < size:
            chunk = conn.recv(size - len(data))
            if not chunk:
                raise ConnectionError("launcher closed the request early")
            data += chunk
        return json.loads(data), list(fds)

    def _accept(self, srv: socket.socket) -> None:
        conn, _ = srv.accept()
        try:
            req, fds = self._read_request(conn)
        except (OSError, ValueError, struct.error):
            conn.close()
            return
        pid = os.fork()
        if pid == 0:
            self.sel.close()
            srv.close()
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            conn.close()
            _child(req, fds, self.path.parent / "flows")
        for fd in fds:
            os.close(fd)
        run_id = str(dict(req["env"]).get("PREFECT__FLOW_RUN_ID", ""))
        if run_id:
            self.run_ids[pid] = run_id
            flows = self.path.parent / "flows"
            try:  # for `contingency down` and the tests; a full disk must not stop us
                flows.mkdir(parents=True, exist_ok=True)
                (flows / f"{run_id[:64]}.pid").write_text(str(pid))
            except OSError as exc:
                print(f"fork server: pid file of {run_id}: {exc}", file=sys.stderr)
        with contextlib.suppress(OSError):
            conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
        self.children[pid] = conn
        self.by_conn[conn] = pid
        self.sel.register(conn, selectors.EVENT_READ, "conn")

    def _launcher_gone(self, conn: socket.socket) -> None:
        """The launcher exited (e.g. its worker was restarted). The run keeps going —
        a gate may be waiting for hours — and reports its own state to the API;
        cancellation still arrives as a signal forwarded while the launcher lives."""
        try:
            data = conn.recv(1)
        except OSError:
            data = b""
        if data:
            return
        self.sel.unregister(conn)
        self.by_conn.pop(conn, None)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            conn = self.children.pop(pid, None)
            run_id = self.run_ids.pop(pid, "")
            if conn is None:
                continue
            code = os.waitstatus_to_exitcode(status)
            if run_id:
                with contextlib.suppress(OSError):
                    (self.path.parent / "flows" / f"{run_id[:64]}.pid").unlink(missing_ok=True)
                if code != 0:
                    self._postmortem(run_id, code if code >= 0 else 128 - code)
            with contextlib.suppress(OSError):
                conn.sendall(
                    json.dumps({"exit": code if code >= 0 else 128 - code}).encode() + b"\n"
                )
            if self.by_conn.pop(conn, None) is not None:
                self.sel.unregister(conn)
            conn.close()

    def _postmortem(self, run_id: str, code: int) -> None:
        """A run's process ended badly: in a fresh child, mark the run Crashed if it
        never reported a final state, release its target lock and escalate
        (contingency/runtime/postmortem.py). The server itself starts no threads."""
        if os.fork() != 0:
            return  # reaped by _reap like any child
        self.sel.close()
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        code_out = 1
        try:
            fd = _open_log(self.path.parent / "flows" / f"{run_id[:64]}.log")
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            from contingency.runtime.postmortem import postmortem

            print(f"post-mortem: {postmortem(run_id, code)}", flush=True)
            code_out = 0
        except BaseException:  # noqa: BLE001 - log and exit
            traceback.print_exc()
        finally:
            _flush_and_exit(code_out)

    def serve(self) -> None:
        from contingency.runtime.deploy import read_deployments

        entrypoints = [str(d["entrypoint"]) for d in read_deployments()]
        for module in [*PRELOAD, *(e.rsplit(".", 1)[0] for e in entrypoints if ":" not in e)]:
            importlib.import_module(module)
        _warm_notifications()
        # Before forking: every run's Prefect clients share this process's TLS context.
        share_api_tls_context()
        self.path.unlink(missing_ok=True)
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(str(self.path))
        self.path.chmod(0o600)
        srv.listen(64)
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        os.set_blocking(wake_r, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        self.sel.register(srv, selectors.EVENT_READ, "accept")
        self.sel.register(wake_r, selectors.EVENT_READ, "signal")
        try:
            while True:
                for key, _ in self.sel.select():
                    if key.data == "accept":
                        self._accept(srv)
                    elif key.data == "signal":
                        os.read(wake_r, 4096)
                        self._reap()
                    else:
                        self._launcher_gone(key.fileobj)  # type: ignore[arg-type]
        finally:
            self.path.unlink(missing_ok=True)


def main() -> None:
    ForkServer(Path(sys.argv[1])).serve()


if __name__ == "__main__":
    main()
