"""Credentials in tracking URIs never leave the process (issue 15 item 3), and the one rule
for the store (issue 20 item 2): tracking.uri defaults to $MLFLOW_TRACKING_URI.

The planted-password test runs a real tiny run against a real `mlflow server` through
`http://user:SECRET@...` and then looks for SECRET everywhere the run could have put it:
stdout, stderr, every file of its output folder (Hydra's .hydra/, the log), every param, tag
and artifact of the run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from e2e import binwrn_run
from helpers_server import free_port, mlflow_server

from binwrn.errors import ConfigError
from binwrn.tracking.credentials import (
    credentials_out_of_overrides,
    move_credentials_to_env,
    redact_uri,
)
from binwrn.tracking.store import absolute_uri, open_client, store_uri

SECRET = "pl4nted-Secret"


@pytest.mark.parametrize(("text", "shown"), [
    ("postgresql://u:pw@host/db", "postgresql://u:***@host/db"),
    ("http://u:pw@127.0.0.1:5000", "http://u:***@127.0.0.1:5000"),
    ("postgresql+psycopg2://mlflow:a%40b@h:5433/m", "postgresql+psycopg2://mlflow:***@h:5433/m"),
    ("store tracking.uri=https://me:x@h/ failed", "store tracking.uri=https://me:***@h/ failed"),
    ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
    ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
    # issue 27 item 7: every other spelling a driver accepts
    ("postgresql://u@127.0.0.1:9/db?password=S3cretPW", "postgresql://u@127.0.0.1:9/db?password=***"),
    ("postgresql://u@h/db?sslmode=require&sslpassword=k", "postgresql://u@h/db?sslmode=require&sslpassword=***"),
    ("http://TOKEN@host:5000/", "http://***@host:5000/"),
    ("uri: https://h/api?token=T0K&x=1", "uri: https://h/api?token=***&x=1"),
    ("postgresql://mlflow@127.0.0.1:5433/mlflow", "postgresql://mlflow@127.0.0.1:5433/mlflow"),
])
def test_redact_uri_masks_the_password_and_nothing_else(text: str, shown: str) -> None:
    assert redact_uri(text) == shown


def test_the_password_moves_to_the_variable_its_client_reads() -> None:
    env: dict[str, str] = {}
    assert move_credentials_to_env("http://ann:p%40ss@h:5000", env) == "http://h:5000"
    assert env == {"MLFLOW_TRACKING_USERNAME": "ann", "MLFLOW_TRACKING_PASSWORD": "p@ss"}
    env = {"MLFLOW_TRACKING_URI": "postgresql://ann:pw@h/db"}
    assert credentials_out_of_overrides(["model.bits=1", "tracking.uri=postgresql://b:q@h/d"],
                                        env) == ["model.bits=1", "tracking.uri=postgresql://b@h/d"]
    assert env["MLFLOW_TRACKING_URI"] == "postgresql://ann@h/db"
    assert env["PGPASSWORD"] == "q"  # the command line's, which Hydra would use


def test_a_query_password_moves_to_pgpassword_and_leaves_the_override() -> None:
    """What Hydra records (.hydra/*.yaml, outcome.json) never holds `?password=`."""
    env: dict[str, str] = {}
    given = "tracking.uri=postgresql://u@127.0.0.1:9/db?sslmode=require&password=S3cretPW"
    assert credentials_out_of_overrides([given], env) == [
        "tracking.uri=postgresql://u@127.0.0.1:9/db?sslmode=require"]
    assert env == {"PGPASSWORD": "S3cretPW"}
    assert move_credentials_to_env("http://[::1", env) == "http://[::1"  # refused later


def test_a_uri_that_does_not_parse_is_one_sentence() -> None:
    for uri in ("http://[::1", "http://h:99999"):
        with pytest.raises(ConfigError, match="is malformed"):
            absolute_uri(uri)


def test_a_file_that_is_not_a_database_is_one_sentence(tmp_path: Path) -> None:
    (tmp_path / "notes.db").write_text("not a database")
    with pytest.raises(ConfigError, match="is not an SQLite database"):
        absolute_uri(f"sqlite:///{tmp_path / 'notes.db'}")
    (tmp_path / "empty.db").write_bytes(b"")  # SQLite's own empty database: a new store
    assert absolute_uri(f"sqlite:///{tmp_path / 'empty.db'}").endswith("empty.db")


def test_plain_postgresql_uri_names_the_installed_driver() -> None:
    assert absolute_uri("postgresql://u@h:5433/db") == "postgresql+psycopg2://u@h:5433/db"
    with pytest.raises(ConfigError, match="does not install"):
        absolute_uri("postgresql+psycopg://u@h/db")


def test_a_uri_is_normalised_once_where_it_enters(tmp_path: Path, monkeypatch) -> None:
    """store_uri: the password to the environment, the SQLite path absolute, and the result a
    fixed point (the URI the commands pass on is used as it is)."""
    monkeypatch.chdir(tmp_path)
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    assert store_uri("sqlite:///runs/m.db") == f"sqlite:///{tmp_path.resolve()}/runs/m.db"
    assert store_uri(store_uri("sqlite:///m.db")) == store_uri("sqlite:///m.db")
    with pytest.raises(ConfigError, match="cannot be reached"):
        store_uri(f"http://ann:{SECRET}@127.0.0.1:{free_port()}")
    assert os.environ["MLFLOW_TRACKING_PASSWORD"] == SECRET


def test_a_store_under_a_file_or_naming_a_folder_is_one_sentence(tmp_path: Path) -> None:
    (tmp_path / "somefile.txt").write_text("")
    with pytest.raises(ConfigError, match="somefile.txt is a file, not a folder"):
        absolute_uri(f"sqlite:///{tmp_path}/somefile.txt/mlflow.db")
    with pytest.raises(ConfigError, match="is a folder"):
        absolute_uri(f"sqlite:///{tmp_path}")


def _one_sentence_without_secret(out) -> str:
    assert out.returncode != 0
    assert "Traceback" not in out.stderr and "ModuleNotFoundError" not in out.stderr
    assert SECRET not in out.stdout + out.stderr
    return out.stdout + out.stderr


@pytest.mark.slow
def test_unreachable_stores_with_passwords_are_one_sentence_without_them(tmp_path: Path):
    closed = free_port()
    out = binwrn_run(tmp_path, "experiment=smoke", "dataset=digits",
                     f"tracking.uri=postgresql://mlflow:{SECRET}@127.0.0.1:{closed}/mlflow")
    assert "The PostgreSQL store tracking.uri=postgresql+psycopg2://mlflow@" in \
        _one_sentence_without_secret(out)
    out = _run_with_store_from_env(tmp_path, f"http://ann:{SECRET}@127.0.0.1:{closed}")
    assert "cannot be reached" in _one_sentence_without_secret(out)
    (tmp_path / "somefile.txt").write_text("")
    out = binwrn_run(tmp_path, "experiment=smoke", "dataset=digits",
                     f"tracking.uri=sqlite:///{tmp_path}/somefile.txt/mlflow.db")
    assert "is a file, not a folder" in _one_sentence_without_secret(out)
    assert not list(tmp_path.rglob("*.db"))


def _run_with_store_from_env(tmp: Path, uri: str) -> subprocess.CompletedProcess:
    """binwrn-run with no tracking.uri override and MLFLOW_TRACKING_URI=uri."""
    return subprocess.run(
        [str(Path(sys.executable).with_name("binwrn-run")), "experiment=smoke", "dataset=digits",
         "trainer.max_epochs=1", f"hydra.run.dir={tmp / 'out'}",
         f"tracking.artifact_root={tmp / 'artifacts'}", f"data.cache_dir={tmp / 'cache'}"],
        capture_output=True, text=True, timeout=600, cwd=tmp,
        env={**os.environ, "MLFLOW_TRACKING_URI": uri})


@pytest.mark.slow
def test_mlflow_tracking_uri_is_the_store_binwrn_run_writes_to(tmp_path: Path) -> None:
    store = tmp_path / "x.db"
    done = _run_with_store_from_env(tmp_path, f"sqlite:///{store}")
    assert done.returncode == 0, done.stderr[-2000:]
    client = open_client(f"sqlite:///{store}")
    (run,) = client.search_runs([client.get_experiment_by_name("binwrn").experiment_id])
    assert run.info.status == "FINISHED"
    assert not (tmp_path / "mlflow.db").exists()  # not the default store


def _texts_of(folder: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file())


@pytest.mark.slow
def test_a_password_planted_in_tracking_uri_is_in_no_output_param_tag_or_artifact(tmp_path):
    port = free_port()
    with mlflow_server(tmp_path / "server", port) as url:
        planted = url.replace("http://", f"http://ann:{SECRET}@")
        out = binwrn_run(tmp_path, "experiment=smoke", "dataset=digits", "trainer.max_epochs=1",
                         f"tracking.uri={planted}", "tracking.log_checkpoint=false")
        assert out.returncode == 0, out.stderr[-3000:]
        assert SECRET not in out.stdout + out.stderr
        assert SECRET not in _texts_of(tmp_path / "out")  # .hydra/*.yaml, the job's log
        client = open_client(url)
        (run,) = client.search_runs([client.get_experiment_by_name("binwrn").experiment_id])
        assert run.info.status == "FINISHED"
        for key, value in {**run.data.params, **run.data.tags}.items():
            assert SECRET not in f"{key}={value}"
        artifacts = Path(client.download_artifacts(run.info.run_id, "", str(tmp_path / "a")))
        logged = {p.relative_to(artifacts).as_posix() for p in artifacts.rglob("*.yaml")}
        assert {"config/resolved.yaml", "hydra/config.yaml", "hydra/hydra.yaml",
                "hydra/overrides.yaml"} <= logged
        assert f"uri: {url}" in (artifacts / "config/resolved.yaml").read_text()
        assert SECRET not in _texts_of(artifacts)
    shutil.rmtree(tmp_path / "a", ignore_errors=True)


def test_an_experiment_whose_artifacts_live_behind_a_server_is_refused_on_the_database(
        fresh_store: Path) -> None:
    from binwrn.tracking.store import ensure_experiment

    client = open_client(f"sqlite:///{fresh_store}")
    client.create_experiment("served", artifact_location="mlflow-artifacts:/served")
    with pytest.raises(ConfigError, match="keeps its artifacts on the tracking server"):
        ensure_experiment(client, "served", None)
    assert ensure_experiment(client, "mine", "file:///tmp/mine")  # a new one is fine
