"""Advisory file locks that die with their holder: ``fcntl.flock`` on a small file.

The kernel drops a flock when the process holding it exits, however it exits (SIGKILL, a lost
node's fencing), so a lock is never stale: a file nobody holds a lock on is free whatever it
says. The holder writes ``host <name> pid <n>`` into the file, for the one line a second process
gets. The file is removed when its lock is released; a process that locked a file which was
removed meanwhile notices (the path no longer names the inode it locked) and tries again.
"""

from __future__ import annotations

import fcntl
import os
import platform
import time
from pathlib import Path
from types import TracebackType

from fer_bench.errors import FerBenchError


class LockHeld(FerBenchError):
    """Another live process holds the lock; ``holder`` says which (``host X pid N``)."""

    def __init__(self, message: str, holder: str) -> None:
        super().__init__(message)
        self.holder = holder


def this_process() -> str:
    return f"host {platform.node()} pid {os.getpid()}"


class FileLock:
    """An exclusive lock on ``path``; ``wait`` blocks until it is free, else a held lock raises
    :class:`LockHeld` with ``message`` (its ``{holder}`` filled in, e.g. ``host X pid N``)."""

    def __init__(self, path: str | os.PathLike[str], message: str, wait: bool = False) -> None:
        self.path = Path(path)
        self.message = message
        self.wait = wait
        self._fd: int | None = None

    def acquire(self) -> FileLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                if not _lock(fd, fcntl.LOCK_EX, self.wait):
                    holder = _read(fd) or "another process"
                    raise LockHeld(self.message.replace("{holder}", holder), holder)
                if _same_file(fd, self.path):
                    break
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)  # locked a file its holder removed on release: lock the new one
        os.ftruncate(fd, 0)
        os.write(fd, f"{this_process()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if _same_file(fd, self.path):
                self.path.unlink(missing_ok=True)
        finally:
            os.close(fd)  # closing drops the lock

    def __enter__(self) -> FileLock:
        return self.acquire()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def holder(path: str | os.PathLike[str]) -> str | None:
    """Who holds the lock on ``path`` (``host X pid N``), or ``None`` when nobody does."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        if _lock(fd, fcntl.LOCK_SH, wait=False, tries=1):
            return None
        return _read(fd) or "another process"
    finally:
        os.close(fd)


def _lock(fd: int, kind: int, wait: bool, tries: int = 5) -> bool:
    """Take the lock; without ``wait``, a few quick tries ride out a momentary probe by
    :func:`holder` (``fer-bench status``) before the lock counts as held."""
    try:
        if wait:
            fcntl.flock(fd, kind)
            return True
        for attempt in range(tries):
            try:
                fcntl.flock(fd, kind | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if attempt + 1 < tries:
                    time.sleep(0.05)
        return False
    except BlockingIOError:
        raise
    except OSError as exc:  # e.g. a Lustre mount without -o flock
        raise FerBenchError(
            f"cannot lock files under {_where(fd)}: {exc.strerror or exc} (the file system must "
            "support flock; choose another --output-dir or cache directory)"
        ) from None


def _where(fd: int) -> str:
    try:
        return os.path.dirname(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        return "this directory"


def _same_file(fd: int, path: Path) -> bool:
    try:
        here, there = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _read(fd: int) -> str:
    try:
        return os.pread(fd, 200, 0).decode(errors="replace").strip()
    except OSError:
        return ""
