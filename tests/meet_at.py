"""Run a script in this process, holding it at the first call of a function until N processes
have reached that call: a barrier across processes, through files in DIR.

    python tests/meet_at.py DIR N module:attr -- SCRIPT [ARGS ...]

Two promotions that both reach `lxn.promote:_apply` before either applies are the race the
registry lock exists for; without the barrier they would rarely overlap.
"""

from __future__ import annotations

import importlib
import os
import runpy
import sys
import time
from pathlib import Path


def _hold(function, directory: Path, count: int, timeout: float = 300.0):
    def wrapper(*args, **kwargs):
        (directory / str(os.getpid())).touch()
        deadline = time.monotonic() + timeout
        while len(list(directory.iterdir())) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(list(directory.iterdir()))} of {count} processes reached the barrier")
            time.sleep(0.05)
        return function(*args, **kwargs)

    return wrapper


def main(argv: list[str]) -> None:
    split = argv.index("--")
    directory, count, (spec,), rest = Path(argv[0]), int(argv[1]), argv[2:split], argv[split + 1:]
    directory.mkdir(parents=True, exist_ok=True)
    module_name, _, attr = spec.partition(":")
    module = importlib.import_module(module_name)
    setattr(module, attr, _hold(getattr(module, attr), directory, count))
    sys.argv = rest
    runpy.run_path(rest[0], run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
