"""Restore throughput: a backup restored to a (real sshd) host from (real SeaweedFS) S3,
both ways, against the raw paths they are made of, measured in the same run on the
same bytes:

- ``boto3``: ``client.download_file`` of the object to a local file;
- ``sftp``:  paramiko ``SFTPClient.put`` of the same bytes to the host;
- ``restore-sftp``: ``tasks.actions.restore.restore_point`` with ``restore_via: sftp`` —
  S3 → SFTP streamed with SHA-256 on the fly, SHA-256 again on the host,
  format/verify checks, atomic swap;
- ``restore-direct``: the same with ``restore_via: direct`` — the host downloads the
  object itself (curl, pre-signed URL), SHA-256 on the host, the same checks and swap.

Each path runs in a child process so its peak RSS is its own. The four paths run in
``--rounds`` rounds (default 3), each round starting with a different path, and the
ratios are those of the median times: on a VM, writing a fresh GiB can cost up to 3×
more one minute than the next, so one round's ratio is mostly the luck of its
denominator. Targets: direct restore ≥ 0.8× raw boto3 GET, SFTP restore ≥ 0.8× raw
SFTP put (medians), peak RSS ≤ 256 MiB, SHA-256 of both restored files verified.

    .venv/bin/python -m benchmarks.restore_throughput            # 1 GiB, 3 rounds
    .venv/bin/python -m benchmarks.restore_throughput --mib 256 --rounds 1  # quicker
"""

from __future__ import annotations

import argparse
import getpass
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

KEY_ID, KEY = "bench-s3-key-id", "bench-s3-key"
SSH_SECRET = "bench-ssh-key"


def _env_for(work: Path) -> dict[str, str]:
    return {
        **os.environ,
        "CONTINGENCY_SECRET_BENCH_S3_KEY_ID": "bench",
        "CONTINGENCY_SECRET_BENCH_S3_KEY": "bench-secret",
        "CONTINGENCY_SECRET_BENCH_SSH_KEY": (work / "id_ed25519").read_text(),
        "CONTINGENCY_STATE_DIR": str(work / "state"),
        "HOME": str(work / "home"),
    }


PATHS = ("boto3", "sftp", "restore-sftp", "restore-direct")


def _objects(cfg: dict[str, str], via: str = "sftp"):  # type: ignore[no-untyped-def]
    from inventory.datasets import BackupLocation, Dataset
    from inventory.models import Host

    loc = BackupLocation(
        bucket="bench", prefix="ds", endpoint=cfg["endpoint"], key_id_ref=KEY_ID, key_ref=KEY
    )
    host = Host(
        name="bench", address="127.0.0.1", port=int(cfg["port"]), user=getpass.getuser(),
        key_secret=SSH_SECRET, host_key=cfg["host_key"],
    )  # fmt: skip
    path = cfg.get(f"target-{via}", "/not-restored")
    ds = Dataset(host="bench", path=path, location=loc, restore_via=via)  # type: ignore[arg-type]
    return loc, host, ds


def child(which: str, cfg: dict[str, str]) -> dict[str, float]:
    """One path, in this (child) process; prints seconds and peak RSS."""
    from tasks.actions.restore import restore_point
    from tasks.ssh.run import SSHConnection
    from tasks.storage import Store

    loc, host, ds = _objects(cfg, which.removeprefix("restore-") if "-" in which else "sftp")
    store = Store.for_location(loc)
    started = time.monotonic()
    if which == "boto3":
        store.client.download_file(loc.bucket, cfg["key"], cfg["local"])
    elif which == "sftp":
        conn = SSHConnection.connect(host)
        sftp = conn.open_sftp()
        sftp.put(cfg["source"], cfg["sftp"])
        sftp.close()
        conn.close()
    else:
        [point] = store.restore_points(loc.prefix)
        conn = SSHConnection.connect(host)
        res = restore_point(ds, conn, store, point)
        conn.close()
        if not res.ok or res.via != ds.restore_via:
            raise SystemExit(f"restore via {res.via} failed: {res.reason}")
    took = time.monotonic() - started
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB → MiB
    return {"seconds": took, "rss_mib": rss}


