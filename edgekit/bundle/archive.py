"""Bundle archives: `pack_archive` writes a bundle folder as a `.tar.gz`, `unpack_archive` unpacks one
without trusting it (member by member, with caps on members, bytes and header sizes).
"""

from __future__ import annotations

import gzip
import os
import tarfile
import zlib
from pathlib import Path
from typing import Any

from edgekit.bundle.files import atomic_path
from edgekit.bundle.json_fields import plain_file_name, short_repr
from edgekit.bundle.manifest import ARCHIVE_SUFFIX, MAX_BUNDLE_FILES
from edgekit.errors import InputError

MAX_ARCHIVE_BYTES = 1 << 30
MAX_ARCHIVE_MEMBERS = MAX_BUNDLE_FILES
# tar headers (pax records, GNU long names) are read whole into memory: no single read may exceed this.
MAX_ARCHIVE_READ = 1 << 20


def pack_archive(folder: Path, archive: Path, force: bool = False) -> Path:
    """Write `folder` as a `.tar.gz` with one top-level folder, atomically."""
    if archive.exists() and not force:
        raise InputError(f"{archive}: already exists (use --force to overwrite)")
    top = archive.name[: -len(ARCHIVE_SUFFIX)] if archive.name.endswith(ARCHIVE_SUFFIX) else archive.stem
    with atomic_path(archive, mode=0o644) as tmp, tarfile.open(tmp, "w:gz") as tar:
        for path in sorted(folder.iterdir()):
            info = tar.gettarinfo(str(path), arcname=f"{top}/{path.name}")
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mode = 0o644
            info.mtime = 0
            with open(path, "rb") as handle:
                tar.addfile(info, handle)
    return archive


def _safe_member_name(name: str) -> bool:
    """A relative archive path made of plain names: no absolute paths, `..`, `.` or empty parts."""
    return bool(name) and all(plain_file_name(part) for part in name.split("/"))


# Everything tarfile, gzip and zlib raise on damaged or hostile input.
_ARCHIVE_READ_ERRORS = (tarfile.TarError, EOFError, zlib.error, OSError, ValueError, OverflowError)


class _ArchiveTooLarge(Exception):
    pass


class _CappedStream:
    """The decompressed archive stream, refusing to go past `limit` bytes or to hand out more than
    MAX_ARCHIVE_READ bytes in one read: tarfile reads pax and long-name headers whole into memory,
    so without this a small archive could make it decompress gigabytes."""

    def __init__(self, stream: Any, limit: int):
        self._stream = stream
        self._limit = limit

    def read(self, size: int = -1) -> bytes:
        position = self._stream.tell()
        if size is None or size < 0:
            size = self._limit - position + 1
        if size > MAX_ARCHIVE_READ:
            raise _ArchiveTooLarge(f"a header or block of {size} bytes, over {MAX_ARCHIVE_READ}")
        if position + size > self._limit:
            raise _ArchiveTooLarge(f"unpacks to more than {MAX_ARCHIVE_BYTES} bytes")
        return self._stream.read(size)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_SET and offset > self._limit:
            raise _ArchiveTooLarge(f"unpacks to more than {MAX_ARCHIVE_BYTES} bytes")
        return self._stream.seek(offset, whence)

    def tell(self) -> int:
        return self._stream.tell()


def unpack_archive(archive: Path, dest: Path) -> Path:
    """Unpack a bundle archive without trusting it; return the bundle folder inside `dest`.

    Only regular files in exactly one top-level folder are accepted: no absolute paths, no `..`,
    no links or devices, no duplicates, and caps on member count, total size and header size.
    Refusals name the member.
    """
    limit = MAX_ARCHIVE_BYTES + MAX_ARCHIVE_MEMBERS * 3 * tarfile.BLOCKSIZE + MAX_ARCHIVE_READ
    try:
        with (
            gzip.open(archive, "rb") as compressed,
            tarfile.open(
                fileobj=_CappedStream(compressed, limit),  # type: ignore[arg-type]
                mode="r:",
            ) as tar,
        ):
            members = _checked_members(tar, archive)
            return _extract(tar, members, archive, dest)
    except _ArchiveTooLarge as exc:
        raise InputError(f"{archive}: {exc}, refused") from None
    except _ARCHIVE_READ_ERRORS as exc:
        raise InputError(f"{archive}: not a valid bundle archive ({_one_line(exc)})") from None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _member_kind(member: tarfile.TarInfo) -> str:
    kinds = {
        tarfile.SYMTYPE: "a symbolic link",
        tarfile.LNKTYPE: "a hard link",
        tarfile.CHRTYPE: "a character device",
        tarfile.BLKTYPE: "a block device",
        tarfile.FIFOTYPE: "a FIFO",
    }
    if member.issparse():
        return "a sparse file"
    return kinds.get(member.type, f"of tar type {member.type!r}")


def _checked_members(tar: tarfile.TarFile, archive: Path) -> list[tarfile.TarInfo]:
    total = 0
    members: list[tarfile.TarInfo] = []
    seen: set[str] = set()
    tops: set[str] = set()
    for member in tar:
        if len(members) >= MAX_ARCHIVE_MEMBERS:
            raise InputError(f"{archive}: more than {MAX_ARCHIVE_MEMBERS} members, refused")
        shown = short_repr(member.name)
        name = member.name[:-1] if member.isdir() and member.name.endswith("/") else member.name
        if not _safe_member_name(name):
            raise InputError(f"{archive}: member {shown} has an unsafe path, refused")
        parts = name.split("/")
        if member.isdir():
            if len(parts) != 1:
                raise InputError(f"{archive}: member {shown} is a nested folder, refused")
        elif member.isfile() and not member.issparse():
            if len(parts) != 2:
                raise InputError(f"{archive}: member {shown} must be a file inside the top-level folder, refused")
        else:
            raise InputError(f"{archive}: member {shown} is {_member_kind(member)}, not a regular file, refused")
        if name in seen:
            raise InputError(f"{archive}: member {shown} appears twice, refused")
        total += member.size
        if total > MAX_ARCHIVE_BYTES:
            raise InputError(f"{archive}: member {shown} takes it past {MAX_ARCHIVE_BYTES} unpacked bytes, refused")
        seen.add(name)
        tops.add(parts[0])
        members.append(member)
    if len(tops) != 1:
        raise InputError(f"{archive}: a bundle archive holds exactly one top-level folder (found {len(tops)})")
    return members


def _extract(tar: tarfile.TarFile, members: list[tarfile.TarInfo], archive: Path, dest: Path) -> Path:
    root = dest / members[0].name.split("/")[0]
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{archive}: cannot unpack into {dest} ({exc.strerror or exc})") from None
    for member in members:
        if member.isdir():
            continue
        shown = short_repr(member.name)
        source = tar.extractfile(member)
        if source is None:
            raise InputError(f"{archive}: member {shown} cannot be read")
        with source:
            try:
                out = open(dest / member.name, "xb")  # noqa: SIM115 - closed by the `with out` below
            except OSError as exc:
                raise InputError(f"{archive}: cannot unpack member {shown} ({exc.strerror or exc})") from None
            with out:
                for block in iter(lambda: source.read(MAX_ARCHIVE_READ), b""):  # noqa: B023 - used at once
                    try:
                        out.write(block)
                    except OSError as exc:
                        raise InputError(
                            f"{archive}: cannot unpack member {shown} into {dest} ({exc.strerror or exc})"
                        ) from None
    return root
