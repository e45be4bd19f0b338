"""The one message shape between the laptop and the device agent, over an SSH channel's stdin/stdout:
a marker, a JSON header on one line, then the bytes of the files the header lists, in order.

The marker lets the reader skip whatever a login shell printed first (a motd, a profile's echo). Both
sides use this module (it ships in the payload): the standard library only.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path, PurePosixPath
from typing import IO, Any, Iterable

MARKER = b"\x1eEDGEKIT "
MAX_HEADER = 16 * 1024 * 1024
CHUNK = 1 << 20


class FrameError(Exception):
    """The other side sent something that is not a frame (or it stopped in the middle of one)."""


def safe_relative(name: str) -> PurePosixPath:
    """A file name from the other side, as a relative path that stays inside the destination."""
    path = PurePosixPath(name)
    if not name or path.is_absolute() or any(part in ("", ".", "..") for part in path.parts) or "\\" in name:
        raise FrameError(f"unsafe file name in frame: {name!r}")
    return path


def write_frame(out: IO[bytes], header: dict[str, Any], files: Iterable[tuple[str, Path]] = ()) -> None:
    """Write the header (with a "files" list: name and size of each) and then each file's bytes."""
    files = [(name, Path(path)) for name, path in files]
    header = {**header, "files": [{"name": name, "size": path.stat().st_size} for name, path in files]}
    out.write(MARKER + json.dumps(header, separators=(",", ":")).encode("utf-8") + b"\n")
    for _, path in files:
        with open(path, "rb") as handle:
            shutil.copyfileobj(handle, out, CHUNK)
    out.flush()


def read_header(stream: IO[bytes]) -> dict[str, Any]:
    """Skip lines up to the marker and return the header it starts."""
    while True:
        line = stream.readline(MAX_HEADER)
        if not line:
            raise FrameError("the other side closed the connection before answering")
        at = line.find(MARKER)
        if at >= 0:
            break
    if not line.endswith(b"\n"):
        raise FrameError("frame header too long or cut off")
    try:
        header = json.loads(line[at + len(MARKER) :].decode("utf-8"))
    except ValueError as exc:
        raise FrameError(f"frame header is not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise FrameError("frame header is not a JSON object")
    return header


def read_files(stream: IO[bytes], header: dict[str, Any], dest: Path) -> list[Path]:
    """Receive the files a header announced into `dest` (their names relative to it)."""
    written = []
    for entry in header.get("files", ()):
        relative = safe_relative(str(entry["name"]))
        size = int(entry["size"])
        path = dest.joinpath(*relative.parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:
            copy_exactly(stream, handle, size)
        written.append(path)
    return written


def copy_exactly(stream: IO[bytes], out: IO[bytes], size: int, digest: Any = None) -> None:
    """Copy exactly `size` bytes (feeding `digest`, a hashlib object, when given)."""
    left = size
    while left:
        chunk = stream.read(min(CHUNK, left))
        if not chunk:
            raise FrameError(f"the connection ended {left} bytes before the end of a file")
        out.write(chunk)
        if digest is not None:
            digest.update(chunk)
        left -= len(chunk)


def binary_stdio() -> tuple[IO[bytes], IO[bytes]]:
    """The process's stdin and a private copy of its stdout for frames; fd 1 then points at stderr, so
    nothing a library or a native runtime prints can break a frame."""
    import sys

    frames = os.fdopen(os.dup(1), "wb")
    sys.stdout.flush()
    os.dup2(2, 1)
    return sys.stdin.buffer, frames
