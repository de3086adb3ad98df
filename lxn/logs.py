"""Logging for jobs and the Ray workers they start: INFO lines on stderr, every line redacted."""

from __future__ import annotations

import logging
import sys

from lxn.redact import RedactingFilter

__all__ = ["FORMAT", "configure_logging"]

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: int = logging.INFO, *, worker: bool = False) -> None:
    """Give this process one stderr handler at `level` whose lines pass through `RedactingFilter`.

    A job owns its process: the handler goes on the root logger, so every library's lines are
    shown (and redacted). A Ray worker running lxn code (`worker=True`) shares its process with
    Ray, which prints root-logger records itself: there the handler goes on the `lxn` logger
    only, which then does not propagate, so each of its lines appears once in `ray job logs`.
    Idempotent; an earlier handler of ours (whose stderr may have been replaced) is replaced.
    """
    target = logging.getLogger("lxn" if worker else None)
    for old in [h for h in target.handlers if getattr(h, "_lxn", False)]:
        target.removeHandler(old)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler._lxn = True  # type: ignore[attr-defined]
    target.addHandler(handler)
    for existing in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in existing.filters):
            existing.addFilter(RedactingFilter())
    target.setLevel(level)
    logging.getLogger("lxn").setLevel(level)
    if worker:
        target.propagate = False
