"""Where the MLflow server is, and a client for it: the tracking URI resolved (flag, then
MLFLOW_TRACKING_URI, then a local sqlite store) and checked, its credentials moved to MLflow's own
variables. Light (no torch, no MLflow at import): run tracking (lxn.tracking) and the registry
(lxn.registry) both start here."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote, urlsplit, urlunsplit

from lxn.errors import TrackingError
from lxn.redact import redact_uri, register_secret, split_userinfo

__all__ = ["DEFAULT_TRACKING_URI", "resolve_tracking_uri", "fluent"]

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


def resolve_tracking_uri(uri: str | None = None) -> str:
    """The argument, else MLFLOW_TRACKING_URI, else `sqlite:///mlflow.db`; a relative sqlite path
    is made absolute, because Ray workers that log or load models run in other directories.

    The result may carry credentials (`http://user:password@host`): pass it on, never print it
    (`redact_uri`); the clients made from it take the credentials out (`_client_uri`).
    """
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        uri = prefix + str(Path(uri[len(prefix):]).resolve())
    parts = urlsplit(uri)
    if parts.scheme in ("http", "https"):
        userinfo, _ = split_userinfo(uri.split("://", 1)[1])
        if userinfo is not None:
            register_secret(unquote(userinfo.partition(":")[2]))
            register_secret(userinfo.partition(":")[2])
            if userinfo != parts.netloc.rpartition("@")[0]:
                raise TrackingError(f"tracking URI {redact_uri(uri)}: its password holds an unencoded '/' (or another "
                                    "character a URI cannot carry there): percent-encode it ('/' is %2F), or give it "
                                    "through MLFLOW_TRACKING_PASSWORD")
        if parts.query or parts.fragment:
            raise TrackingError(f"tracking URI {redact_uri(uri)} has a query or fragment, which MLflow cannot use; "
                                "give a token through MLFLOW_TRACKING_TOKEN instead")
    return uri


def _client_uri(uri: str) -> str:
    """`uri` as MLflow's clients get it: without `user:password@`, which move to MLflow's own
    variables for this process (its REST client sends them as HTTP basic auth)."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not (parts.username or parts.password):
        return uri
    register_secret(unquote(parts.password or ""))
    os.environ["MLFLOW_TRACKING_USERNAME"] = unquote(parts.username or "")
    os.environ["MLFLOW_TRACKING_PASSWORD"] = unquote(parts.password or "")
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _client(uri: str):
    import mlflow

    return mlflow.MlflowClient(tracking_uri=_client_uri(uri))


@contextlib.contextmanager
def fluent(uri: str) -> Iterator[None]:
    """MLflow's model-logging and registering API only works through its global tracking URI:
    set it briefly."""
    import mlflow

    previous = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    mlflow.set_tracking_uri(_client_uri(uri))
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous) if previous else mlflow.set_tracking_uri(resolve_tracking_uri())
