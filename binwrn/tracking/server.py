"""`binwrn-server`: a shared MLflow tracking server on PostgreSQL, for a team or a cluster.

SQLite is one file on one disk; a team, or sweep jobs on many nodes, need a server. This
starts (creating on first use) a PostgreSQL cluster in `--data`/pg listening on loopback
only, a database `mlflow` in it, and `mlflow server` on that database with artifacts proxied
into `--data`/artifacts, bound to 127.0.0.1 unless `--host` says otherwise. Runs point at it
with `tracking.uri=http://127.0.0.1:<port>`. Ctrl-C (or SIGTERM) stops both.
"""

from __future__ import annotations

import argparse
import glob
import os
import pwd
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from binwrn.errors import ConfigError


def _pg_tool(name: str) -> str:
    """A PostgreSQL program: on PATH, or in Debian's versioned folder."""
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if found is None:
        raise ConfigError(f"PostgreSQL's {name} was not found: install PostgreSQL (Debian: "
                          "apt-get install postgresql) or use the default SQLite store.")
    return found


def _as_postgres_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as the system user `postgres`."""
    if os.geteuid() != 0:
        return command
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise ConfigError("PostgreSQL cannot run as root and there is no postgres user: "
                          "start binwrn-server as an ordinary user.") from None
    return ["runuser", "-u", "postgres", "--", *command]


def _own(folder: Path) -> None:
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        for path in (folder, *folder.rglob("*")):
            os.chown(path, user.pw_uid, user.pw_gid)


def start_postgres(data: Path, port: int) -> Path:
    """Initialise (once) and start the cluster on 127.0.0.1:port; returns its folder."""
    cluster, sockets = data / "pg", data / "sockets"
    sockets.mkdir(parents=True, exist_ok=True)
    if not (cluster / "PG_VERSION").is_file():
        cluster.mkdir(parents=True, exist_ok=True)
        _own(cluster)
        subprocess.run(_as_postgres_user([_pg_tool("initdb"), "-D", str(cluster), "-U",
                                          "mlflow", "--auth=trust", "-E", "UTF8"]),
                       check=True, capture_output=True)
    _own(sockets)
    subprocess.run(_as_postgres_user([
        _pg_tool("pg_ctl"), "-D", str(cluster), "-w", "-l", str(cluster / "server.log"),
        "-o", f"-h 127.0.0.1 -p {port} -k {sockets}", "start"]), check=True)
    created = subprocess.run(
        _as_postgres_user([_pg_tool("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U",
                           "mlflow", "mlflow"]), capture_output=True, text=True)
    if created.returncode != 0 and "already exists" not in created.stderr:
        raise ConfigError(f"Creating the mlflow database failed: {created.stderr.strip()}")
    return cluster


def stop_postgres(cluster: Path) -> None:
    subprocess.run(_as_postgres_user([_pg_tool("pg_ctl"), "-D", str(cluster), "-m", "fast",
                                      "-w", "stop"]), capture_output=True)


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="binwrn-server", description=__doc__)
    parser.add_argument("--port", type=int, default=5000, help="the MLflow server's port")
    parser.add_argument("--host", default="127.0.0.1",
                        help="the interface to serve on (default loopback only)")
    parser.add_argument("--pg-port", type=int, default=5433, help="PostgreSQL's port")
    parser.add_argument("--data", type=Path, default=Path("server-data"),
                        help="the PostgreSQL cluster and the artifacts live here")
    return parser.parse_args()


def main() -> None:
    from binwrn.terminal import console, show_error

    args = _args()
    data = args.data.resolve()
    try:
        cluster = start_postgres(data, args.pg_port)
    except (ConfigError, subprocess.CalledProcessError) as err:
        show_error(str(err), "binwrn-server")
        sys.exit(2)
    backend = f"postgresql+psycopg2://mlflow@127.0.0.1:{args.pg_port}/mlflow"
    (data / "artifacts").mkdir(parents=True, exist_ok=True)
    console.print(f"binwrn-server: PostgreSQL on 127.0.0.1:{args.pg_port} ({cluster}); MLflow "
                  f"on http://{args.host}:{args.port}; runs: tracking.uri=http://"
                  f"{args.host}:{args.port}", soft_wrap=True)
    server = subprocess.Popen([
        str(Path(sys.executable).with_name("mlflow")), "server", "--backend-store-uri",
        backend, "--artifacts-destination", str(data / "artifacts"), "--host", args.host,
        "--port", str(args.port)])
    signal.signal(signal.SIGTERM, lambda *_: server.terminate())
    try:
        server.wait()
    except KeyboardInterrupt:
        server.terminate()
        server.wait()
    finally:
        stop_postgres(cluster)
