"""`binwrn-server`: a shared MLflow tracking server on PostgreSQL, for a team or a cluster.

SQLite is one file on one disk; a team, or sweep jobs on many nodes, need a server. This
starts (creating on first use) a PostgreSQL cluster in `--data`/pg that takes a password
(tracking/postgres.py: scram-sha-256, the password in `--data`/pg-password, 0600), a database
`mlflow` in it, and `mlflow server` on that database with artifacts proxied into
`--data`/artifacts, bound to 127.0.0.1 unless `--host` says otherwise. Runs point at it with
`tracking.uri=http://127.0.0.1:<port>`. Ctrl-C (or SIGTERM) stops both.

Without `--auth` the MLflow server itself asks no one for a password: every local user (and,
with `--host`, the network) can read and write every run through it. `--auth` runs MLflow's
own basic-auth app: an `admin` user is created on first start with a generated password,
stored 0600 in `--data`/auth/admin-password and printed once; every request then needs a
user and password.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path

from binwrn.errors import ConfigError
from binwrn.tracking.postgres import (
    PASSWORD_FILE,
    SUPERUSER,
    secret_file,
    start_postgres,
    stop_postgres,
)

ADMIN = "admin"
ADMIN_PASSWORD_FILE = Path("auth") / "admin-password"
# Authenticated users other than admin may read (not change) experiments they do not own.
AUTH_CONFIG = """[mlflow]
default_permission = READ
database_uri = sqlite:///{database}
admin_username = {admin}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
"""


def auth_settings(data: Path) -> tuple[dict[str, str], str | None]:
    """(environment for `mlflow server --app-name basic-auth`, the admin password if it was
    generated now). The password goes to MLflow in MLFLOW_AUTH_ADMIN_PASSWORD (read on first
    start only), never in the config file or a command line."""
    folder = data / "auth"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    password, created = secret_file(data / ADMIN_PASSWORD_FILE)
    config = folder / "basic_auth.ini"
    config.write_text(AUTH_CONFIG.format(database=folder / "users.db", admin=ADMIN))
    config.chmod(0o600)
    # MLflow's CSRF protection signs with this key; the same one across restarts.
    csrf_key, _ = secret_file(folder / "flask-secret-key")
    env = {"MLFLOW_AUTH_CONFIG_PATH": str(config), "MLFLOW_AUTH_ADMIN_PASSWORD": password,
           "MLFLOW_FLASK_SERVER_SECRET_KEY": csrf_key}
    return env, password if created else None


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="binwrn-server", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=5000, help="the MLflow server's port")
    parser.add_argument("--host", default="127.0.0.1",
                        help="the interface to serve on (default loopback only)")
    parser.add_argument("--pg-port", type=int, default=5433, help="PostgreSQL's port")
    parser.add_argument("--data", type=Path, default=Path("server-data"),
                        help="the PostgreSQL cluster, its password and the artifacts live here")
    parser.add_argument("--workers", type=int, default=1,
                        help="MLflow server processes (default 1: with more, uvicorn's "
                             "supervisor restarts any that miss its 5 s health check, which "
                             "a loaded machine or basic-auth's password hashing causes)")
    parser.add_argument("--auth", action="store_true",
                        help="require a user and password for every request (MLflow's "
                             "basic-auth app; the admin password is printed once)")
    return parser.parse_args()


def _announce(args: argparse.Namespace, data: Path, cluster: Path,
              new_admin_password: str | None) -> None:
    from binwrn.terminal import console

    url = f"http://{args.host}:{args.port}"
    console.print(f"binwrn-server: PostgreSQL on 127.0.0.1:{args.pg_port} ({cluster}; user "
                  f"{SUPERUSER}, password in {data / PASSWORD_FILE}); MLflow on {url}; runs: "
                  f"tracking.uri={url}", soft_wrap=True)
    if not args.auth:
        console.print("binwrn-server: no --auth: every local user can read and write runs "
                      "through the MLflow server.", soft_wrap=True)
        return
    console.print(f"binwrn-server: --auth: every request needs a user and password; runs "
                  f"set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or "
                  f"tracking.uri=http://USER:PASSWORD@{args.host}:{args.port}).", soft_wrap=True)
    if new_admin_password is not None:  # the only time it is shown
        console.print(f"binwrn-server: user {ADMIN} created, password {new_admin_password} "
                      f"(kept in {data / ADMIN_PASSWORD_FILE}, mode 0600; not shown again)",
                      soft_wrap=True)


def check_args(args: argparse.Namespace) -> None:
    """Every number and the data folder, before PostgreSQL starts (a port of -1 started it,
    then `mlflow server` died and binwrn-server served nothing)."""
    for flag, port in (("--port", args.port), ("--pg-port", args.pg_port)):
        if not 1 <= port <= 65535:
            raise ConfigError(f"{flag} {port} is not a port: use a number from 1 to 65535.")
    if args.port == args.pg_port:
        raise ConfigError(f"--port and --pg-port are both {args.port}: give them different "
                          "ports.")
    if not 1 <= args.workers <= 64:
        raise ConfigError(f"--workers {args.workers} is not allowed: use 1 to 64 server "
                          "processes.")
    data = args.data.resolve()
    existing = next((p for p in (data, *data.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise ConfigError(f"--data {args.data} cannot be the server's folder: {existing} is a "
                          "file; name a folder (it is created if missing).")


def _hold_data(data: Path):
    """The data folder's lock for this process's life (released by the OS when it dies):
    a second binwrn-server on the same folder is refused in one sentence."""
    import fcntl

    data.mkdir(parents=True, exist_ok=True)  # PostgreSQL's user must reach pg/ inside it
    lock = open(data / ".binwrn-server.lock", "a+")  # noqa: SIM115 (held until exit)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise ConfigError(f"Another binwrn-server serves --data {data}: stop it, or give "
                          "this one another --data.") from None
    return lock


def _die_with_parent() -> None:
    """In the `mlflow server` child: SIGTERM when binwrn-server dies, even by SIGKILL, so no
    server is left holding the port (Linux's PR_SET_PDEATHSIG)."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:  # not Linux: a hard kill leaves the server to the user
        pass


def main() -> None:
    from binwrn.terminal import show_error

    args = _args()
    try:
        check_args(args)
        data = args.data.resolve()
        lock = _hold_data(data)  # noqa: F841 (held until the process ends)
    except (ConfigError, OSError) as err:
        show_error(str(err), "binwrn-server")
        sys.exit(2)
    if args.auth and importlib.util.find_spec("flask_wtf") is None:
        show_error("binwrn-server --auth needs MLflow's auth extra (Flask-WTF), which is not "
                   "installed: install mlflow[auth] into this environment, or start without "
                   "--auth.", "binwrn-server")
        sys.exit(2)
    # SIGTERM at any moment from here on (start-up included) stops what was started.
    signal.signal(signal.SIGTERM, _interrupt)
    server, status = None, 0
    try:
        cluster, password = start_postgres(data, args.pg_port)
        server = _start_mlflow(args, data, cluster, password)
        status = server.wait()
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: a requested stop, not a failure
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not cut the stop
        if server is not None:
            _stop(server)
        status = 0
    except (ConfigError, subprocess.CalledProcessError, OSError) as err:
        detail = getattr(err, "stderr", None) or ""
        show_error(f"{err} {detail}".strip(), "binwrn-server")
        sys.exit(2)
    finally:  # whatever was started, even by a start-up that was interrupted
        if (data / "pg" / "postmaster.pid").is_file():
            stop_postgres(data / "pg")
    if status:
        show_error(f"mlflow server exited with status {status} (its lines are above); "
                   "PostgreSQL is stopped.", "binwrn-server")
        sys.exit(1)


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


def _start_mlflow(args: argparse.Namespace, data: Path, cluster: Path,
                  password: str) -> subprocess.Popen:
    env = {**os.environ, "PGPASSWORD": password}  # libpq reads it; not on the command line
    command = [str(Path(sys.executable).with_name("mlflow")), "server", "--backend-store-uri",
               f"postgresql+psycopg2://{SUPERUSER}@127.0.0.1:{args.pg_port}/mlflow",
               "--artifacts-destination", str(data / "artifacts"), "--host", args.host,
               "--port", str(args.port), "--workers", str(args.workers)]
    new_admin_password = None
    if args.auth:
        auth_env, new_admin_password = auth_settings(data)
        env.update(auth_env)
        command += ["--app-name", "basic-auth"]
    # Checkpoints and configs of every run: the owner's alone, as the database is (--auth
    # guards the API; the disk needs its own guard).
    artifacts = data / "artifacts"
    artifacts.mkdir(mode=0o700, parents=True, exist_ok=True)
    artifacts.chmod(0o700)
    _announce(args, data, cluster, new_admin_password)
    # A session of its own: stopping it stops uvicorn and MLflow's job runner with it.
    return subprocess.Popen(command, env=env, start_new_session=True,
                            preexec_fn=_die_with_parent)


def _stop(server: subprocess.Popen, grace_s: float = 5) -> None:
    """SIGTERM to the server's process group, SIGKILL to what is left after `grace_s`."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(server.pid, sig)
        except ProcessLookupError:
            return
        try:
            server.wait(timeout=grace_s)
            os.killpg(server.pid, signal.SIGKILL)  # uvicorn workers the server left behind
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            return
        return
