"""Tell a person how last night's job went: a JSON POST to a webhook (`--notify URL`).

Slack's and Mattermost's incoming webhooks, Microsoft Teams workflows, PagerDuty's and most
alerting tools' generic webhooks take a POST with a JSON body; the body here has a one-line
`text` (what chat tools show) and the structured `lxn` record (what an alerting rule reads).

A webhook URL is a credential (Slack's carries its token in the path): everything after the host
is registered as a secret when the URL is checked, so logs, MLflow params and reports show
`https://hooks.example.com/***`. A hook that is down never fails the job it reports on: the POST
is tried a few times, then a warning is logged and the job's own exit status stands.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from lxn.redact import redact, redact_text, register_secret

__all__ = ["check_webhook", "notify"]

log = logging.getLogger(__name__)


def check_webhook(url: str, where: str = "--notify") -> str:
    """`url` if it is an http(s) URL with a host and no user:password (put a token in the path or
    query, as webhook services do); its path and query are registered as secrets."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{where} takes an http(s) webhook URL, got {redact_text(url)!r}")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"{where}: the webhook URL carries user:password credentials; use the token URL your "
                         "service gives (Slack, Teams, PagerDuty put it in the path)")
    register_secret(parts.path.strip("/"))
    register_secret(parts.query)
    for segment in parts.path.split("/"):
        if len(segment) >= 16:  # a token; shorter ones ("services", "hooks") are ordinary words elsewhere
            register_secret(segment)
    return url


def notify(url: str | None, job: str, status: str, text: str, record: dict[str, Any], *, attempts: int = 3,
           timeout_s: float = 10.0) -> bool:
    """POST {"text": ..., "lxn": {"job", "status", ...record}} (redacted) to `url`; True when the
    hook answered 2xx. Never raises for the hook's sake: a down hook is a warning."""
    if not url:
        return False
    body = json.dumps(redact({"text": text, "lxn": {"job": job, "status": status, **record}}), default=str).encode()
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "lxn"})
    for attempt in range(1, attempts + 1):
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                response.read()
            log.info("notified %s (%s)", _where(url), status)
            return True
        except urllib.error.HTTPError as exc:
            problem = f"HTTP {exc.code}"
            if 400 <= exc.code < 500 and exc.code != 429:
                break  # the hook refuses this request: trying again changes nothing
        except (OSError, ValueError) as exc:  # refused, unresolvable, timed out
            problem = type(exc).__name__
        if attempt < attempts:
            time.sleep(0.5 * 2 ** (attempt - 1))
    log.warning("could not notify %s (%s): the %s job's result stands", _where(url), problem, job)
    return False


def _where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/***"
