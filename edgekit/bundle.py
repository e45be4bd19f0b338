"""The bundle: the contract between the convert half and the device half.

A bundle is a folder (or a `.tar.gz` of one) holding `model.tflite`, the manifest `edgekit.json`
and optionally `labels.txt`. The manifest describes every tensor, the preprocessing, the target
profile as used and the SHA-256 of every file. See docs/bundle-format.md.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from edgekit.errors import InputError, IntegrityError

SCHEMA_VERSION = 1
MANIFEST_NAME = "edgekit.json"
MODEL_NAME = "model.tflite"
LABELS_NAME = "labels.txt"
ARCHIVE_SUFFIX = ".tar.gz"
MAX_ARCHIVE_BYTES = 1 << 30
MAX_ARCHIVE_MEMBERS = 64
COLOR_MODES = ("L", "RGB")


@dataclass(frozen=True)
class TensorSpec:
    """One input or output tensor of the `.tflite` model, with its quantization when it has one."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: float | None = None
    zero_point: int | None = None

    @property
    def quantized(self) -> bool:
        return self.dtype in ("int8", "uint8", "int16") and bool(self.scale)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "scale": self.scale,
            "zero_point": self.zero_point,
        }

    @classmethod
    def from_dict(cls, data: Any, where: str) -> TensorSpec:
        _expect(data, dict, where)
        name = _field(data, "name", str, where)
        shape = _field(data, "shape", list, where)
        if not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
            raise InputError(f"{where}.shape: expected a list of positive integers, got {shape!r}")
        dtype = _field(data, "dtype", str, where)
        scale = data.get("scale")
        zero_point = data.get("zero_point")
        if scale is not None and (isinstance(scale, bool) or not isinstance(scale, (int, float))):
            raise InputError(f"{where}.scale: expected a number or null")
        if zero_point is not None and (isinstance(zero_point, bool) or not isinstance(zero_point, int)):
            raise InputError(f"{where}.zero_point: expected an integer or null")
        return cls(name, tuple(shape), dtype, None if scale is None else float(scale), zero_point)


@dataclass(frozen=True)
class Preprocess:
    """How an image becomes the model's input: resize to `size` (height, width), convert to `color`,
    then `x = (pixel - mean) / std` per channel on 0-255 pixel values."""

    size: tuple[int, int]
    color: str
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (255.0,)
    layout: str = "NHWC"

    @property
    def channels(self) -> int:
        return 1 if self.color == "L" else 3

    def to_dict(self) -> dict[str, Any]:
        return {
            "size": list(self.size),
            "color": self.color,
            "mean": list(self.mean),
            "std": list(self.std),
            "layout": self.layout,
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "preprocess") -> Preprocess:
        _expect(data, dict, where)
        size = _field(data, "size", list, where)
        if len(size) != 2 or not all(isinstance(v, int) and v > 0 for v in size):
            raise InputError(f"{where}.size: expected [height, width], got {size!r}")
        color = _field(data, "color", str, where)
        if color not in COLOR_MODES:
            raise InputError(f"{where}.color: expected one of {', '.join(COLOR_MODES)}, got {color!r}")
        mean = _numbers(_field(data, "mean", list, where), f"{where}.mean")
        std = _numbers(_field(data, "std", list, where), f"{where}.std")
        if any(s == 0 for s in std):
            raise InputError(f"{where}.std: must not be zero")
        layout = data.get("layout", "NHWC")
        if layout not in ("NHWC", "NCHW"):
            raise InputError(f"{where}.layout: expected NHWC or NCHW, got {layout!r}")
        return cls((size[0], size[1]), color, mean, std, layout)


@dataclass(frozen=True)
class FileEntry:
    sha256: str
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "bytes": self.bytes}


