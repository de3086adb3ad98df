"""One writer per report root: the lease a scan holds on `OUT/_lease.json` while it writes there.

    with Lease(layout, scan_id, wait_s=0):   # ReportRootBusy if another scan holds it
        recover(layout); ...; lease.check(); finish_commit(layout, scan_id)

* Local disks: an exclusive `flock` on the lease file. The kernel drops it when the holder's
  process dies, so a killed scan never blocks the next one.
* S3: the lease is an object created with `If-None-Match: *` (only one writer can create it),
  renewed every `ttl_s / 4` with `If-Match` on its ETag, and deleted with `If-Match` when the scan
  ends. A killed scan stops renewing: once its `expires_at` has passed, the next scan takes the
  lease over, again with `If-Match`, so of two scans that find it expired one wins. Expiry is
  judged by the clock of the scan that finds the lease (clocks of a cluster's nodes agree to well
  under the TTL). A holder on the same machine (same host name and process namespace) whose
  process is gone is taken over at once: a re-run after a crash need not wait out the TTL.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import threading
import time
import uuid
from typing import Any, Callable

from lxn import storage
from lxn.scan.layout import Layout

__all__ = ["DEFAULT_TTL_S", "Lease", "ReportRootBusy", "LeaseLost"]

log = logging.getLogger(__name__)

DEFAULT_TTL_S = 120.0  # how long a scan killed on another machine keeps the next one out (S3)


def _machine() -> str:
    """This host and process namespace: where a pid means the same process."""
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        namespace = 0
    return f"{socket.gethostname()}/{namespace}"


def _started(pid: int) -> float | None:
    """When process `pid` started (None: no such process), so a reused pid is not taken for it."""
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return None


class ReportRootBusy(OSError):
    """Another scan holds the lease of this report root (the message names it and says what to do)."""


class LeaseLost(RuntimeError):
    """This scan's lease was taken over (it was not renewed in time): it must not publish."""


