"""binwrn-server's doors (issue 15 item 1): another local user can neither connect to its
PostgreSQL nor, with --auth, write to its MLflow server without the password.

"Another local user" is `nobody`, reached with `runuser` (root only): where the tests do not
run as root, those checks are skipped with the reason. The cluster tests (real initdb and
postgres, ~20 s) are in the normal suite; the one that starts `binwrn-server --auth` and
trains through it is marked `server` (`make test-server`).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from helpers_server import free_port, stop_group, wait_healthy

from binwrn.tracking.postgres import PASSWORD_FILE, secret_file, start_postgres, stop_postgres
from binwrn.tracking.server import ADMIN_PASSWORD_FILE, auth_settings

HAS_POSTGRES = bool(shutil.which("initdb") or glob.glob("/usr/lib/postgresql/*/bin/initdb"))
needs_postgres = pytest.mark.skipif(
    not HAS_POSTGRES, reason="PostgreSQL is not installed (Debian: apt-get install postgresql)")


def _other_user_reason() -> str | None:
    if os.geteuid() != 0:
        return "switching to another local user (runuser -u nobody) needs root"
    if shutil.which("runuser") is None:
        return "runuser is not installed"
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        return "there is no user nobody"
    return None


def as_nobody(*command: str) -> subprocess.CompletedProcess:
    if reason := _other_user_reason():
        pytest.skip(reason)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "MLFLOW_TRACKING"))}
    return subprocess.run(["runuser", "-u", "nobody", "--", *command], capture_output=True,
                          text=True, timeout=60, env=env, cwd="/")


def _psql(target: str, port: int, password: str | None = None, user: str | None = None):
    """`select 1` through psql, never prompting; as `nobody` unless user is None."""
    command = [shutil.which("psql") or "psql", "-w", "-h", target, "-p", str(port), "-U",
               "mlflow", "-d", "mlflow", "-tAc", "select 1"]
    if user == "nobody":
        return as_nobody(*command)
    env = {**os.environ, "PGPASSWORD": password or ""}
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def data() -> Path:
    # As root, PostgreSQL runs as the postgres user, who cannot enter pytest's 0700 folders.
    folder = Path(tempfile.mkdtemp(prefix="binwrn-server-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_secrets_are_generated_once_into_0600_files(tmp_path: Path) -> None:
    password, created = secret_file(tmp_path / "s" / "pw")
    assert created and len(password) >= 24 and _mode(tmp_path / "s" / "pw") == 0o600
    (tmp_path / "s" / "pw").chmod(0o644)
    assert secret_file(tmp_path / "s" / "pw") == (password, False)
    assert _mode(tmp_path / "s" / "pw") == 0o600


def test_the_admin_password_reaches_mlflow_in_its_environment_only(tmp_path: Path) -> None:
    env, shown = auth_settings(tmp_path)
    stored = (tmp_path / ADMIN_PASSWORD_FILE).read_text().strip()
    assert shown == stored == env["MLFLOW_AUTH_ADMIN_PASSWORD"]
    assert stored not in Path(env["MLFLOW_AUTH_CONFIG_PATH"]).read_text()
    assert _mode(tmp_path / "auth") == 0o700
    assert {_mode(p) for p in (tmp_path / "auth").iterdir()} == {0o600}
    assert auth_settings(tmp_path)[1] is None  # printed once: the second start shows nothing


def _check_doors(data: Path, port: int) -> None:
    password = (data / PASSWORD_FILE).read_text().strip()
    hba = (data / "pg" / "pg_hba.conf").read_text()
    assert "trust" not in [line.split()[-1] for line in hba.splitlines()
                           if line.strip() and not line.startswith("#")]
    assert _mode(data / PASSWORD_FILE) == 0o600 and _mode(data / "sockets") == 0o700
    assert _psql("127.0.0.1", port, password).stdout.strip() == "1"  # the door opens ...
    assert _psql("127.0.0.1", port, "wrong").returncode != 0  # ... for the password only
    tcp = _psql("127.0.0.1", port, user="nobody")
    assert tcp.returncode != 0 and "no password supplied" in tcp.stderr
    socket = _psql(str(data / "sockets"), port, user="nobody")
    assert socket.returncode != 0 and "Permission denied" in socket.stderr
    assert as_nobody("cat", str(data / PASSWORD_FILE)).returncode != 0


@pytest.mark.slow
@needs_postgres
def test_a_new_cluster_takes_a_password_and_keeps_other_users_out(data: Path) -> None:
    _start_and_check_doors(data)


@pytest.mark.slow
@needs_postgres
def test_a_trust_cluster_from_an_older_binwrn_server_gets_the_password(data: Path) -> None:
    from binwrn.tracking import postgres

    (data / "pg").mkdir()
    postgres._own(data / "pg")
    subprocess.run(postgres._as_postgres_user([  # what binwrn-server did before issue 15
        postgres.pg_tool("initdb"), "-D", str(data / "pg"), "-U", "mlflow", "--auth=trust",
        "-E", "UTF8"]), check=True, capture_output=True)
    _start_and_check_doors(data)


def _start_and_check_doors(data: Path) -> None:
    port = free_port()
    cluster, _ = start_postgres(data, port)
    try:
        _check_doors(data, port)
    finally:
        stop_postgres(cluster)


BIN = Path(sys.executable).parent
TINY = ["experiment=smoke", "dataset=digits", "trainer.max_epochs=1",
        "tracking.log_checkpoint=false"]


def _train(tmp: Path, uri: str, *more: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "binwrn-run"), *TINY, f"tracking.uri={uri}", *more,
                           f"tracking.artifact_root={tmp / 'artifacts'}",
                           f"hydra.run.dir={tmp / 'out'}", f"data.cache_dir={tmp / 'cache'}"],
                          capture_output=True, text=True, timeout=600, cwd=tmp)


@pytest.mark.slow
@pytest.mark.server
@needs_postgres
def test_with_auth_nobody_writes_without_the_password_and_runs_with_it_land(
        data: Path, tmp_path: Path) -> None:
    pytest.importorskip("flask_wtf", reason="--auth needs mlflow[auth] (Flask-WTF)")
    port, pg_port = free_port(), free_port()
    server = subprocess.Popen([str(BIN / "binwrn-server"), "--auth", "--port", str(port),
                               "--pg-port", str(pg_port), "--data", str(data)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, server)
        admin = (data / ADMIN_PASSWORD_FILE).read_text().strip()
        pg_password = (data / PASSWORD_FILE).read_text().strip()
        create = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "-H",
                  "Content-Type: application/json", "-d", '{"name": "intruder"}',
                  f"{url}/api/2.0/mlflow/experiments/create"]
        assert as_nobody(*create).stdout == "401"
        assert subprocess.run([*create[:-1], "-u", f"admin:{admin}", create[-1]],
                              capture_output=True, text=True).stdout == "200"
        assert _psql("127.0.0.1", pg_port, user="nobody").returncode != 0
        direct = f"postgresql://mlflow:{pg_password}@127.0.0.1:{pg_port}/mlflow"
        for uri in (url.replace("http://", f"http://admin:{admin}@"),  # through the server
                    f"{direct} tracking.experiment=direct"):  # artifacts in artifact_root
            done = _train(tmp_path, *uri.split())
            assert done.returncode == 0, done.stderr[-3000:]
            assert admin not in done.stdout + done.stderr
            assert pg_password not in done.stdout + done.stderr
        assert list((data / "artifacts").rglob("resolved.yaml"))  # the runs' configs...
        found = as_nobody("find", str(data / "artifacts"), "-name", "*.yaml")
        assert found.stdout == "" and "Permission denied" in found.stderr  # ...not for nobody
        assert _mode(data / "artifacts") == 0o700
    finally:
        stop_group(server)
        output = server.stdout.read()
    assert output.count(admin) == 1  # printed once, on first start
    assert "intruder" not in output


def _healthy(url: str) -> bool:
    import urllib.request

    try:
        return urllib.request.urlopen(f"{url}/health", timeout=2).status == 200
    except OSError:
        return False


def _pg_running(data: Path) -> bool:
    return subprocess.run(["pgrep", "-f", f"postgres -D {data / 'pg'}"],
                          capture_output=True).returncode == 0


@pytest.mark.slow
@pytest.mark.server
@needs_postgres
def test_a_hard_killed_server_starts_again_and_sigterm_stops_it_quickly(data: Path) -> None:
    """kill -9 left PostgreSQL running and the next start failed with pg_ctl's command
    list; SIGTERM took 30-60 s (issue 27 item 9)."""
    port, pg_port = free_port(), free_port()
    command = [str(BIN / "binwrn-server"), "--port", str(port), "--pg-port", str(pg_port),
               "--data", str(data)]
    url = f"http://127.0.0.1:{port}"
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
    try:
        wait_healthy(url, first)
        first.kill()  # SIGKILL: no handler runs
        first.wait()
        assert _pg_running(data)  # what a hard kill leaves
        deadline = time.monotonic() + 30  # its mlflow server follows it (PDEATHSIG)
        while _healthy(url) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _healthy(url)
        second = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True)
        wait_healthy(url, second)  # the old cluster was stopped, the port freed
        twin = subprocess.run([*command[:-4], "--pg-port", str(free_port()), "--data",
                               str(data)], capture_output=True, text=True, timeout=60)
        assert twin.returncode == 2 and "Another binwrn-server serves" in twin.stderr
        started = time.monotonic()
        second.terminate()
        second.wait(timeout=60)
        assert time.monotonic() - started < 20
        assert not _pg_running(data)
    finally:
        for server in (first, locals().get("second")):
            if server is not None and server.poll() is None:
                stop_group(server)
        if _pg_running(data):
            stop_postgres(data / "pg")
