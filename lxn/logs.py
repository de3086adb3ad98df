"""Logging for jobs and the Ray workers they start: INFO lines on stderr, every line redacted."""

from __future__ import annotations

import logging
import sys

from lxn.redact import RedactingFilter

__all__ = ["FORMAT", "configure_logging"]

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: int = logging.INFO) -> None:
    """Give this process one stderr handler at `level` whose lines pass through `RedactingFilter`.

    A job owns its process, and so does a Ray worker running lxn code (its stderr is what
    `ray job logs` shows): both call this. Idempotent; handlers that others installed on the
    root logger (Ray's own) are redacted too.
    """
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_lxn", False)]:
        root.removeHandler(old)  # its stderr may be gone (a caller replaced sys.stderr since)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler._lxn = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    for handler in root.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
    root.setLevel(level)
    logging.getLogger("lxn").setLevel(level)
