"""The PostgreSQL cluster behind `binwrn-server`, with a password and no open doors.

issue 15: a cluster made with `initdb --auth=trust` and a 0777 socket let every local account
connect as its superuser and run shell commands (`COPY ... TO PROGRAM`). Here:

- every connection, TCP or socket, needs the password (scram-sha-256, set by initdb);
- the password is generated once and kept in `<data>/pg-password`, mode 0600, owned by the
  user who runs binwrn-server; it reaches PostgreSQL's clients only through PGPASSWORD in
  their environment (never a command line, which `ps` shows to every user);
- TCP listens on 127.0.0.1 only; the socket directory and socket are 0700 (owner only);
- a cluster an older binwrn-server made with `trust` is given the password on its next start
  (started once with no TCP and an owner-only socket, to set it) before it serves anything.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

from binwrn.errors import ConfigError

PASSWORD_FILE = "pg-password"
SUPERUSER = "mlflow"
_TRUST = re.compile(r"^(\s*(?:local|host)\S*\s.*\s)trust(\s*)$", re.MULTILINE)


def pg_tool(name: str) -> str:
    """A PostgreSQL program: on PATH, or in Debian's versioned folder."""
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if found is None:
        raise ConfigError(f"PostgreSQL's {name} was not found: install PostgreSQL (Debian: "
                          "apt-get install postgresql) or use the default SQLite store.")
    return found


def secret_file(path: Path) -> tuple[str, bool]:
    """(the password kept in `path`, whether it was generated now). New files are created
    0600 in one step (no moment where another user could read them); an existing file
    readable by others is made 0600 again."""
    if path.is_file():
        path.chmod(0o600)
        return path.read_text().strip(), False
    path.parent.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(24)
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
        file.write(password + "\n")
    return password, True


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


def _client_env(password: str) -> dict[str, str]:
    return {**os.environ, "PGPASSWORD": password}


def _pg_ctl_start(cluster: Path, options: str) -> None:
    subprocess.run(_as_postgres_user([
        pg_tool("pg_ctl"), "-D", str(cluster), "-w", "-l", str(cluster / "server.log"),
        "-o", options, "start"]), check=True, capture_output=True)


def _initdb(cluster: Path, password: str) -> None:
    cluster.mkdir(parents=True, exist_ok=True)
    _own(cluster)
    # initdb reads the password from a file: one in a 0700 folder of its own, owned by the
    # user initdb runs as, removed as soon as initdb is done.
    with tempfile.TemporaryDirectory(prefix="binwrn-initdb-") as folder:
        pwfile = Path(folder) / "password"
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o600)
        _own(Path(folder))
        subprocess.run(_as_postgres_user([
            pg_tool("initdb"), "-D", str(cluster), "-U", SUPERUSER, "--auth=scram-sha-256",
            f"--pwfile={pwfile}", "-E", "UTF8"]), check=True, capture_output=True, text=True)


def _close_trust(cluster: Path, sockets: Path, password: str) -> None:
    """Give a cluster made with `--auth=trust` the password, then require it everywhere."""
    hba = cluster / "pg_hba.conf"
    if hba.is_file() and not _TRUST.search(hba.read_text()):
        return
    # No TCP, and a socket in a 0700 folder: nobody but this user reaches it meanwhile.
    _pg_ctl_start(cluster, f"-c listen_addresses='' -k {sockets} "
                           "-c unix_socket_permissions=0700")
    try:
        subprocess.run([pg_tool("psql"), "-h", str(sockets), "-p", "5432", "-U", SUPERUSER,
                        "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-f", "-"],
                       input=f"ALTER USER {SUPERUSER} PASSWORD '{password}';", text=True,
                       check=True, capture_output=True)
    finally:
        stop_postgres(cluster)
    hba.write_text(_TRUST.sub(r"\1scram-sha-256\2", hba.read_text()))


def start_postgres(data: Path, port: int) -> tuple[Path, str]:
    """Initialise (once) and start the cluster on 127.0.0.1:port; (its folder, password)."""
    cluster, sockets = data / "pg", data / "sockets"
    data.mkdir(parents=True, exist_ok=True)
    password, _ = secret_file(data / PASSWORD_FILE)
    sockets.mkdir(mode=0o700, exist_ok=True)
    sockets.chmod(0o700)
    _own(sockets)
    if (cluster / "postmaster.pid").is_file():  # a hard-killed binwrn-server's cluster
        stop_postgres(cluster)  # the caller holds the data folder's lock: nobody else uses it
    try:
        if not (cluster / "PG_VERSION").is_file():
            _initdb(cluster, password)
        else:
            _close_trust(cluster, sockets, password)
        _pg_ctl_start(cluster, f"-h 127.0.0.1 -p {port} -k {sockets} "
                               "-c unix_socket_permissions=0700")
    except subprocess.CalledProcessError as err:
        said = (err.stderr or b"")
        said = said.decode(errors="replace") if isinstance(said, bytes) else said
        last = said.strip().splitlines()[-1] if said.strip() else f"exit status {err.returncode}"
        raise ConfigError(f"PostgreSQL did not start in {cluster} ({last}): see "
                          f"{cluster / 'server.log'}, or free --pg-port {port}.") from None
    created = subprocess.run([pg_tool("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U",
                              SUPERUSER, "mlflow"], capture_output=True, text=True,
                             env=_client_env(password))
    if created.returncode != 0 and "already exists" not in created.stderr:
        stop_postgres(cluster)
        raise ConfigError(f"Creating the mlflow database failed: {created.stderr.strip()}")
    return cluster, password


def stop_postgres(cluster: Path) -> None:
    subprocess.run(_as_postgres_user([pg_tool("pg_ctl"), "-D", str(cluster), "-m", "fast",
                                      "-w", "stop"]), capture_output=True)
