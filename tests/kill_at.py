"""Run a script or code in this process and SIGKILL it at the N-th call of any of some functions.

    python tests/kill_at.py N FUNC [FUNC ...] -- SCRIPT [ARGS ...]
    python tests/kill_at.py N FUNC [FUNC ...] -- -c CODE

FUNC is `module:attr` (e.g. `lxn.storage:write_bytes`), `module:Class.method`, or `arrow:move`
(pyarrow filesystems' move, which cannot be patched on the class). The kill comes on entry to
the call, before it does anything; `os:replace` lands between a local write's temporary file and
its rename. With N = 0 nothing is killed and the number of calls is printed (`CALLS <n>`) at exit,
so a test can sweep every kill point. A SIGKILL is a real kill: no cleanup, no atexit, no flush.
"""

from __future__ import annotations

import atexit
import importlib
import os
import runpy
import signal
import sys
import threading

_count = 0
_lock = threading.Lock()


def _tick(target: int) -> None:
    global _count
    with _lock:
        _count += 1
        if target and _count == target:
            os.kill(os.getpid(), signal.SIGKILL)


def _wrap(function, target: int):
    def wrapper(*args, **kwargs):
        _tick(target)
        return function(*args, **kwargs)

    wrapper.__wrapped__ = function
    return wrapper


class _CountingFileSystem:
    """A pyarrow filesystem whose `move` ticks; everything else goes to the real one."""

    def __init__(self, filesystem, target: int) -> None:
        self._filesystem, self._target = filesystem, target

    def move(self, *args, **kwargs):
        _tick(self._target)
        return self._filesystem.move(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._filesystem, name)


def _patch(spec: str, target: int) -> None:
    if spec == "arrow:move":
        storage = importlib.import_module("lxn.storage")
        original = storage.arrow_filesystem

        def arrow_filesystem(uri):
            filesystem, path = original(uri)
            return _CountingFileSystem(filesystem, target), path

        storage.arrow_filesystem = arrow_filesystem
        return
    module_name, _, path = spec.partition(":")
    owner = importlib.import_module(module_name)
    *parents, attr = path.split(".")
    for name in parents:  # module:Class.method
        owner = getattr(owner, name)
    setattr(owner, attr, _wrap(getattr(owner, attr), target))


def main(argv: list[str]) -> None:
    split = argv.index("--")
    target, specs, rest = int(argv[0]), argv[1:split], argv[split + 1 :]
    for spec in specs:
        _patch(spec, target)
    if target == 0:
        atexit.register(lambda: print(f"CALLS {_count}", flush=True))
    if rest[0] == "-c":
        sys.argv = ["-c", *rest[2:]]
        exec(compile(rest[1], "<kill_at>", "exec"), {"__name__": "__main__"})
        return
    sys.argv = rest
    runpy.run_path(rest[0], run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
