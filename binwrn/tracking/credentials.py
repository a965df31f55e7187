"""Credentials in tracking URIs: shown as `***` everywhere, kept in the environment only.

`redact_uri` is the one function every print, error sentence, config dump, param, tag and
logged artifact passes a URI (or a text holding URIs) through: `postgresql://u:pw@host/db`
becomes `postgresql://u:***@host/db`, `http://u:pw@host` becomes `http://u:***@host`,
`http://TOKEN@host` becomes `http://***@host`, `?password=pw` becomes `?password=***`.

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
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

# scheme://user:password@ -> scheme://user:***@ (a password holds no '/', '@' or space
# unencoded: a URI parser would split it there too).
_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s/@:]*):(?P<pw>[^\s/@]+)@")
# http(s)://TOKEN@host: a user name alone is how tokens travel to HTTP servers (requests
# sends it as basic auth); a database's user name alone is a role, not a secret.
_HTTP_USER = re.compile(r"(?P<head>\bhttps?://)(?P<user>[^\s/@:]+)@", re.IGNORECASE)
# Query parameters that carry secrets: libpq's password and sslpassword (SQLAlchemy hands
# the query to it), and the names token-authenticated HTTP services use.
SECRET_PARAMETERS = ("password", "passwd", "pwd", "sslpassword", "token", "access_token",
                     "api_key", "apikey", "secret", "client_secret")
_QUERY_SECRET = re.compile(
    rf"(?P<head>[?&;](?:{'|'.join(SECRET_PARAMETERS)})=)(?P<value>[^&;#\s'\"]+)",
    re.IGNORECASE)
MASK = "***"
URI_OVERRIDE = "tracking.uri="


def redact_uri(text: str) -> str:
    """`text` with every credential of every URI in it replaced by ***: the password of the
    user information, an HTTP URI's user name given alone (a token), and the value of a
    secret query parameter (`?password=`, `&token=`, ...)."""
    text = _PASSWORD.sub(rf"\g<head>:{MASK}@", text)
    text = _HTTP_USER.sub(lambda m: m.group(0) if m.group("user") == MASK
                          else f"{m.group('head')}{MASK}@", text)
    return _QUERY_SECRET.sub(rf"\g<head>{MASK}", text)


def _query_password(parts) -> tuple[str, str | None]:
    """(the query without libpq's `password`, that password): a PostgreSQL URI may carry its
    password as `?password=`, which libpq reads like the user information's."""
    kept, password = [], None
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key.lower() == "password" and value != MASK:
            password = value
        else:
            kept.append((key, value))
    return urlencode(kept), password


def _without_password(uri: str) -> tuple[str, str | None, str | None]:
    """(uri without its password, user, password); the URI unchanged where it has none, or
    where it does not parse (`absolute_uri` says what is wrong with it)."""
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        return uri, None, None
    if parts.scheme.startswith("postgresql"):
        query, in_query = _query_password(parts)
        if in_query is not None:
            parts = parts._replace(query=query)
            if parts.password is None or parts.password == MASK:
                return urlunsplit(parts), parts.username, in_query
    if parts.password is None or parts.password == MASK:
        return uri, parts.username, None
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = host + (f":{port}" if port else "")
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
