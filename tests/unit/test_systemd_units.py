"""The systemd units in packaging/systemd: valid for systemd, hardened, and starting only
commands of the interface docs/deployment.md describes.

There is no running systemd here. ``systemd-analyze verify`` still parses a unit file
completely — every directive, every value — but prints an unknown key or a bad value as
a *warning* and exits 0, and exits 1 only for hard errors (an ExecStart binary that does
not exist, no ExecStart). So a unit passes only with exit 0 AND no line of output about
any of our units. The units name ``/opt/contingency/venv/bin/...``, which does not exist
on a test machine: each check copies all the units into a temporary directory (so their
references to each other resolve to these copies) and points the Exec lines at stub
executables there; every other line is verified as shipped. The negative tests prove that
a misspelled directive, a bad value or a missing binary fails the same check.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT_DIR = Path(__file__).resolve().parents[2] / "packaging" / "systemd"
VENV_BIN = "/opt/contingency/venv/bin/"
STATE = "/var/lib/contingency"
ENV_FILE = "/etc/contingency/contingency.env"
SERVER_ENV = "/etc/contingency/server.env"
INTAKE_ENV = "/etc/contingency/intake.env"
FORKSERVER_SOCKET = f"{STATE}/run/forkserver.sock"

SERVICES = {
    "contingency-server.service",
    "contingency-server-services.service",
    "contingency-forkserver.service",
    "contingency-worker.service",
    "contingency-intake.service",
    "contingency-reconciler.service",
}
TARGET = "contingency.target"

# The command interface the units start (docs/deployment.md): the command → its options
# (True: takes a value; False: a flag).
COMMANDS: dict[tuple[str, ...], dict[str, bool]] = {
    ("contingency", "worker"): {"--pool": True, "--name": True, "--forkserver": True},
    ("contingency", "intake"): {"--host": True, "--port": True},
    ("contingency", "reconciler"): {},
    ("contingency", "forkserver"): {"--socket": True},
    ("prefect", "server", "start"): {"--host": True, "--port": True, "--no-services": False},
    ("prefect", "server", "services", "start"): {},
}

SYSTEMD_ANALYZE = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"


@pytest.fixture
def systemd_analyze() -> str:
    """The verifier; scripts/setup.sh installs it (Debian ``systemd``). A machine without
    it is a failure to fix, never a skip."""
    if not os.access(SYSTEMD_ANALYZE, os.X_OK):
        pytest.fail("systemd-analyze is not installed (Debian package systemd)")
    return SYSTEMD_ANALYZE


Unit = dict[str, dict[str, list[str]]]


def shipped() -> dict[str, str]:
    """Every unit file in packaging/systemd, by name."""
    return {
        p.name: p.read_text(encoding="utf-8")
        for p in sorted(UNIT_DIR.iterdir())
        if p.suffix in (".service", ".target")
    }


def parse_unit(text: str) -> Unit:
    """section → key → values (a key may repeat); comments, blanks and ``\\`` line
    continuations handled as systemd does."""
    unit: Unit = {}
    section: dict[str, list[str]] | None = None
    pending = ""
    for raw in text.splitlines():
        line = (pending + " " + raw.strip()).strip() if pending else raw.strip()
        if line.endswith("\\"):
            pending = line[:-1]
            continue
        pending = ""
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = unit.setdefault(line[1:-1], {})
            continue
        assert section is not None, f"directive outside a section: {line!r}"
        key, _, value = line.partition("=")
        section.setdefault(key.strip(), []).append(value.strip())
    return unit


def service(unit: Unit) -> dict[str, list[str]]:
    return unit.get("Service", {})


def one(unit: Unit, section: str, key: str) -> str:
    values = unit.get(section, {}).get(key, [])
    assert len(values) == 1, f"[{section}] {key}= should be set once, is {values}"
    return values[0]


def words(unit: Unit, section: str, key: str) -> list[str]:
    """All space-separated values of a list directive (Wants=, After=, …)."""
    return [w for v in unit.get(section, {}).get(key, []) for w in v.split()]


def environment(unit: Unit, overrides: dict[str, str] | None = None) -> dict[str, str]:
    """The unit's own ``Environment=`` assignments (its defaults), then ``overrides``
    (what an EnvironmentFile= would set)."""
    env: dict[str, str] = {}
    for value in service(unit).get("Environment", []):
        for assignment in shlex.split(value):
            name, sep, val = assignment.partition("=")
            assert sep, f"Environment={value!r}: not NAME=VALUE"
            env[name] = val
    return env | (overrides or {})


def exec_argv(unit: Unit, overrides: dict[str, str] | None = None) -> list[str]:
    """ExecStart= as the argv systemd would run: ``${NAME}`` is one word, ``$NAME`` alone
    splits into zero or more words; a variable the unit does not define fails."""
    env = environment(unit, overrides)
    line = one(unit, "Service", "ExecStart")
    assert "%" not in line, f"ExecStart uses a specifier, expand it in the test: {line}"
    argv: list[str] = []
    for word in shlex.split(line):
        if whole := re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", word):
            assert whole[1] in env, f"${whole[1]} has no default in the unit"
            argv += env[whole[1]].split()
            continue

        def expand(m: re.Match[str]) -> str:
            assert m[1] in env, f"${{{m[1]}}} has no default in the unit"
            return env[m[1]]

        argv.append(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", expand, word))
    return argv


def command_of(argv: list[str]) -> tuple[tuple[str, ...], list[str]]:
    """(the interface command, its arguments) of an ExecStart argv, or fail."""
    binary = argv[0].lstrip("@-:+!")
    assert binary.startswith(VENV_BIN), f"{binary} is not in {VENV_BIN}"
    words_ = [binary.removeprefix(VENV_BIN), *argv[1:]]
    matches = [c for c in COMMANDS if tuple(words_[: len(c)]) == c]
    assert matches, f"{' '.join(words_)}: not a command of the interface"
    command = max(matches, key=len)
    return command, words_[len(command) :]


def check_arguments(command: tuple[str, ...], args: list[str]) -> dict[str, str | None]:
    """The options in ``args`` (option → value), each one the command has."""
    allowed = COMMANDS[command]
    seen: dict[str, str | None] = {}
    rest = list(args)
    while rest:
        option = rest.pop(0)
        assert option in allowed, f"{' '.join(command)}: no option {option!r}"
        if allowed[option]:
            assert rest and not rest[0].startswith("--"), f"{option} needs a value"
            seen[option] = rest.pop(0)
        else:
            seen[option] = None
    return seen


# --- systemd-analyze verify ------------------------------------------------------------


def verify(units: dict[str, str], name: str, tmp: Path) -> tuple[int, list[str]]:
    """``systemd-analyze verify`` one of ``units`` (all copied to ``tmp``, Exec lines
    pointed at stubs); its exit code and the output lines about any of our units."""
    bin_dir = tmp / "bin"
    unit_dir = tmp / "units"
    bin_dir.mkdir(parents=True, exist_ok=True)
    unit_dir.mkdir(parents=True, exist_ok=True)
    for prog in ("contingency", "prefect"):
        stub = bin_dir / prog
        stub.write_text("#!/bin/sh\nexit 0\n")
        stub.chmod(0o755)
    for unit_name, text in units.items():
        lines = [
            line.replace(VENV_BIN, f"{bin_dir}/") if line.startswith("Exec") else line
            for line in text.splitlines()
        ]
        (unit_dir / unit_name).write_text("\n".join(lines) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYSTEMD_")}
    env |= {"SYSTEMD_LOG_LEVEL": "info", "SYSTEMD_LOG_COLOR": "0", "SYSTEMD_PAGER": "cat"}
    proc = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", "--man=no", "--generators=no", str(unit_dir / name)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    output = (proc.stdout + proc.stderr).splitlines()
    ours = [line for line in output if str(unit_dir) in line or any(n in line for n in units)]
    return proc.returncode, ours


@pytest.mark.usefixtures("systemd_analyze")
@pytest.mark.parametrize("name", sorted(SERVICES | {TARGET}))
def test_unit_verifies_without_warnings(name: str, tmp_path: Path) -> None:
    code, about_us = verify(shipped(), name, tmp_path)
    assert about_us == [], "\n".join(about_us)
    assert code == 0


BROKEN = {
    "misspelled directive": ("ProtectSystem=strict", "ProtectSytem=strict"),
    "bad value": ("KillMode=mixed", "KillMode=mixd"),
    "unknown section": ("[Service]", "[Servce]"),
    "missing binary": (f"{VENV_BIN}contingency worker", f"{VENV_BIN}contingencyy worker"),
}


@pytest.mark.usefixtures("systemd_analyze")
@pytest.mark.parametrize("case", sorted(BROKEN))
def test_verify_catches_a_broken_unit(case: str, tmp_path: Path) -> None:
    """The same check fails for a real mistake (most are only warnings to systemd)."""
    units = shipped()
    good, bad = BROKEN[case]
    lines = units["contingency-worker.service"].splitlines()
    at = [i for i, line in enumerate(lines) if not line.startswith("#") and good in line]
    assert at, f"no {good!r} directive to break"
    lines[at[0]] = lines[at[0]].replace(good, bad)
    units["contingency-worker.service"] = "\n".join(lines) + "\n"
    code, about_us = verify(units, "contingency-worker.service", tmp_path)
    assert code != 0 or about_us, f"{case} went unnoticed"


# --- what the units run ----------------------------------------------------------------


def test_every_component_has_a_unit() -> None:
    assert set(shipped()) == SERVICES | {TARGET}


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_exec_start_is_a_command_of_the_interface(name: str) -> None:
    unit = parse_unit(shipped()[name])
    for key in ("ExecStartPre", "ExecStartPost", "ExecStop", "ExecReload"):
        assert key not in service(unit), f"{name}: unexpected {key}="
    command, args = command_of(exec_argv(unit))
    check_arguments(command, args)


def test_server_unit_runs_an_api_replica_with_no_services() -> None:
    """HA: CONTINGENCY_SERVER_ARGS=--no-services in server.env makes the same unit an API
    replica; the services run in contingency-server-services."""
    server = parse_unit(shipped()["contingency-server.service"])
    command, args = command_of(exec_argv(server))
    assert command == ("prefect", "server", "start")
    assert "--no-services" not in check_arguments(command, args)
    ha = exec_argv(server, {"CONTINGENCY_SERVER_ARGS": "--no-services"})
    assert check_arguments(*command_of(ha)) == {
        "--host": "127.0.0.1",
        "--port": "4200",
        "--no-services": None,
    }
    services = parse_unit(shipped()["contingency-server-services.service"])
    assert command_of(exec_argv(services)) == (("prefect", "server", "services", "start"), [])


def _help(argv: list[str]) -> str:
    env = os.environ | {"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
    proc = subprocess.run([*argv, "--help"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, f"{' '.join(argv)} --help: {proc.stdout}{proc.stderr}"
    return proc.stdout + proc.stderr


def test_installed_commands_take_the_options_the_units_pass() -> None:
    """Against this checkout's installed ``contingency`` and ``prefect``: each command a
    unit runs exists and knows every option it is given."""
    bin_dir = Path(sys.executable).parent
    wanted: dict[tuple[str, ...], set[str]] = {}
    for name in sorted(SERVICES):
        unit = parse_unit(shipped()[name])
        overrides = {"CONTINGENCY_SERVER_ARGS": "--no-services"}
        command, args = command_of(exec_argv(unit, overrides))
        wanted.setdefault(command, set()).update(check_arguments(command, args))
    for command, options in wanted.items():
        text = _help([str(bin_dir / command[0]), *command[1:]])
        for option in options:
            assert option in text, f"{' '.join(command)} has no {option}:\n{text}"


# --- how they run ----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_common_service_settings(name: str) -> None:
    unit = parse_unit(shipped()[name])
    svc = service(unit)
    assert one(unit, "Service", "User") == "contingency"
    assert one(unit, "Service", "Group") == "contingency"
    assert ENV_FILE in svc["EnvironmentFile"]
    assert one(unit, "Service", "Restart") == "always"
    assert one(unit, "Unit", "StartLimitIntervalSec") == "0", "systemd must never give up"
    assert one(unit, "Service", "StateDirectory") == "contingency"
    env = environment(unit)
    assert env["CONTINGENCY_STATE_DIR"] == STATE
    assert env["PREFECT_HOME"].startswith(STATE + "/")
    # hardening
    assert one(unit, "Service", "NoNewPrivileges") == "yes"
    assert one(unit, "Service", "ProtectSystem") == "strict"
    assert one(unit, "Service", "ReadWritePaths") == STATE
    assert one(unit, "Service", "PrivateTmp") == "yes"
    assert one(unit, "Service", "ProtectHome") == "yes"
    assert one(unit, "Service", "UMask") == "0077"
    assert one(unit, "Service", "CapabilityBoundingSet") == ""
    # grouped under contingency.target
    assert "contingency.target" in words(unit, "Unit", "PartOf")
    assert "contingency.target" in words(unit, "Install", "WantedBy")


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_network_stays_open(name: str) -> None:
    """Flow runs (worker, fork server) and the reconciler reach hosts over SSH, S3 and
    notification channels; the others talk to the API or PostgreSQL."""
    svc = service(parse_unit(shipped()[name]))
    assert "PrivateNetwork" not in svc
    assert "IPAddressDeny" not in svc
    families = " ".join(svc.get("RestrictAddressFamilies", ["AF_INET AF_INET6"])).split()
    assert {"AF_INET", "AF_INET6", "AF_UNIX"} <= set(families)


def test_secrets_reach_only_their_component() -> None:
    """As `contingency up` does (stack.least_env): the server's secrets (auth setting,
    encryption key, database URL) only in the server processes, the webhook token only in
    the intake — never in the worker, so never in a flow run."""
    for name, text in shipped().items():
        if name == TARGET:
            continue
        files = service(parse_unit(text))["EnvironmentFile"]
        server_side = name in {"contingency-server.service", "contingency-server-services.service"}
        assert (SERVER_ENV in files) == server_side, name
        assert any(f.lstrip("-") == INTAKE_ENV for f in files) == (
            name == "contingency-intake.service"
        ), name
    example = (UNIT_DIR / "contingency.env.example").read_text()
    active = [line for line in example.splitlines() if line.strip() and not line.startswith("#")]
    for line in active:
        assert not line.startswith(("PREFECT_SERVER_", "CONTINGENCY_WEBHOOK_TOKEN")), line


def test_worker_and_fork_server_keep_runs_alive() -> None:
    worker = parse_unit(shipped()["contingency-worker.service"])
    fork = parse_unit(shipped()["contingency-forkserver.service"])
    # The runs are the fork server's children: its restart must not kill them.
    assert one(fork, "Service", "KillMode") == "process"
    # SIGTERM to the worker alone: its launchers detach from their runs on a shutdown.
    assert one(worker, "Service", "KillMode") == "mixed"
    # Both ends of the one socket.
    assert check_arguments(*command_of(exec_argv(fork))) == {"--socket": FORKSERVER_SOCKET}
    assert check_arguments(*command_of(exec_argv(worker)))["--forkserver"] == FORKSERVER_SOCKET
    assert "contingency-forkserver.service" in words(worker, "Unit", "Wants")
    assert "contingency-forkserver.service" in words(worker, "Unit", "After")
    assert "contingency-worker.service" in words(fork, "Unit", "Before")
    # The pool's command, contingency-flow-run, is found on the worker's PATH.
    for unit in (worker, fork):
        assert environment(unit)["PATH"].split(":")[0] == VENV_BIN.rstrip("/")


def test_target_groups_the_components() -> None:
    target = parse_unit(shipped()[TARGET])
    assert "multi-user.target" in words(target, "Install", "WantedBy")
    for name in SERVICES:
        assert "contingency.target" in words(parse_unit(shipped()[name]), "Install", "WantedBy")
