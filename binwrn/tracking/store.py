"""Where runs are stored: an MLflow tracking URI, checked before any run starts.

Default: $MLFLOW_TRACKING_URI where it is set (conf/tracking/sqlite.yaml), else
`sqlite:///mlflow.db` in the working directory, with artifacts in `mlartifacts/` beside it, the
same pair `make ui` serves (MLflow >= 3.13 refuses plain directories, ecosystem-notes 2.5).
`store_uri` takes a URI where it enters (prepare, the sweep driver, the readers' resolve_uri)
and normalises it once: its password moves to the environment, relative SQLite paths become
absolute (`absolute_uri`) so runs started from any Hydra output directory land in the same
file, `postgresql://` names the installed driver, and a store that does not answer is refused.
Every MlflowClient is built by `open_client`. URIs in messages pass through `redact_uri`.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from urllib.parse import urlparse

from binwrn.errors import ConfigError
from binwrn.kill_points import kill_point
from binwrn.tracking.credentials import move_credentials_to_env, redact_uri

EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}
POSTGRES_DRIVER = "postgresql+psycopg2"  # the driver binwrn installs (and the server uses)


def absolute_uri(uri: str) -> str:
    """Make a relative `sqlite:///x.db` absolute, name psycopg2 for `postgresql://`, refuse
    schemes MLflow cannot track to, SQLite paths that cannot be files and files that are not
    SQLite databases."""
    try:
        parsed = urlparse(uri)
        parsed.port  # noqa: B018 (parsing the port is what refuses 'http://h:x')
    except ValueError as err:  # 'http://[::1' (an unclosed IPv6 host), a port out of range
        raise ConfigError(f"tracking.uri={redact_uri(uri)} is malformed ({err}): write "
                          "sqlite:///<file>.db, http://<host>:<port> or "
                          "postgresql://<user>@<host>/<db>.") from None
    if parsed.scheme == "sqlite":
        path = uri[len("sqlite:///"):]
        if not uri.startswith("sqlite:///") or not path:
            raise ConfigError(
                f"tracking.uri={redact_uri(uri)} is malformed: write sqlite:///relative.db or "
                "sqlite:////absolute/path.db."
            )
        database = Path(path).expanduser().resolve()
        _check_can_be_a_file(database)
        _check_is_sqlite(database)
        return f"sqlite:///{database}"
    if parsed.scheme == "postgresql":  # SQLAlchemy 2.1 picks psycopg 3, which is not installed
        return POSTGRES_DRIVER + uri[len("postgresql"):]
    if parsed.scheme.startswith("postgresql+") and parsed.scheme != POSTGRES_DRIVER:
        raise ConfigError(f"tracking.uri={redact_uri(uri)} names a PostgreSQL driver binwrn "
                          f"does not install: write postgresql:// (it uses {POSTGRES_DRIVER}).")
    if parsed.scheme in ("http", "https", "databricks", POSTGRES_DRIVER, "mysql"):
        return uri
    raise ConfigError(
        f"tracking.uri={redact_uri(uri)} is not supported: use sqlite:///<file>.db, "
        "http://<host>:<port> or postgresql://<user>@<host>/<db>."
    )


def store_uri(uri: str) -> str:
    """`uri` as binwrn uses it from here on (normalised once, here, where it enters): its
    password in the environment MLflow's client reads (credentials.py), `absolute_uri`, and
    refused now if its server does not answer (MLflow's own client retries for minutes)."""
    uri = absolute_uri(move_credentials_to_env(uri))
    check_reachable(uri)
    return uri


def _check_can_be_a_file(database: Path) -> None:
    """A store path under a file, or naming a folder, gets one sentence (not an OSError)."""
    if database.is_dir():
        raise ConfigError(f"The tracking store {database} is a folder: name a file in it, "
                          f"e.g. sqlite:///{database}/mlflow.db.")
    for parent in database.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"The tracking store {database} cannot be created: {parent} "
                                  "is a file, not a folder; point tracking.uri elsewhere.")
            return


SQLITE_HEADER = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite 3 database


def _check_is_sqlite(database: Path) -> None:
    """A file that exists must be an SQLite database (an empty one becomes a new store): MLflow
    answers anything else with sqlite3.DatabaseError deep in SQLAlchemy."""
    try:
        with open(database, "rb") as file:
            head = file.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        return
    except OSError as err:
        raise ConfigError(f"The tracking store {database} cannot be read ({err.strerror}): "
                          "point tracking.uri at a store you can read.") from None
    if head and head != SQLITE_HEADER:
        raise ConfigError(f"The tracking store {database} is not an SQLite database: point "
                          "tracking.uri at an MLflow store (sqlite:///mlflow.db) or a file "
                          "that does not exist yet.")


def check_store_exists(uri: str, what: str) -> None:
    """Refuse a SQLite file that is not there, where opening it would create an empty one."""
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).is_file():
        raise ConfigError(f"No tracking store at {uri[len('sqlite:///'):]}: check {what} "
                          "(nothing was created).")


