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


def main() -> None:
    from binwrn.terminal import show_error

    args = _args()
    data = args.data.resolve()
    if args.auth and importlib.util.find_spec("flask_wtf") is None:
        show_error("binwrn-server --auth needs MLflow's auth extra (Flask-WTF), which is not "
                   "installed: install mlflow[auth] into this environment, or start without "
                   "--auth.", "binwrn-server")
        sys.exit(2)
    try:
        cluster, password = start_postgres(data, args.pg_port)
    except (ConfigError, subprocess.CalledProcessError, OSError) as err:
        detail = getattr(err, "stderr", None) or ""
        show_error(f"{err} {detail}".strip(), "binwrn-server")
        sys.exit(2)
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
    (data / "artifacts").mkdir(parents=True, exist_ok=True)
    _announce(args, data, cluster, new_admin_password)
    # A session of its own: stopping it stops uvicorn and MLflow's job runner with it.
    server = subprocess.Popen(command, env=env, start_new_session=True)
    signal.signal(signal.SIGTERM, lambda *_: _stop(server))
    try:
        server.wait()
    except KeyboardInterrupt:
        _stop(server)
    finally:
        stop_postgres(cluster)


def _stop(server: subprocess.Popen, grace_s: float = 20) -> None:
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
