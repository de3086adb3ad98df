"""What every job's `main` shares: logging, and the one-line, redacted reason for bad input."""

from __future__ import annotations

import sys

from lxn.errors import TrackingError
from lxn.logs import configure_logging
from lxn.redact import redact_text

__all__ = ["BAD_INPUT", "EXIT_BAD_INPUT", "configure_logging", "fail"]

EXIT_BAD_INPUT = 2


BAD_INPUT: tuple[type[BaseException], ...] = (ValueError, OSError, TrackingError)  # UnsafeModelError is a ValueError


def fail(exc: BaseException) -> int:
    """Print `error: <reason>` (redacted) on stderr and return the bad-input exit status."""
    print(f"error: {redact_text(str(exc))}", file=sys.stderr)
    return EXIT_BAD_INPUT
