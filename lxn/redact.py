"""The one redaction rule for everything lxn logs, stores or prints.

    redact(value) = value with, in every string at any depth: URIs' credentials masked in place
    (`scheme://***@host/path?name=***#***`: userinfo, every query value, and a fragment unless it
    is a `#/route`); `name=value` pairs whose name looks secret masked; the values of the
    process's secret environment variables (and of secrets registered at run time) masked;
    and in every mapping, the values under secret-looking keys masked.

Masked in place, not removed: the record still names the prefix that was scanned and shows that
something was taken out of it. Userinfo is found as people write it, not only as RFC 3986 allows:
a password with an unencoded `/` or `@` (`http://user:S3C/RET@PW@host/`) is masked whole.

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

__all__ = ["MASK", "is_secret_key", "redact", "redact_text", "redact_uri", "register_secret", "RedactingFilter",
           "split_userinfo"]

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
    """`uri` with its credentials masked in place (`scheme://***@host/path?name=***`)."""
    match = _URI.fullmatch(uri.strip())
    return _mask_uri(match) if match else redact_text(uri)


# `host:8080/...`: a port (at most 65535), not the start of a password
_PORT_THEN_PATH = re.compile(r"(\d{0,5})(/|$)")


def split_userinfo(rest: str) -> tuple[str | None, str]:
    """(userinfo, the rest) of what follows `scheme://`, or (None, rest) when there is none.

    The userinfo ends at the last `@` of the authority (RFC 3986, so an `@` in the password is
    kept in it). When the authority has no `@` but the text reads `user:pass/word@host`, a
    password with an unencoded `/`, the userinfo runs to the `@` before the host."""
    head = re.split(r"[?#]", rest, maxsplit=1)[0]
    authority = head.split("/", 1)[0]
    if "@" in authority:
        at = authority.rindex("@")
        return rest[:at], rest[at + 1:]
    if "@" not in head:
        return None, rest
    first = head.index("@")
    candidate = head[:first]
    colon = candidate.find(":")
    port = _PORT_THEN_PATH.match(candidate[colon + 1:]) if colon >= 0 else None
    if colon < 0 or "/" in candidate[:colon] or (port and int(port.group(1) or 0) <= 65535):
        return None, rest  # an `@` in a path (`s3://bucket/a@b.jpg`, `http://host:80/a@b`)
    host = head[first + 1:].split("/", 1)[0]
    at = first + 1 + host.rindex("@") if "@" in host else first
    return rest[:at], rest[at + 1:]


def _mask_query(query: str) -> str:
    return "&".join(f"{pair.partition('=')[0]}={MASK}" if "=" in pair else (MASK if pair else "")
                    for pair in query.split("&"))


def _mask_uri(match: re.Match) -> str:
    scheme, rest = match.group(1), match.group(2)
    userinfo, rest = split_userinfo(rest)
    cut = re.search(r"[?#]", rest)
    body, tail = (rest[:cut.start()], rest[cut.start():]) if cut else (rest, "")
    query, fragment = "", ""
    if tail.startswith("?"):
        query, _, fragment = tail[1:].partition("#")
        fragment = "#" + fragment if "#" in tail else ""
    else:
        fragment = tail
    masked = f"{scheme}://{MASK + '@' if userinfo is not None else ''}{body}"
    if tail.startswith("?"):
        masked += "?" + _mask_query(query)
    if fragment:
        # A fragment that is a path is a client-side route (MLflow's UI: #/experiments/1/runs/...);
        # any other may be a token (an OAuth implicit grant).
        route, question, route_query = fragment[1:].partition("?")
        masked += ("#" + route + (f"?{_mask_query(route_query)}" if question else "")) if route.startswith("/") \
            else f"#{MASK}"
    return masked


def redact_text(text: str) -> str:
    """`text` with every URI stripped (see `redact_uri`), secret `name=value` pairs masked and
    known secret values masked."""
    if not text:
        return text
    out = _URI.sub(_mask_uri, text)
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
