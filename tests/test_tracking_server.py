"""binwrn-server: a real PostgreSQL and a real `mlflow server` on it, a sweep with two parallel
jobs against it, and the runs read back. Needs PostgreSQL installed (Debian: postgresql)."""

from __future__ import annotations

import glob
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil
import pytest
from mlflow import MlflowClient

HAS_POSTGRES = bool(shutil.which("initdb") or glob.glob("/usr/lib/postgresql/*/bin/initdb"))
pytestmark = [
    pytest.mark.slow,
    pytest.mark.server,  # about 2 minutes: `make test-server`, not part of `make test`
    pytest.mark.skipif(not HAS_POSTGRES,
                       reason="PostgreSQL is not installed (Debian: apt-get install postgresql)"),
]

BIN = Path(sys.executable).parent
SWEEP = """
name: on_server
overrides: [dataset=digits, model.depth=8, model.width=1, data.train_limit=100,
            data.test_limit=100, data.batch_size=50, trainer.max_epochs=1,
            tracking.system_metrics_interval=0]
grid: {model.bits: [32, 1]}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, server: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert server.poll() is None, "binwrn-server exited"
        try:
            if urllib.request.urlopen(f"{url}/health", timeout=2).status == 200:
                return
        except OSError:
            time.sleep(1)
    raise AssertionError("the MLflow server did not come up")


def _listening_host(port: int) -> str | None:
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port:
                return conn.laddr.ip
    except psutil.AccessDenied:
        return None
    return None


def test_sweep_with_two_parallel_jobs_lands_on_the_postgres_server(tmp_path: Path) -> None:
    port, pg_port = _free_port(), _free_port()
    # Run as root, PostgreSQL runs as the postgres user, who cannot enter pytest's 0700
    # folders: the cluster goes to a folder of its own.
    data = Path(tempfile.mkdtemp(prefix="binwrn-server-"))
    data.chmod(0o755)
    server = subprocess.Popen([str(BIN / "binwrn-server"), "--port", str(port), "--pg-port",
                               str(pg_port), "--data", str(data)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, server)
        assert _listening_host(port) in ("127.0.0.1", None)  # loopback only by default
        (tmp_path / "sweep.yaml").write_text(SWEEP)
        done = subprocess.run([str(BIN / "binwrn-sweep"), str(tmp_path / "sweep.yaml"),
                               "--jobs", "2", "--no-report", f"tracking.uri={url}",
                               f"data.cache_dir={tmp_path / 'cache'}"],
                              capture_output=True, text=True, timeout=600, cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
        client = MlflowClient(url)
        experiment = client.get_experiment_by_name("binwrn")
        runs = client.search_runs([experiment.experiment_id])
        (parent,) = [r for r in runs if r.data.tags.get("binwrn.sweep_role") == "parent"]
        children = [r for r in runs if r is not parent]
        assert sorted(r.data.params["model.bits"] for r in children) == ["1", "32"]
        for run in children:
            assert run.info.status == "FINISHED"
            assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
            assert "config" in {a.path for a in client.list_artifacts(run.info.run_id)}
        assert (data / "pg" / "PG_VERSION").is_file()  # a real cluster
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    stopped = subprocess.run(["pgrep", "-f", str(data / "pg")], capture_output=True)
    shutil.rmtree(data, ignore_errors=True)
    assert stopped.returncode != 0  # binwrn-server stopped PostgreSQL on its way out