def check_reachable(uri: str, timeout_s: float = 5.0) -> None:
    """Fail fast on a server that does not answer (MLflow's own client retries for minutes)."""
    if uri.startswith(POSTGRES_DRIVER + "://"):
        _check_postgres(uri, timeout_s)
    if not uri.startswith(("http://", "https://")):
        return
    import requests

    try:
        requests.get(uri.rstrip("/") + "/health", timeout=timeout_s)
    except requests.RequestException:
        raise ConfigError(
            f"The tracking server tracking.uri={redact_uri(uri)} cannot be reached: start it "
            "(make ui) or point tracking.uri at a running server or a sqlite:/// file."
        ) from None


def _check_postgres(uri: str, timeout_s: float) -> None:
    """One connection through libpq (the password from the URI or PGPASSWORD): a wrong
    password or a stopped server is one sentence, not MLflow's ten retries."""
    import psycopg2

    try:
        psycopg2.connect("postgresql" + uri[len(POSTGRES_DRIVER):],
                         connect_timeout=max(1, int(timeout_s))).close()
    except psycopg2.Error as err:
        reason = redact_uri(str(err).strip().splitlines()[0] if str(err).strip() else "")
        raise ConfigError(
            f"The PostgreSQL store tracking.uri={redact_uri(uri)} cannot be used ({reason}): "
            "start binwrn-server, or give the password from its data folder's pg-password "
            "file (in the URI or PGPASSWORD)."
        ) from None


def artifact_location(uri: str, artifact_root: str, experiment: str) -> str | None:
    """Artifacts of a database store (SQLite, or PostgreSQL reached directly) go to the
    folder `artifact_root`; a server chooses its own."""
    if uri.startswith(("http://", "https://", "databricks")):
        return None
    return (Path(artifact_root).expanduser().resolve() / experiment).as_uri()


def ui_link(port: int = 5000, experiment_id: str | None = None) -> str:
    """The MLflow 3 'Model training' view (its default GenAI view shows no metrics)."""
    base = f"http://127.0.0.1:{port}/"
    if experiment_id is None:
        return base
    return f"{base}#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def _create_sqlite_store(database: Path) -> None:
    """Create and migrate a new SQLite store under a temporary name, then rename it into
    place. MLflow's migrations take seconds and commit step by step: a process killed among
    them left a store that no later process could open ("duplicate column name: step").
    Called under the init lock, so a leftover temporary file is a dead process's."""
    import sqlalchemy

    try:
        from mlflow.store.db.utils import _initialize_tables
    except ImportError:  # a later MLflow without it: it creates the store in place
        return
    for stale in database.parent.glob(f".{database.name}.*.creating*"):  # and its -journal
        stale.unlink(missing_ok=True)
    temporary = database.with_name(f".{database.name}.{os.getpid()}.creating")
    engine = sqlalchemy.create_engine(f"sqlite:///{temporary}")
    try:
        _initialize_tables(engine)
    finally:
        engine.dispose()
    kill_point("store")  # a test hook (binwrn/kill_points.py)
    os.replace(temporary, database)


def open_client(uri: str):
    """An MlflowClient on `uri` whose store exists and is migrated.

    MLflow creates and migrates a SQLite store on first use; several processes doing that at
    once collide ("table ... already exists", alembic version mismatch). The first use is
    therefore serialised with a lock file beside the database; later writes need no lock.
    A new store appears whole or not at all (`_create_sqlite_store`).
    """
    from mlflow import MlflowClient

    if not uri.startswith("sqlite:///"):
        return MlflowClient(uri, registry_uri=uri)
    database = Path(uri[len("sqlite:///"):])
    database.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{database}.init-lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not database.exists():
            _create_sqlite_store(database)
        client = MlflowClient(uri, registry_uri=uri)  # never the global default
        client.search_experiments(max_results=1)  # creates and migrates the schema if needed
    return client


def ensure_experiment(client, name: str, location: str | None) -> str:
    """The id of experiment `name`, created (with the UI's training view) if missing."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        _check_artifacts_reachable(client, found)
        return found.experiment_id
    try:
        return client.create_experiment(name, artifact_location=location, tags=EXPERIMENT_TAGS)
    except MlflowException:  # another process created it first
        return client.get_experiment_by_name(name).experiment_id


def _check_artifacts_reachable(client, experiment) -> None:
    """An experiment a server created keeps its artifacts behind that server
    (mlflow-artifacts:/): a client on the database itself cannot upload there."""
    location = experiment.artifact_location or ""
    if location.startswith("mlflow-artifacts:") and not client.tracking_uri.startswith("http"):
        raise ConfigError(
            f"Experiment {experiment.name} keeps its artifacts on the tracking server, which "
            f"{redact_uri(client.tracking_uri)} bypasses: point tracking.uri at the server "
            "(http://...), or name another experiment (tracking.experiment=...).")