@dataclass(frozen=True)
class Manifest:
    """Everything the device half needs to know about a bundle (`edgekit.json`)."""

    name: str
    created_by: str
    target: dict[str, Any]
    quantization: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    files: dict[str, FileEntry]
    preprocess: Preprocess | None = None
    task: str = "classification"
    labels: str | None = None
    source: dict[str, Any] = field(default_factory=dict)
    conversion: dict[str, Any] = field(default_factory=dict)
    schema: int = SCHEMA_VERSION

    @property
    def budget_ms(self) -> float:
        return float(self.target.get("budget_ms", 10.0))

    @property
    def threads(self) -> int:
        return int(self.target.get("threads", 1))

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "name": self.name,
            "created_by": self.created_by,
            "target": dict(self.target),
            "quantization": self.quantization,
            "task": self.task,
            "preprocess": self.preprocess.to_dict() if self.preprocess else None,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "labels": self.labels,
            "files": {name: entry.to_dict() for name, entry in sorted(self.files.items())},
            "source": dict(self.source),
            "conversion": dict(self.conversion),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: Any, where: str = MANIFEST_NAME) -> Manifest:
        """Validate manifest data; errors name the field and what was expected."""
        _expect(data, dict, where)
        schema = data.get("schema")
        if isinstance(schema, bool) or not isinstance(schema, int):
            raise InputError(f"{where}: field 'schema' must be an integer")
        if schema > SCHEMA_VERSION:
            raise InputError(
                f"{where}: bundle schema {schema} is newer than this edgekit understands "
                f"({SCHEMA_VERSION}); upgrade edgekit"
            )
        if schema < 1:
            raise InputError(f"{where}: unknown bundle schema {schema}")
        inputs = _field(data, "inputs", list, where)
        outputs = _field(data, "outputs", list, where)
        if not inputs or not outputs:
            raise InputError(f"{where}: a bundle needs at least one input and one output")
        files = _field(data, "files", dict, where)
        entries = {}
        for name, entry in files.items():
            fw = f"{where}.files[{name!r}]"
            _expect(entry, dict, fw)
            digest = _field(entry, "sha256", str, fw)
            size = _field(entry, "bytes", int, fw)
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise InputError(f"{fw}.sha256: expected 64 lowercase hex digits")
            if not _safe_member_name(name) or "/" in name:
                raise InputError(f"{fw}: file names must be plain names inside the bundle")
            entries[name] = FileEntry(digest, size)
        if MODEL_NAME not in entries:
            raise InputError(f"{where}.files: must list {MODEL_NAME}")
        labels = data.get("labels")
        if labels is not None and (not isinstance(labels, str) or labels not in entries):
            raise InputError(f"{where}.labels: must name a file listed in 'files'")
        preprocess = data.get("preprocess")
        task = data.get("task", "classification")
        if task not in ("classification", "generic"):
            raise InputError(f"{where}.task: expected 'classification' or 'generic'")
        return cls(
            name=_field(data, "name", str, where),
            created_by=_field(data, "created_by", str, where),
            target=_field(data, "target", dict, where),
            quantization=_field(data, "quantization", str, where),
            inputs=tuple(TensorSpec.from_dict(t, f"{where}.inputs[{i}]") for i, t in enumerate(inputs)),
            outputs=tuple(TensorSpec.from_dict(t, f"{where}.outputs[{i}]") for i, t in enumerate(outputs)),
            files=entries,
            preprocess=None if preprocess is None else Preprocess.from_dict(preprocess, f"{where}.preprocess"),
            task=task,
            labels=labels,
            source=data.get("source") or {},
            conversion=data.get("conversion") or {},
            schema=schema,
        )


def _expect(value: Any, kind: type, where: str) -> None:
    if not isinstance(value, kind):
        raise InputError(f"{where}: expected {kind.__name__}, got {type(value).__name__}")


