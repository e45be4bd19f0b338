"""Files on disk that are never seen half-written: hashing, and the one family of atomic writes.

Every file or folder edgekit writes (bundles, archives, keys, signatures, CSVs, plots, saved outputs)
goes through here: it is made under a temporary name next to its final place and renamed into place
only once complete, so a failure, a full disk or Ctrl-C leaves nothing under the final name.
"""

from __future__ import annotations

import _thread
import contextlib
import errno
import hashlib
import os
import signal
from pathlib import Path
from typing import Iterator

from edgekit.errors import InputError

# tempfile and shutil are imported where files are written: a device's `run` reads bundles and
# should not pay their import (with bz2, lzma and random behind them) on every start.

NO_SPACE_ERRNOS = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG)
PARTIAL_SUFFIX = ".partial"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_no_space(exc: BaseException) -> bool:
    """True for the errors a full disk or quota gives."""
    return isinstance(exc, OSError) and exc.errno in NO_SPACE_ERRNOS


_UMASK_LOCK = _thread.allocate_lock()  # not threading: a device's `run` never imports it


def current_umask() -> int:
    """The process umask. Reading it means setting it: for that instant it is the strictest one, so a
    file another thread creates meanwhile is never more readable than the user asked."""
    with _UMASK_LOCK:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM back while a temporary file or folder is created and its name kept:
    a signal landing between the two would leave it behind. Held signals arrive on leaving."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextlib.contextmanager
def temporary_folder(prefix: str) -> Iterator[Path]:
    """A private temporary folder, removed afterwards whatever happens (Ctrl-C included)."""
    import shutil
    import tempfile

    folder: Path | None = None
    try:
        with signals_held():
            folder = Path(tempfile.mkdtemp(prefix=prefix))
        yield folder
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike[str], mode: int | None = None) -> Iterator[Path]:
    """Yield a temporary file path next to `final`; on success it is renamed to `final`, on any
    failure (or Ctrl-C) removed. The temporary file is created 0600; `mode` (default: what the
    umask allows) is applied before the rename, so a private file is never readable by others."""
    import tempfile

    final = Path(final)
    if not final.parent.is_dir():
        raise InputError(f"{final}: folder {final.parent} does not exist")
    tmp: Path | None = None
    try:
        with signals_held():  # a Ctrl-C held back here arrives inside this try, with `tmp` known
            try:
                fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=PARTIAL_SUFFIX, dir=final.parent)
            except OSError as exc:
                raise InputError(f"{final}: cannot write ({exc.strerror or exc})") from None
            tmp = Path(name)
            os.close(fd)
        yield tmp
        os.chmod(tmp, (0o666 & ~current_umask()) if mode is None else mode)
        os.replace(tmp, final)
    except BaseException as exc:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        if is_no_space(exc):
            raise InputError(f"{final}: {exc.strerror or 'no space left'}; nothing was written there") from None
        raise


def write_bytes_atomically(final: str | os.PathLike[str], content: bytes, mode: int | None = None) -> Path:
    """Write `content` to `final` through `atomic_path` (fsynced before the rename)."""
    with atomic_path(final, mode) as tmp, open(tmp, "wb") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    return Path(final)


def replace_path(new: Path, final: Path) -> None:
    """Rename `new` to `final`, replacing an existing file or folder there."""
    import shutil

    if final.is_dir() and not final.is_symlink():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
        os.replace(new, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(new, final)


@contextlib.contextmanager
def staged_folder(final: Path, force: bool) -> Iterator[Path]:
    """Yield a temporary folder next to `final`; on success rename it into place, on any failure
    (or Ctrl-C) remove it, so no half-written bundle is ever visible under the final name."""
    import shutil
    import tempfile

    if final.exists() and not force:
        raise InputError(f"{final}: already exists (use --force to overwrite)")
    final.parent.mkdir(parents=True, exist_ok=True)
    staging: Path | None = None
    try:
        with signals_held():  # a Ctrl-C held back here arrives inside this try, with `staging` known
            try:
                staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=PARTIAL_SUFFIX, dir=final.parent))
            except OSError as exc:
                raise InputError(
                    f"{final}: cannot create the bundle folder ({exc.strerror or exc}); nothing was written there"
                ) from None
        yield staging
        # mkdtemp made it private (0700); a bundle is meant to be read by whoever runs it.
        os.chmod(staging, 0o777 & ~current_umask())
        replace_path(staging, final)
    except BaseException as exc:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        if is_no_space(exc):
            raise InputError(
                f"{final}: {exc.strerror or 'no space left'} while writing the bundle; nothing was written there"
            ) from None
        raise
