"""The one redaction rule for everything lxn logs, stores or prints.

    redact(value) = value with, in every string at any depth: URIs stripped of `user:password@`,
    query and (unless it is a `#/route`) fragment; `name=value` pairs whose name looks secret masked; the values of the
    process's secret environment variables (and of secrets registered at run time) masked;
    and in every mapping, the values under secret-looking keys masked.

What counts as data is not redacted: report rows keep their objects' URIs (an S3 key may
legally contain `?`), since they name what was scanned. Settings, summaries, MLflow params and
tags, log lines and error messages are redacted.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Mapping
from typing import Any

__all__ = ["MASK", "is_secret_key", "redact", "redact_text", "redact_uri", "register_secret", "RedactingFilter"]

MASK = "***"

_SECRET_NAME = r"(?:secret|password|passwd|pwd|token|credential|api[_-]?key|access[_-]?key|signature|auth)"
_SECRET_KEY = re.compile(_SECRET_NAME, re.I)
# A URI in free text: scheme://, then everything up to whitespace or a quote/bracket.
_URI = re.compile(r"\b([A-Za-z][A-Za-z0-9+.\-]*)://([^\s'\"<>\]\[)(]*)")
# `token=abc`, `password: abc`, `X-Amz-Signature=abc` in free text (outside URIs too).
_PAIR = re.compile(rf"(\b[\w.\-]*{_SECRET_NAME}[\w.\-]*\s*[=:]\s*)([^\s&'\",;]+)", re.I)
# Environment variables whose values are secrets wherever they turn up.
SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN",
              "RAY_AUTH_TOKEN", "DATABRICKS_TOKEN")
_MIN_SECRET_LEN = 6  # shorter values would mask ordinary words

_registered: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Mask `value` wherever it appears from now on in this process (e.g. a password that came
    inside a tracking URI)."""
    if value and len(value) >= _MIN_SECRET_LEN:
        with _lock:
            _registered.add(value)


def is_secret_key(key: str) -> bool:
    """True for a setting or field name that holds a secret (`aws_secret_access_key`, `token`)."""
    return bool(_SECRET_KEY.search(key))


def _secrets() -> list[str]:
    values = {os.environ.get(name, "") for name in SECRET_ENV} | _registered
    return sorted((v for v in values if len(v) >= _MIN_SECRET_LEN), key=len, reverse=True)


def redact_uri(uri: str) -> str:
    """`uri` without `user:password@`, query and fragment (`scheme://host[:port]/path`)."""
    match = _URI.fullmatch(uri.strip())
    return _strip_uri(match) if match else redact_text(uri)


def _strip_uri(match: re.Match) -> str:
    scheme, rest = match.group(1), match.group(2)
    authority, slash, path = rest.partition("/")
    authority = authority.rpartition("@")[2]  # the last @ ends the userinfo
    path, _, fragment = path.partition("#")
    path = path.split("?", 1)[0]
    authority = re.split(r"[?#]", authority, maxsplit=1)[0]
    # A fragment that is a path is a client-side route (MLflow's UI: #/experiments/1/runs/...); any
    # other may be a token (an OAuth implicit grant), and goes with the query.
    route = "#" + fragment.split("?", 1)[0] if fragment.startswith("/") else ""
    return f"{scheme}://{authority}{slash}{path}{route}"


def redact_text(text: str) -> str:
    """`text` with every URI stripped (see `redact_uri`), secret `name=value` pairs masked and
    known secret values masked."""
    if not text:
        return text
    out = _URI.sub(_strip_uri, text)
    out = _PAIR.sub(lambda m: m.group(1) + MASK, out)
    for secret in _secrets():
        out = out.replace(secret, MASK)
    return out


def redact(value: Any) -> Any:
    """`value` (str, mapping, list, tuple or scalar, nested) redacted; mappings' secret-looking
    keys have their values masked. Returns new containers; never mutates."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {k: (MASK if isinstance(k, str) and is_secret_key(k) and v not in (None, "") else redact(v))
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact(v) for v in value) if isinstance(value, list) else tuple(redact(v) for v in value)
    if isinstance(value, BaseException):
        return redact_text(str(value))
    return value


class RedactingFilter(logging.Filter):
    """A logging filter that redacts each record's message (with its args merged in) and any
    formatted traceback, so no handler it sits on ever writes a secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string is the caller's; keep the raw msg
            message = str(record.msg)
        record.msg, record.args = redact_text(message), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        return True