class Lease:
    """The lease of `layout`'s report root for scan `scan_id` (see the module docstring)."""

    def __init__(self, layout: Layout, scan_id: str, *, wait_s: float = 0.0, ttl_s: float = DEFAULT_TTL_S,
                 poll_s: float = 2.0, clock: Callable[[], float] = time.time) -> None:
        self.layout, self.scan_id = layout, scan_id
        self.uri = layout.lease()
        self.wait_s, self.ttl_s, self.poll_s, self.clock = wait_s, ttl_s, poll_s, clock
        self.token = uuid.uuid4().hex
        self._s3 = storage.is_s3(self.uri)
        self._fd: int | None = None
        self._etag: str | None = None
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    # ------------------------------------------------------------------ the holder's record

    def _record(self) -> bytes:
        now = self.clock()
        return json.dumps({"scan_id": self.scan_id, "host": socket.gethostname(), "machine": _machine(),
                           "pid": os.getpid(), "started": _started(os.getpid()), "token": self.token,
                           "renewed_at": now, "expires_at": now + self.ttl_s}).encode()

    @staticmethod
    def _holder_gone(holder: dict[str, Any]) -> bool:
        """True only when the holder provably died: it ran on this machine and its process is gone."""
        if holder.get("machine") != _machine() or not isinstance(holder.get("pid"), int):
            return False
        return _started(holder["pid"]) != holder.get("started")

    @staticmethod
    def _parse(data: bytes) -> dict[str, Any]:
        try:
            record = json.loads(data)
            float(record["expires_at"])
            return record if isinstance(record, dict) else {}
        except (ValueError, TypeError, KeyError):
            return {}  # damaged: treated as expired

    def _busy(self, holder: dict[str, Any]) -> ReportRootBusy:
        who = f"scan {holder.get('scan_id', '?')} (host {holder.get('host', '?')}, pid {holder.get('pid', '?')})"
        until = ""
        if self._s3 and holder.get("expires_at"):
            until = time.strftime(" until %Y-%m-%dT%H:%M:%SZ at the latest", time.gmtime(float(holder["expires_at"])))
        return ReportRootBusy(
            f"{who} is writing to {self.layout.out} and holds its lease{until}: one scan writes to a report "
            f"root at a time. Re-run when it is done (a re-run of the same scan then finds it committed), or give "
            f"--lease-wait SECONDS to wait for it")

    # ------------------------------------------------------------------ acquire / release

    def acquire(self) -> "Lease":
        deadline = time.monotonic() + self.wait_s
        while True:
            holder = self._try_s3() if self._s3 else self._try_local()
            if holder is None:
                break
            if time.monotonic() >= deadline:
                raise self._busy(holder)
            log.info("waiting for the lease of %s (held by scan %s)", self.layout.out, holder.get("scan_id", "?"))
            time.sleep(min(self.poll_s, max(0.0, deadline - time.monotonic())))
        if self._s3:
            self._renewer = threading.Thread(target=self._renew_loop, name="lxn-lease", daemon=True)
            self._renewer.start()
        return self

    def _try_local(self) -> dict[str, Any] | None:
        """Take the flock, or return the holder's record. The file is unlinked on release, so
        after locking, the locked file must still be the one at the path."""
        os.makedirs(self.layout.out, exist_ok=True)
        fd = os.open(self.uri, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._parse(os.pread(fd, 1 << 16, 0))
            os.close(fd)
            return holder
        try:
            same = os.fstat(fd).st_ino == os.stat(self.uri).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # released and unlinked while we waited for the lock: try the new file
            os.close(fd)
            return self._try_local()
        record = self._record()
        os.ftruncate(fd, 0)
        os.pwrite(fd, record, 0)
        self._fd = fd
        return None

    def _try_s3(self) -> dict[str, Any] | None:
        etag = storage.put_if_absent(self.uri, self._record())
        if etag is not None:
            self._etag = etag
            return None
        try:
            data, current = storage.read_versioned(self.uri)
        except FileNotFoundError:  # released between our put and our read: try again at once
            return self._try_s3()
        holder = self._parse(data)
        if holder.get("token") == self.token:  # our own put, applied, whose answer was lost and retried
            self._etag = current
            return None
        if holder and float(holder["expires_at"]) > self.clock() and not self._holder_gone(holder):
            return holder
        etag = storage.put_if_match(self.uri, self._record(), current)
        if etag is None:  # another scan took it over first
            return holder or {"scan_id": "?"}
        log.warning("took over the lease of %s from scan %s (host %s, pid %s), which was never released: its "
                    "process is gone or it expired (a killed job)", self.layout.out, holder.get("scan_id", "?"),
                    holder.get("host", "?"), holder.get("pid", "?"))
        self._etag = etag
        return None

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.ttl_s / 4):
            try:
                etag = storage.put_if_match(self.uri, self._record(), self._etag)
            except OSError as exc:  # a blip: the next renewal may get through before the lease expires
                log.warning("could not renew the lease of %s: %s", self.layout.out, exc)
                continue
            if etag is None:
                etag = self._still_ours()
            if etag is None:
                self._lost.set()
                log.error("the lease of %s was taken over by another scan: this scan will not publish", self.layout.out)
                return
            self._etag = etag

    def _still_ours(self) -> str | None:
        """The lease's ETag if it still holds our token (a renewal applied whose answer was lost)."""
        try:
            data, etag = storage.read_versioned(self.uri)
        except FileNotFoundError:
            return None
        return etag if self._parse(data).get("token") == self.token else None

    def check(self) -> None:
        """Raise LeaseLost if the lease was taken over: call before every publishing step."""
        if self._lost.is_set():
            raise LeaseLost(f"scan {self.scan_id} lost the lease of {self.layout.out} (it was not renewed for "
                            f"{self.ttl_s:.0f} s); its staged results are kept: re-run the scan to publish them")

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=30)
        if self._fd is not None:
            try:
                os.unlink(self.uri)  # while still locked: a waiter that locked the old file retries
            except FileNotFoundError:
                pass
            os.close(self._fd)
            self._fd = None
        elif self._etag is not None and not self._lost.is_set():
            try:
                storage.delete_if_match(self.uri, self._etag)
            except OSError as exc:  # it expires on its own
                log.warning("could not release the lease of %s (it expires in %.0f s): %s", self.layout.out,
                            self.ttl_s, exc)
            self._etag = None

    def __enter__(self) -> "Lease":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
