"""Credentials in tracking URIs: shown as `***` everywhere, kept in the environment only.

`redact_uri` is the one function every print, error sentence, config dump, param, tag and
logged artifact passes a URI (or a text holding URIs) through: `postgresql://u:pw@host/db`
becomes `postgresql://u:***@host/db`, `http://u:pw@host` becomes `http://u:***@host`.

`move_credentials_to_env` goes further for the entry points that hand URIs to Hydra
(`binwrn-run`, `binwrn-sweep`): the password leaves the `tracking.uri` override (and
`MLFLOW_TRACKING_URI`) before Hydra sees it, and travels in the variables the clients read
themselves: MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD (MLflow's HTTP client) and
PGPASSWORD (libpq, under psycopg2). So Hydra's own files and log lines (overrides.yaml,
hydra.yaml, multirun.yaml, "Error executing job with overrides"), a sweep's job command line
(readable by every local user in `ps`) and child processes' arguments never hold it; the
environment of a process is readable by its own user only.
"""

from __future__ import annotations

import os
import re
from urllib.parse import unquote, urlsplit, urlunsplit

# scheme://user:password@ -> scheme://user:***@ (a password holds no '/', '@' or space
# unencoded: a URI parser would split it there too).
_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s/@:]*):(?P<pw>[^\s/@]+)@")
MASK = "***"
URI_OVERRIDE = "tracking.uri="


def redact_uri(text: str) -> str:
    """`text` with the password of every URI in it replaced by ***."""
    return _PASSWORD.sub(rf"\g<head>:{MASK}@", text)


def _without_password(uri: str) -> tuple[str, str | None, str | None]:
    """(uri without its password, user, password); the URI unchanged where it has none."""
    parts = urlsplit(uri)
    if parts.password is None or parts.password == MASK:
        return uri, parts.username, None
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    user = unquote(parts.username or "")
    if parts.scheme.startswith("postgresql") and user:
        netloc = f"{parts.username}@{netloc}"  # libpq takes the user from the URI
    return urlunsplit(parts._replace(netloc=netloc)), user, unquote(parts.password)


def move_credentials_to_env(uri: str, environ: os._Environ | dict = os.environ) -> str:
    """`uri` without its password, which goes to the variable its client reads instead.

    http(s): MLFLOW_TRACKING_USERNAME/PASSWORD (MLflow sends them as basic auth);
    postgresql: PGPASSWORD (libpq). Other schemes keep their credentials (shown redacted).
    """
    bare, user, password = _without_password(uri)
    if password is None:
        return uri
    scheme = urlsplit(uri).scheme
    if scheme in ("http", "https"):
        environ["MLFLOW_TRACKING_USERNAME"] = user or ""
        environ["MLFLOW_TRACKING_PASSWORD"] = password
        return bare
    if scheme.startswith("postgresql"):
        environ["PGPASSWORD"] = password
        return bare
    return uri


def credentials_out_of_overrides(overrides: list[str],
                                 environ: os._Environ | dict = os.environ) -> list[str]:
    """Command-line overrides with `tracking.uri`'s password moved to the environment, and
    MLFLOW_TRACKING_URI (the default of tracking.uri) likewise."""
    if environ.get("MLFLOW_TRACKING_URI"):
        environ["MLFLOW_TRACKING_URI"] = move_credentials_to_env(
            environ["MLFLOW_TRACKING_URI"], environ)
    return [URI_OVERRIDE + move_credentials_to_env(o[len(URI_OVERRIDE):], environ)
            if o.startswith(URI_OVERRIDE) else o for o in overrides]
