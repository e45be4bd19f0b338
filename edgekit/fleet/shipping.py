"""What a fleet step sends to each device: edgekit's device half (the payload zip), bundles as archives
named by their SHA-256 (so a device that has one already is not sent it again), and per-run files."""

from __future__ import annotations

import gzip
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.bundle.files import atomic_path, sha256_file
from edgekit.bundle.manifest import ARCHIVE_SUFFIX
from edgekit.errors import InputError


@dataclass(frozen=True)
class Shipment:
    """A file for the device: `name` is where it lands, under the device's cache (`cached`) or the
    run's scratch folder; `device_path` is how a command names it there."""

    source: Path
    name: str
    cached: bool

    @property
    def device_path(self) -> str:
        return f"{{cache}}/{self.name}" if self.cached else f"{{scratch}}/{self.name}"

    def to_step(self) -> dict[str, Any]:
        return {"src": str(self.source), "name": self.name}


def payload() -> Shipment:
    """edgekit's device half, built (once per version and content) by the one-device code."""
    from edgekit.remote.payload import payload_path

    path = payload_path()
    return Shipment(path, path.name, cached=True)


def bundle_archive(bundle: Path, private: Path) -> Shipment:
    """A bundle as a `.tar.gz` named by its SHA-256: an archive as it is, a folder packed the same way
    every time (no timestamps), so the same bundle is recognised on the device however it was given."""
    bundle = Path(bundle)
    if not bundle.exists():
        raise InputError(f"{bundle}: no such file or folder")
    if bundle.is_dir():
        archive = private / f"{bundle.name}{ARCHIVE_SUFFIX}"
        pack_reproducibly(bundle, archive)
    elif bundle.name.endswith(ARCHIVE_SUFFIX):
        archive = bundle
    else:
        raise InputError(f"{bundle}: not a bundle folder or {ARCHIVE_SUFFIX} archive")
    return Shipment(archive, f"bundle-{sha256_file(archive)}{ARCHIVE_SUFFIX}", cached=True)


def scratch_files(paths: list[Path], prefix: str) -> list[Shipment]:
    """Per-run files (inputs, a key), each under its own name: `PREFIX<i>-<name>`."""
    shipped = []
    for index, path in enumerate(paths):
        if not Path(path).is_file():
            raise InputError(f"{path}: no such file")
        shipped.append(Shipment(Path(path), f"{prefix}{index}-{Path(path).name}", cached=False))
    return shipped


def pack_reproducibly(folder: Path, archive: Path) -> None:
    """A bundle folder as a `.tar.gz` whose bytes depend on the files only (no dates, owners)."""
    with atomic_path(archive, mode=0o600) as tmp, open(tmp, "wb") as raw:
        _write_tar_gz(folder, raw)


def _write_tar_gz(folder: Path, raw: Any) -> None:
    zipped = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0)
    with zipped, tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(folder.iterdir()):
            if not path.is_file():
                raise InputError(f"{path}: a bundle holds files only")
            info = tar.gettarinfo(str(path), arcname=f"{folder.name}/{path.name}")
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mode, info.mtime = 0o644, 0
            with open(path, "rb") as handle:
                tar.addfile(info, handle)
