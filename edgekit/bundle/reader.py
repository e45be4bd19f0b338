"""Reading a bundle from disk: its folder or `.tar.gz`, the signature first (when a trusted key is given),
then the manifest it covers, then every file the manifest lists. Bundles are untrusted input: every
failure is an EdgekitError naming the file.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from edgekit.bundle.files import sha256_file, temporary_folder
from edgekit.bundle.manifest import (
    ARCHIVE_SUFFIX,
    MANIFEST_NAME,
    MAX_MANIFEST_BYTES,
    MODEL_NAME,
    SIGNATURE_NAME,
    Manifest,
    parse_manifest,
)
from edgekit.errors import InputError, IntegrityError


@dataclass(frozen=True)
class Bundle:
    """A bundle folder on disk whose manifest has been read and validated.

    `origin` is what the user named (the folder, or the `.tar.gz` it was unpacked from)."""

    path: Path
    manifest: Manifest
    origin: str = ""

    @property
    def model_path(self) -> Path:
        return self.path / MODEL_NAME

    def labels(self) -> list[str] | None:
        if not self.manifest.labels:
            return None
        path = self.path / self.manifest.labels
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: cannot read labels ({exc})") from None
        return [line.strip() for line in text.splitlines() if line.strip()]


def read_manifest_bytes(folder: Path, shown_as: str | None = None) -> bytes:
    """The manifest file's bytes, exactly as signed (and as they will be parsed)."""
    shown = shown_as or str(folder)
    path = folder / MANIFEST_NAME
    if not folder.is_dir():
        raise InputError(f"{shown}: not a bundle folder")
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise IntegrityError(f"{shown}/{MANIFEST_NAME}: not a regular file")
    if not path.is_file():
        raise InputError(f"{shown}: not a bundle (no {MANIFEST_NAME})")
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise InputError(f"{shown}/{MANIFEST_NAME}: manifest is larger than {MAX_MANIFEST_BYTES} bytes, refused")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"{shown}/{MANIFEST_NAME}: cannot read ({exc.strerror or exc})") from None


def read_manifest(folder: Path, shown_as: str | None = None) -> Manifest:
    """The validated manifest of a bundle folder, without checking its files."""
    shown = shown_as or str(folder)
    return parse_manifest(read_manifest_bytes(folder, shown_as), f"{shown}/{MANIFEST_NAME}")


def verify_files(
    folder: Path, manifest: Manifest, allowed_extra: tuple[str, ...] = (), shown_as: str | None = None
) -> None:
    """Check that the folder holds exactly the manifest's files with the right SHA-256 (exit 4 if not).

    The manifest and the signature are the only files it may hold besides those it lists; links are
    refused, since they could point anywhere."""
    shown = shown_as or str(folder)
    entries = sorted(folder.iterdir())
    for path in entries:
        if path.is_symlink():
            raise IntegrityError(f"{shown}/{path.name}: is a symbolic link; bundles hold regular files only")
    for name, entry in sorted(manifest.files.items()):
        path = folder / name
        if not path.is_file():
            raise IntegrityError(f"{shown}/{name}: listed in the manifest but missing")
        size = path.stat().st_size
        if size != entry.bytes:
            raise IntegrityError(
                f"{shown}/{name}: does not match the manifest ({size} bytes, expected {entry.bytes}: "
                "file changed, truncated or corrupt)"
            )
        if sha256_file(path) != entry.sha256:
            raise IntegrityError(
                f"{shown}/{name}: does not match the manifest (SHA-256 differs: file changed or corrupt)"
            )
    allowed = {MANIFEST_NAME, SIGNATURE_NAME, *allowed_extra, *manifest.files}
    extra = [p.name for p in entries if p.name not in allowed]
    if extra:
        raise IntegrityError(f"{shown}/{extra[0]}: not listed in the manifest")


def load_bundle(
    folder: Path, verify: bool = True, trusted_key: str | os.PathLike[str] | None = None, shown_as: str | None = None
) -> Bundle:
    """Read a bundle folder: signature first (when a trusted key is given), then the manifest it
    covers, then every file the manifest lists."""
    shown = shown_as or str(folder)
    content = read_manifest_bytes(folder, shown)
    if trusted_key is not None:
        from edgekit.bundle.signature import verify_signature  # only with a key: most runs check no signature

        verify_signature(folder, content, trusted_key, shown_as=shown)
    manifest = parse_manifest(content, f"{shown}/{MANIFEST_NAME}")
    if verify:
        verify_files(folder, manifest, shown_as=shown)
    return Bundle(folder, manifest, origin=shown)


@contextlib.contextmanager
def open_bundle(
    path: str | os.PathLike[str], verify: bool = True, trusted_key: str | os.PathLike[str] | None = None
) -> Iterator[Bundle]:
    """Open a bundle folder or `.tar.gz`, verify it, and yield it (archives are unpacked to a
    temporary folder that is removed afterwards). With `trusted_key` (a `.pub` file) the bundle must
    carry a valid signature by that key."""
    source = Path(path)
    if not source.exists():
        raise InputError(f"{source}: no such file or folder")
    if source.is_dir():
        yield load_bundle(source, verify, trusted_key)
        return
    if source.suffix.lower() == ".tflite":
        raise InputError(f"{source}: a bare .tflite model, not a bundle (give a bundle folder or its {ARCHIVE_SUFFIX})")
    if not source.is_file():
        raise InputError(f"{source}: not a bundle folder or archive")
    # Imported here: tarfile and gzip cost a device's `run` of a bundle folder start-up time for nothing.
    from edgekit.bundle.archive import unpack_archive

    with temporary_folder("edgekit-") as tmp:
        folder = unpack_archive(source, tmp)
        yield load_bundle(folder, verify, trusted_key, shown_as=f"{source}:{folder.name}")