def _run_child(which: str, cfg: dict[str, str], env: dict[str, str]) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.restore_throughput", "--child", which,
         "--cfg", json.dumps(cfg)],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if out.returncode != 0:
        raise SystemExit(f"{which} failed:\n{out.stdout}\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(4 << 20):
            h.update(chunk)
    return h.hexdigest()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mib", type=int, default=1024, help="backup size (default 1 GiB)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of the four paths")
    ap.add_argument("--child")
    ap.add_argument("--cfg")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, json.loads(args.cfg))))
        return 0

    from contingency.lab.s3 import start_s3
    from contingency.lab.sshd import SshdServer, generate_client_key

    console = Console()
    work = Path(tempfile.mkdtemp(prefix="bench-restore-"))
    (work / "home").mkdir()
    pub = generate_client_key(work / "id_ed25519")
    srv = start_s3(work / "s3")
    sshd = SshdServer(work / "sshd", authorized_keys=[pub])
    sshd.start()
    try:
        source = work / "backup.bin"
        with console.status(f"writing {args.mib} MiB of random data"), source.open("wb") as f:
            for _ in range(args.mib):
                f.write(os.urandom(1 << 20))
        (work / "host").mkdir()
        cfg = {
            "endpoint": srv.endpoint, "port": str(sshd.port), "host_key": sshd.host_key_line,
            "target-sftp": str(work / "host" / "via-sftp.bin"),
            "target-direct": str(work / "host" / "via-direct.bin"),
            "sftp": str(work / "host" / "put.bin"), "source": str(source),
            "local": str(work / "boto3.bin"),
        }  # fmt: skip
        env = _env_for(work)
        os.environ.update({k: v for k, v in env.items() if k.startswith("CONTINGENCY_")})
        from tasks.storage import Store

        loc, _, _ = _objects(cfg)
        store = Store.for_location(loc)
        store.ensure_bucket()
        with (
            console.status("uploading the backup (multipart, with manifest)"),
            source.open("rb") as f,
        ):
            man = store.upload_stream(
                "ds/bench.bin", f, source_host="bench", source_path=str(source), fmt="file"
            )
        cfg["key"] = man.key
        runs: dict[str, list[dict[str, float]]] = {which: [] for which in PATHS}
        for n in range(args.rounds):
            if n:  # free the disk; the last round's restored copies are checked below
                for path in (work / "host").iterdir():
                    path.unlink()
                Path(cfg["local"]).unlink()
            for which in PATHS[n % len(PATHS) :] + PATHS[: n % len(PATHS)]:
                os.sync()  # no path pays for the previous one's dirty pages
                time.sleep(1)
                with console.status(f"round {n + 1}/{args.rounds}: {which}"):
                    runs[which].append(_run_child(which, cfg, env))
        verified = all(_sha256(Path(cfg[f"target-{v}"])) == man.sha256 for v in ("sftp", "direct"))
    finally:
        sshd.stop()
        srv.kill()
    size = args.mib
    table = Table("path", "median s", "MiB/s", "each round (s)", "peak RSS (MiB)")
    secs = {which: statistics.median(r["seconds"] for r in rs) for which, rs in runs.items()}
    for which, rs in runs.items():
        each = " ".join(f"{r['seconds']:.2f}" for r in rs)
        rss_one = max(r["rss_mib"] for r in rs)
        table.add_row(
            which, f"{secs[which]:.2f}", f"{size / secs[which]:.1f}", each, f"{rss_one:.0f}"
        )
    console.print(table)
    for n in range(args.rounds):
        console.print(
            f"round {n + 1}: direct "
            f"{runs['boto3'][n]['seconds'] / runs['restore-direct'][n]['seconds']:.2f}x, sftp "
            f"{runs['sftp'][n]['seconds'] / runs['restore-sftp'][n]['seconds']:.2f}x"
        )
    direct = secs["boto3"] / secs["restore-direct"]
    relay = secs["sftp"] / secs["restore-sftp"]
    rss = max(r["rss_mib"] for which in ("restore-sftp", "restore-direct") for r in runs[which])
    console.print(
        f"medians: restore of {size} MiB via direct: {size / secs['restore-direct']:.1f} MiB/s = "
        f"{direct:.2f}x raw boto3 GET (target ≥ 0.8x)\n"
        f"restore of {size} MiB via sftp: {size / secs['restore-sftp']:.1f} MiB/s = "
        f"{relay:.2f}x raw SFTP put (target ≥ 0.8x)\n"
        f"restores' peak RSS {rss:.0f} MiB (target ≤ 256); SHA-256 of both restored files "
        f"{'matches' if verified else 'DIFFERS'}"
    )
    shutil.rmtree(work, ignore_errors=True)
    return 0 if min(direct, relay) >= 0.8 and rss <= 256 and verified else 1


if __name__ == "__main__":
    raise SystemExit(main())