def _field(data: dict[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in data:
        raise InputError(f"{where}: missing field '{key}'")
    value = data[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise InputError(f"{where}.{key}: expected {kind.__name__}, got {type(value).__name__}")
    return value


def _numbers(values: list[Any], where: str) -> tuple[float, ...]:
    if not values or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise InputError(f"{where}: expected a non-empty list of numbers")
    return tuple(float(v) for v in values)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_entry(path: Path) -> FileEntry:
    return FileEntry(sha256_file(path), path.stat().st_size)


# --- reading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bundle:
    """A bundle folder on disk whose manifest has been read and validated."""

    path: Path
    manifest: Manifest

    @property
    def model_path(self) -> Path:
        return self.path / MODEL_NAME

    def labels(self) -> list[str] | None:
        if not self.manifest.labels:
            return None
        text = (self.path / self.manifest.labels).read_text(encoding="utf-8")
        return [line.strip() for line in text.splitlines() if line.strip()]


def read_manifest(folder: Path) -> Manifest:
    path = folder / MANIFEST_NAME
    if not folder.is_dir():
        raise InputError(f"{folder}: not a bundle folder")
    if not path.is_file():
        raise InputError(f"{folder}: not a bundle (no {MANIFEST_NAME})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None
    return Manifest.from_dict(data, where=str(path))


def verify_files(folder: Path, manifest: Manifest, allowed_extra: tuple[str, ...] = ()) -> None:
    """Check that the folder holds exactly the manifest's files with the right SHA-256 (exit 4 if not)."""
    present = {p.name for p in folder.iterdir()} - {MANIFEST_NAME, *allowed_extra}
    for name, entry in sorted(manifest.files.items()):
        path = folder / name
        if not path.is_file():
            raise IntegrityError(f"{path}: listed in the manifest but missing")
        if path.stat().st_size != entry.bytes or sha256_file(path) != entry.sha256:
            raise IntegrityError(f"{path}: SHA-256 does not match the manifest (file changed or corrupt)")
    extra = sorted(present - set(manifest.files))
    if extra:
        raise IntegrityError(f"{folder / extra[0]}: file not listed in the manifest")


@contextlib.contextmanager
def open_bundle(path: str | os.PathLike[str], verify: bool = True) -> Iterator[Bundle]:
    """Open a bundle folder or `.tar.gz`, verify its files, and yield it (archives are unpacked to a
    temporary folder that is removed afterwards)."""
    source = Path(path)
    if not source.exists():
        raise InputError(f"{source}: no such file or folder")
    if source.is_dir():
        manifest = read_manifest(source)
        if verify:
            verify_files(source, manifest)
        yield Bundle(source, manifest)
        return
    with tempfile.TemporaryDirectory(prefix="edgekit-") as tmp:
        folder = unpack_archive(source, Path(tmp))
        manifest = read_manifest(folder)
        if verify:
            verify_files(folder, manifest)
        yield Bundle(folder, manifest)


# --- writing ---------------------------------------------------------------------------------


@contextlib.contextmanager
def staged_folder(final: Path, force: bool) -> Iterator[Path]:
    """Yield a temporary folder next to `final`; on success rename it into place, on any failure
    (or Ctrl-C) remove it, so no half-written bundle is ever visible under the final name."""
    if final.exists() and not force:
        raise InputError(f"{final}: already exists (use --force to overwrite)")
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
    try:
        yield staging
        replace_path(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def replace_path(new: Path, final: Path) -> None:
    """Rename `new` to `final`, replacing an existing file or folder there."""
    if final.is_dir() and not final.is_symlink():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
        os.replace(new, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(new, final)


def pack_archive(folder: Path, archive: Path, force: bool = False) -> Path:
    """Write `folder` as a `.tar.gz` with one top-level folder, atomically."""
    if archive.exists() and not force:
        raise InputError(f"{archive}: already exists (use --force to overwrite)")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{archive.name}.", suffix=".partial", dir=archive.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    top = archive.name[: -len(ARCHIVE_SUFFIX)] if archive.name.endswith(ARCHIVE_SUFFIX) else archive.stem
    try:
        with tarfile.open(tmp, "w:gz") as tar:
            for path in sorted(folder.iterdir()):
                info = tar.gettarinfo(str(path), arcname=f"{top}/{path.name}")
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.mode = 0o644
                info.mtime = 0
                with open(path, "rb") as handle:
                    tar.addfile(info, handle)
        os.chmod(tmp, 0o644)
        os.replace(tmp, archive)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return archive


def _safe_member_name(name: str) -> bool:
    parts = name.split("/")
    return bool(name) and not name.startswith("/") and ".." not in parts and "\\" not in name and "\x00" not in name


def unpack_archive(archive: Path, dest: Path) -> Path:
    """Unpack a bundle archive without trusting it; return the bundle folder inside `dest`.

    Only regular files in at most one top-level folder are accepted: no absolute paths, no `..`,
    no links or devices, and caps on member count and total size.
    """
    try:
        tar = tarfile.open(archive, "r:*")  # noqa: SIM115 - closed by the `with tar` below
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise InputError(f"{archive}: not a bundle archive ({exc})") from None
    with tar:
        total = 0
        members = []
        tops = set()
        try:
            for member in tar:
                if len(members) >= MAX_ARCHIVE_MEMBERS:
                    raise InputError(f"{archive}: more than {MAX_ARCHIVE_MEMBERS} members, refused")
                name = member.name.rstrip("/")
                if not _safe_member_name(name):
                    raise InputError(f"{archive}: member {member.name!r} has an unsafe path, refused")
                if not (member.isfile() or member.isdir()):
                    raise InputError(f"{archive}: member {member.name!r} is not a regular file, refused")
                if len(name.split("/")) > 2:
                    raise InputError(f"{archive}: member {member.name!r} is nested too deep, refused")
                total += member.size
                if total > MAX_ARCHIVE_BYTES:
                    raise InputError(f"{archive}: unpacks to more than {MAX_ARCHIVE_BYTES} bytes, refused")
                tops.add(name.split("/")[0])
                members.append(member)
        except (tarfile.TarError, OSError, EOFError, zlib_error()) as exc:
            raise InputError(f"{archive}: corrupt archive ({exc})") from None
        if len(tops) != 1 or not members:
            raise InputError(f"{archive}: a bundle archive holds exactly one top-level folder")
        top = tops.pop()
        root = dest / top
        root.mkdir(parents=True, exist_ok=True)
        try:
            for member in members:
                if member.isdir():
                    continue
                target = dest / member.name
                source = tar.extractfile(member)
                if source is None:
                    raise InputError(f"{archive}: member {member.name!r} cannot be read")
                with source, open(target, "wb") as out:
                    shutil.copyfileobj(source, out)
        except (tarfile.TarError, OSError, EOFError, zlib_error()) as exc:
            raise InputError(f"{archive}: corrupt archive ({exc})") from None
    return root


def zlib_error() -> type[Exception]:
    import zlib

    return zlib.error
