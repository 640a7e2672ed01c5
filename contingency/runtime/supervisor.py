"""The supervisor: restarts a component of the embedded stack that died.

Started last by ``contingency up`` (``<state>/run/supervisor.pid``) and stopped first
by ``contingency down``::

    python -m contingency.runtime.supervisor STATE_DIR

Every second it checks each recorded component (server, fork server, worker, intake,
reconciler). One whose process is gone is started again with the argv recorded in
``<state>/run/components.json`` and the environment in ``<state>/run/env.json``
(mode 0600), the way ``up`` starts it (``contingency.runtime.stack._start``: spawn, then wait
until it is ready). Restarts back off — 1 s, 2 s, 4 s … at most 30 s — and the backoff
is forgotten once a component has stayed up for 60 s. A restart that fails (the state
disk is full, the port is taken …) is logged and tried again with the same backoff.

After each restart the command center is paged (event ``component_restarted``); a
broken pager is logged, never fatal. Everything goes to ``<state>/run/supervisor.log``.

A component whose pid file is missing was stopped on purpose (``down``, or a
benchmark that wants it stopped) and is left alone; ``contingency.runtime.stack.restart``
holds the component's lock while it works, and so does the supervisor.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from contingency.runtime.processes import (
    alive,
    describe_exit,
    has_env,
    reap,
    rotate_logs,
    stop_groups,
)

CHECK_S = 1.0
BACKOFF_MIN_S = 1.0
BACKOFF_MAX_S = 30.0
STABLE_S = 60.0
ROTATE_EVERY_S = 10.0
"""How often the component logs in ``run/`` are checked against ``log_max_bytes``."""
KEEP_GROUP = {"forkserver", "worker"}
"""Components whose leftover process group is NOT cleaned up before a restart: the
fork server's group holds the flow runs (some waiting at a gate), the worker's the
launchers that relay their exit codes."""


def log(message: str) -> None:
    """One line to stdout (= ``run/supervisor.log``); a full disk must not stop us."""
    with contextlib.suppress(OSError):
        print(f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S}Z {message}", flush=True)


def backoff(failures: int) -> float:
    """Delay before the next restart after ``failures`` quick deaths or failed tries."""
    return min(BACKOFF_MAX_S, BACKOFF_MIN_S * 2 ** min(failures, 16))


@dataclass
class Watch:
    name: str
    pid: int = 0
    up_since: float = 0.0
    """monotonic time the current process was first seen running"""
    restarts: int = 0
    failures: int = 0
    """restarts (and failed tries) since the component last stayed up STABLE_S"""
    dead_since: float | None = None
    how: str = ""
    next_try: float = 0.0


class Supervisor:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.run_dir = state_dir / "run"
        meta = json.loads((self.run_dir / "components.json").read_text())
        self.argvs: dict[str, list[str]] = meta["argv"]
        from contingency.runtime.stack import COMPONENTS

        self.names = [n for n in meta.get("supervised", COMPONENTS) if n in self.argvs]
        base = self._env("supervisor") or dict(os.environ)
        self.marks: dict[str, str] = {
            k: base[k] for k in ("CONTINGENCY_STATE_DIR", "CONTINGENCY_FORKSERVER") if k in base
        }
        self.watches = {n: Watch(n) for n in self.names}
        self.exits: dict[int, int] = {}
        self.checks: dict[str, threading.Thread] = {}

    def _env(self, name: str) -> dict[str, str] | None:
        from contingency.runtime.stack import component_env

        try:
            return component_env(self.run_dir, name)
        except (OSError, ValueError, KeyError):
            return None

    def owned(self, pid: int) -> bool:
        return has_env(pid, self.marks) if self.marks else True

    def run(self) -> None:
        log(f"supervising {', '.join(self.names)} (pid {os.getpid()})")
        from inventory.settings import Settings

        settings = Settings()
        rotated_at = 0.0
        while True:
            self.tick()
            if time.monotonic() - rotated_at >= ROTATE_EVERY_S:
                rotated_at = time.monotonic()
                for name in rotate_logs(self.run_dir, settings.log_max_bytes, settings.log_keep):
                    log(f"rotated {name}")
            time.sleep(CHECK_S)

    def tick(self) -> None:
        """Check every component, each in its own thread: a server that takes a minute
        to come back must not hold up the fork server's restart."""
        self.exits.update(reap())
        for name in self.names:
            running = self.checks.get(name)
            if running is not None and running.is_alive():
                continue
            self.checks[name] = threading.Thread(
                target=self._check, args=(name,), name=f"check-{name}", daemon=True
            )
            self.checks[name].start()

    def _check(self, name: str) -> None:
        try:
            self.check(name)
        except Exception as exc:  # noqa: BLE001 - keep supervising
            log(f"{name}: supervisor error {type(exc).__name__}: {exc}")
            log(traceback.format_exc().rstrip())

    def check(self, name: str) -> None:
        from contingency.runtime.stack import component_lock

        w = self.watches[name]
        pidfile = self.run_dir / f"{name}.pid"
        if not pidfile.exists():  # stopped on purpose
            w.dead_since = None
            return
        with component_lock(self.run_dir, name, wait=False) as mine:
            if not mine:  # `restart` is at work on it
                return
            now = time.monotonic()
            try:
                pid = int(pidfile.read_text().strip())
            except (OSError, ValueError):
                pid = 0
            if pid and alive(pid):
                if self.owned(pid):
                    if pid != w.pid:
                        w.pid, w.up_since, w.dead_since = pid, now, None
                    if w.failures and now - w.up_since >= STABLE_S:
                        w.failures = 0
                    return
                # no stack environment: it is exiting right now, or the pid was reused
                deadline = time.monotonic() + 1.0
                while alive(pid) and time.monotonic() < deadline:
                    time.sleep(0.02)
            if w.dead_since is None:
                w.dead_since = now
                w.how = self._how(pid)
                if w.failures and w.pid == pid and now - w.up_since >= STABLE_S:
                    w.failures = 0
                w.next_try = now + backoff(w.failures)
                log(f"{name} (pid {pid or '?'}) {w.how}; restarting in {w.next_try - now:.0f} s")
            if now >= w.next_try:
                self.restart(w, pid)

    def _how(self, pid: int) -> str:
        self.exits.update(reap())
        if pid in self.exits:
            return describe_exit(self.exits.pop(pid))
        if not pid:
            return "has no readable pid file"
        if alive(pid):
            return f"is gone (pid {pid} now belongs to another process)"
        return "died (exit status unknown: it was not started by the supervisor)"

    def restart(self, w: Watch, old_pid: int) -> None:
        from contingency.runtime.stack import _start

        name = w.name
        if old_pid and name not in KEEP_GROUP:
            # what the dead leader left behind (e.g. a child still holding its port)
            stop_groups([old_pid], self.owned, 5.0)
        env = self._env(name)
        try:
            if env is None:
                raise RuntimeError(f"no recorded environment for {name} in run/env.json")
            pid = _start(self._settings(env), name, self.argvs, env, self.run_dir)
        except Exception as exc:  # noqa: BLE001 - keep trying, with backoff
            w.failures += 1
            w.next_try = time.monotonic() + backoff(w.failures)
            first = str(exc).splitlines()[0] if str(exc) else ""
            log(
                f"could not restart {name}: {type(exc).__name__}: {first}; "
                f"next try in {backoff(w.failures):.0f} s"
            )
            self._undo(name, old_pid)
            return
        w.restarts += 1
        w.failures += 1
        w.pid, w.up_since, w.dead_since = pid, time.monotonic(), None
        at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        summary = (
            f"{name} (pid {old_pid or '?'}) {w.how}; restarted at {at} as pid {pid}, "
            f"restart #{w.restarts}"
        )
        log(f"restarted {summary}")
        self.page(name, summary)

    def _undo(self, name: str, old_pid: int) -> None:
        """A start that failed half-way (not ready in time) leaves nothing running."""
        try:
            pid = int((self.run_dir / f"{name}.pid").read_text().strip())
        except (OSError, ValueError):
            return
        if pid != old_pid and alive(pid):
            stop_groups([pid], self.owned, 5.0)

    @staticmethod
    def _settings(env: dict[str, str]):  # type: ignore[no-untyped-def]
        from inventory.settings import Settings

        return Settings(
            state_dir=Path(env["CONTINGENCY_STATE_DIR"]),
            inventory=Path(env["CONTINGENCY_INVENTORY"])
            if env.get("CONTINGENCY_INVENTORY")
            else None,
        )

    def page(self, name: str, summary: str) -> None:
        """Tell the command center, in the background: a slow channel must not delay
        the next restart, and a broken one must not stop the supervisor."""
        env = self._env(name) or dict(os.environ)
        threading.Thread(
            target=_page, args=(name, summary, env), name=f"page-{name}", daemon=True
        ).start()


def _page(name: str, summary: str, env: dict[str, str]) -> None:
    try:
        from inventory.loader import load_inventory
        from tasks.notify import Pager

        settings = Supervisor._settings(env)
        pager = Pager(
            load_inventory(settings.inventory_path()),
            settings.language,
            {"component": name, "summary": summary},
        )
        pager.event("component_restarted", {"component": name, "summary": summary})
        sent = pager.flush()
        failed = [f"{d.channel}: {d.error}" for d in sent if not d.ok]
        ok = sum(d.ok for d in sent)
        log(
            f"paged component_restarted for {name}: {ok} delivered"
            + (f", failed: {'; '.join(failed)}" if failed else "")
        )
    except Exception as exc:  # noqa: BLE001 - paging must never stop the supervisor
        log(f"paging component_restarted for {name} failed: {type(exc).__name__}: {exc}")


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m contingency.runtime.supervisor STATE_DIR", file=sys.stderr)
        raise SystemExit(2)

    def stop(signum: int, _frame: object) -> None:
        log(f"stopping on signal {signum}")
        os._exit(0)  # at once: `down` is stopping everything; pages in flight are moot

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    Supervisor(Path(args[0])).run()


if __name__ == "__main__":
    main()
