"""Background processes the stack starts: spawn detached, record pid, stop by group.

Each component runs in its own session, so its process group is its pid. Stopping a
component stops its whole group — even when the leader already exited and only its
children (e.g. flow runs forked by a killed fork server) are left. Where a stale pid
file may name a reused pid, ``owned`` (see :func:`has_env`) decides whether a process
is really ours before it is signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import requests

from inventory.errors import StartupError


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def local_address(host: str) -> str:
    """The address a client on this machine uses for a server bound to ``host``.

    >>> local_address("0.0.0.0"), local_address("192.0.2.7")
    ('127.0.0.1', '192.0.2.7')
    """
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)  # noqa: S104


def port_free(host: str, port: int) -> bool:
    """Can a server bind ``host:port`` now (nobody listens there)?"""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def port_or_free(preferred: int, hosts: list[str], explicit: bool = False) -> int:
    """``preferred`` if it is free on every one of ``hosts``, else a port that is (one
    the kernel hands out on the first, checked on the rest). A port the user asked for
    explicitly is kept as it is: a clash then fails loudly where it is used.

    >>> port_or_free(0, ["127.0.0.1"]) > 0
    True
    """
    if explicit or (preferred and all(port_free(h, preferred) for h in hosts)):
        return preferred
    for _ in range(50):
        port = free_port(hosts[0])
        if all(port_free(h, port) for h in hosts[1:]):
            return port
    raise StartupError(f"no port free on all of {', '.join(hosts)}")


def rotate_logs(log_dir: Path, max_bytes: int, keep: int) -> list[str]:
    """Rotate each ``*.log`` in ``log_dir`` bigger than ``max_bytes``: ``x.log.1`` …
    ``x.log.<keep>`` hold the older content (the oldest dropped), and ``x.log`` is
    copied then truncated in place, because the component writing it keeps its file
    open (opened for append: its next line lands at the new end). Returns the names
    rotated. Lines written between the copy and the truncation are lost — the price
    of rotating a file someone else holds open (logrotate's ``copytruncate``)."""
    import shutil

    rotated = []
    for path in sorted(log_dir.glob("*.log")):
        try:
            if path.stat().st_size <= max_bytes:
                continue
            for i in range(keep - 1, 0, -1):
                older = path.with_name(f"{path.name}.{i}")
                if older.exists():
                    older.replace(path.with_name(f"{path.name}.{i + 1}"))
            if keep > 0:  # copied aside, then renamed: x.log.1 appears whole
                partial = path.with_name(f"{path.name}.1.partial")
                shutil.copyfile(path, partial)
                partial.replace(path.with_name(f"{path.name}.1"))
            with path.open("r+b") as fh:
                fh.truncate(0)
            rotated.append(path.name)
        except OSError:
            continue  # a full disk or a file that vanished: try again next time
    return rotated


_children: dict[int, subprocess.Popen[bytes]] = {}
"""Processes this process spawned and has not reaped (kept so that ``subprocess`` does
not reap them behind :func:`reap`'s back and lose their exit status)."""
_children_status: dict[int, int] = {}
_reap_lock = threading.Lock()


def spawn(
    name: str, argv: list[str], env: dict[str, str], run_dir: Path, umask: int = 0o077
) -> int:
    """Start ``argv`` in its own session, output to ``run_dir/<name>.log``; return pid.
    The process runs with ``umask`` (default 077: what it creates is its owner's only).

    If the pid cannot be recorded (e.g. the disk is full) the process is killed again
    and the error raised: an unrecorded process could never be stopped by ``down``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    log = (run_dir / f"{name}.log").open("ab")
    try:
        proc = subprocess.Popen(
            argv,
            cwd=run_dir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            umask=umask,
        )
    finally:
        log.close()
    try:
        (run_dir / f"{name}.pid").write_text(str(proc.pid))
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    _children[proc.pid] = proc
    return proc.pid


def reap() -> dict[int, int]:
    """Collect the exit status of every child started by :func:`spawn` that has exited
    since the last call: {pid: wait status}."""
    for pid in list(_children):
        alive(pid)  # reaps and records
    return {pid: _children_status.pop(pid) for pid in list(_children_status)}


def describe_exit(status: int) -> str:
    """``exited with status 1`` / ``killed by signal 9 (SIGKILL)``."""
    code = os.waitstatus_to_exitcode(status)
    if code >= 0:
        return f"exited with status {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = "?"
    return f"killed by signal {-code} ({name})"


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, pgid) of a process from /proc, None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = raw[raw.rfind(b")") + 2 :].split()
    try:
        return fields[0].decode(), int(fields[1]), int(fields[2])
    except (IndexError, ValueError):
        return None


def _all_pids() -> list[int]:
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (zombies included), from /proc."""
    return [c for c in _all_pids() if (st := _stat(c)) is not None and st[1] == pid]


def has_env(pid: int, marks: dict[str, str]) -> bool:
    """Does the process's environment (as it was started) hold every ``NAME=value`` of
    ``marks``? False for processes that are gone, zombies, or not readable."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    entries = set(raw.split(b"\0"))
    return all(f"{k}={v}".encode() in entries for k, v in marks.items())


def processes_with_env(marks: dict[str, str]) -> list[int]:
    """Every live process whose environment holds ``marks`` — except this process and
    its ancestors (whoever runs ``down`` may have the same variables set)."""
    skip, pid = set(), os.getpid()
    while pid > 1 and pid not in skip:
        skip.add(pid)
        st = _stat(pid)
        pid = st[1] if st else 0
    return [p for p in _all_pids() if p not in skip and alive(p) and has_env(p, marks)]


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group ``pgid``."""
    return _groups([pgid])[pgid]


def _groups(pgids: list[int] | set[int]) -> dict[int, list[int]]:
    """Live (non-zombie) members of each process group, in one pass over /proc."""
    out: dict[int, list[int]] = {g: [] for g in pgids}
    if not out:
        return out
    for pid in _all_pids():
        st = _stat(pid)
        if st and st[2] in out and st[0] not in ("Z", "X"):
            out[st[2]].append(pid)
    return out


def alive(pid: int) -> bool:
    """Is ``pid`` running? A zombie — ours (reaped here) or anyone's — counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with _reap_lock:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:  # only our own children can be waited for
                _collected(pid, status)
                return False
        except ChildProcessError:
            _collected(pid, None)
        st = _stat(pid)
        if st is None or st[0] not in ("Z", "X"):
            return True
        if pid in _children:  # ours, caught between dying and being waitable: collect it
            try:
                _, status = os.waitpid(pid, 0)
                _collected(pid, status)
            except ChildProcessError:
                _collected(pid, None)
        return False


def _collected(pid: int, status: int | None) -> None:
    """Our child ``pid`` was waited for here (``status``) or by someone else (None).
    Its ``Popen`` learns it too: one dropped with no return code would be kept by
    ``subprocess`` and waited for again by pid at the next ``Popen`` — which, once the
    pid is reused by a later child of this process, takes that child's exit status
    (a supervisor then logs a restart's cause as unknown, a ``subprocess.run`` sees 0)."""
    proc = _children.pop(pid, None)
    if status is not None:
        _children_status[pid] = status
    if proc is not None and proc.returncode is None:
        proc.returncode = os.waitstatus_to_exitcode(status) if status is not None else -1


def stop_pids(pids: list[int], grace_s: float = 8.0) -> None:
    """SIGTERM every process (group) at once, wait, then SIGKILL what is left — the
    whole group, even if its leader already exited."""
    stop_groups(pids, None, grace_s)


def stop_groups(
    pids: list[int], owned: Callable[[int], bool] | None = None, grace_s: float = 8.0
) -> list[int]:
    """Stop each recorded process with its whole process group, also when the leader
    already exited and only its group is left: SIGTERM, wait up to ``grace_s``, then
    SIGKILL what is left (and wait for that too). With ``owned``, a group (or process)
    is touched only if one of its members is owned — a stale pid file may name a pid
    the system has since given to someone else. Returns the pids it signalled."""
    groups: set[int] = set()
    singles: set[int] = set()
    for pid, members in _groups({p for p in pids if p > 0}).items():
        if members and (owned is None or any(owned(m) for m in members)):
            groups.add(pid)
        elif alive(pid) and (owned is None or owned(pid)):
            singles.add(pid)

    def left() -> list[int]:
        out = [p for p in singles if alive(p)]
        return out + [m for ms in _groups(groups).values() for m in ms]

    signalled = sorted({*singles, *(m for ms in _groups(groups).values() for m in ms)})
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for g in groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(g, sig)
        for p in singles:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(p, sig)
        deadline = time.monotonic() + (grace_s if sig == signal.SIGTERM else 5.0)
        while time.monotonic() < deadline:
            if not left():
                return signalled
            time.sleep(0.1)
    return signalled


def stop_pid(pid: int, grace_s: float = 8.0) -> None:
    """SIGTERM the process (group), wait, then SIGKILL what is left."""
    stop_pids([pid], grace_s)


def stop_all(run_dir: Path, order: list[str]) -> list[str]:
    """Stop every recorded process, the ones named in ``order`` first; return names."""
    pidfiles = {p.stem: p for p in run_dir.glob("*.pid")} if run_dir.exists() else {}
    names = [n for n in order if n in pidfiles] + sorted(set(pidfiles) - set(order))
    pids = []
    for name in names:
        with contextlib.suppress(ValueError, OSError):
            pids.append(int(pidfiles[name].read_text().strip()))
    stop_pids(pids)
    for name in names:
        pidfiles[name].unlink(missing_ok=True)
    return names


def wait_until(
    check: Callable[[], bool], what: str, timeout_s: float, log: Path | None = None
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # noqa: S110 - still starting
            pass
        time.sleep(0.2)
    tail = ""
    if log and log.exists():
        tail = "\n" + "\n".join(log.read_text(errors="replace").splitlines()[-20:])
    raise StartupError(f"{what} did not become ready within {timeout_s:.0f}s{tail}")


def check_ok(url: str, name: str) -> bool:
    """Does the readiness answer at ``url`` (``/readyz``) say check ``name`` passes?"""
    checks = requests.get(url, timeout=5).json().get("checks", {})
    return bool(checks.get(name, {}).get("ok"))


def http_ok(url: str, auth: str | None = None) -> bool:
    """GET ``url``; ``auth`` is a Prefect auth string ``user:password`` (basic auth)."""
    basic = tuple(auth.split(":", 1)) if auth and ":" in auth else None
    return requests.get(url, timeout=2, auth=basic).ok  # type: ignore[arg-type]
