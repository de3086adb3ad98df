"""What every job's `main` shares (`run_job`): logging, the one-line redacted reason for bad input,
the exit statuses, and the redacted JSON a job prints when it is done."""

from __future__ import annotations

import json
import sys
from typing import Any, Callable, TypeVar

from lxn.errors import PromotionConflict, TrackingError
from lxn.logs import configure_logging
from lxn.redact import redact, redact_text

__all__ = ["BAD_INPUT", "EXIT_BAD_INPUT", "EXIT_CONFLICT", "configure_logging", "fail", "print_json", "run_job"]

EXIT_BAD_INPUT = 2
EXIT_CONFLICT = 4   # another promotion moved the aliases meanwhile: nothing changed, run again

BAD_INPUT: tuple[type[BaseException], ...] = (ValueError, OSError, TrackingError)  # UnsafeModelError is a ValueError

T = TypeVar("T")


def fail(exc: BaseException) -> int:
    """Print `error: <reason>` (redacted) on stderr and return the bad-input exit status."""
    print(f"error: {redact_text(str(exc))}", file=sys.stderr)
    return EXIT_BAD_INPUT


def print_json(result: Any) -> int:
    """A job's result on stdout as indented JSON, redacted; exit status 0."""
    print(json.dumps(redact(result), indent=2))
    return 0


def run_job(work: Callable[[], T], show: Callable[[T], int | None] = print_json) -> int:
    """Every job's `main`: logging on, then `work()` (parse the flags, check what the job needs
    can be reached, run it). Bad input and unreachable services end it with one redacted line and
    EXIT_BAD_INPUT, a promotion that lost the registry lock with EXIT_CONFLICT; otherwise
    `show(result)` prints what it did and returns the exit status (None: 0)."""
    configure_logging()
    try:
        result = work()
    except PromotionConflict as exc:
        print(f"conflict: {redact_text(str(exc))}", file=sys.stderr)
        return EXIT_CONFLICT
    except BAD_INPUT as exc:
        return fail(exc)
    return show(result) or 0
