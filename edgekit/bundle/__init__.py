"""The bundle: the contract between the convert half and the device half.

A bundle is a folder (or a `.tar.gz` of one) holding `model.tflite`, the manifest `edgekit.json`,
optionally `labels.txt` and optionally the signature `edgekit.sig`. The manifest describes every
tensor, the preprocessing, the target profile as used and the SHA-256 of every other file; the
signature (see edgekit/signing.py) covers the manifest's bytes, so it covers every file.

Everything here reads bundles as untrusted input: the manifest is validated field by field, archives
are unpacked member by member with caps, and every failure is an EdgekitError naming the file.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tarfile
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

# Re-exported: callers still import these from edgekit.bundle.
from edgekit.bundle.files import NO_SPACE_ERRNOS as NO_SPACE_ERRNOS
from edgekit.bundle.files import is_no_space, sha256_file
from edgekit.bundle.files import replace_path as replace_path
from edgekit.bundle.files import staged_folder as staged_folder
from edgekit.errors import InputError, IntegrityError

SCHEMA_VERSION = 1
MANIFEST_NAME = "edgekit.json"
MODEL_NAME = "model.tflite"
LABELS_NAME = "labels.txt"
SIGNATURE_NAME = "edgekit.sig"
ARCHIVE_SUFFIX = ".tar.gz"
MAX_MANIFEST_BYTES = 1 << 20
MAX_ARCHIVE_BYTES = 1 << 30
MAX_ARCHIVE_MEMBERS = 64
# tar headers (pax records, GNU long names) are read whole into memory: no single read may exceed this.
MAX_ARCHIVE_READ = 1 << 20
COLOR_MODES = ("L", "RGB")
TASKS = ("classification", "generic")
LAYOUTS = ("NHWC", "NCHW")
FLOAT_DTYPES = ("float16", "float32", "float64", "complex64")
INTEGER_DTYPES = ("int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "bool")
TENSOR_DTYPES = FLOAT_DTYPES + INTEGER_DTYPES
# No CPU has this many cores; far larger counts make the runtimes' thread pools crash the process.
MAX_THREADS = 256


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
        if not all(_is_int(d) and d > 0 for d in shape):
            raise InputError(f"{where}.shape: expected a list of positive integers, got {_short(shape)}")
        dtype = _field(data, "dtype", str, where)
        if dtype not in TENSOR_DTYPES:
            raise InputError(f"{where}.dtype: expected one of {', '.join(TENSOR_DTYPES)}, got {_short(dtype)}")
        scale = data.get("scale")
        zero_point = data.get("zero_point")
        if scale is not None and not (_is_number(scale) and scale >= 0):
            raise InputError(f"{where}.scale: expected a non-negative number or null, got {_short(scale)}")
        if zero_point is not None and not _is_int(zero_point):
            raise InputError(f"{where}.zero_point: expected an integer or null, got {_short(zero_point)}")
        if (scale is None) != (zero_point is None):
            raise InputError(f"{where}: scale and zero_point come together (both numbers, or both null)")
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
        if len(size) != 2 or not all(_is_int(v) and v > 0 for v in size):
            raise InputError(f"{where}.size: expected [height, width] as positive integers, got {_short(size)}")
        color = _field(data, "color", str, where)
        if color not in COLOR_MODES:
            raise InputError(f"{where}.color: expected one of {', '.join(COLOR_MODES)}, got {_short(color)}")
        channels = 1 if color == "L" else 3
        mean = _numbers(_field(data, "mean", list, where), f"{where}.mean", channels)
        std = _numbers(_field(data, "std", list, where), f"{where}.std", channels)
        if any(s == 0 for s in std):
            raise InputError(f"{where}.std: must not be zero")
        layout = data.get("layout", "NHWC")
        if layout not in LAYOUTS:
            raise InputError(f"{where}.layout: expected NHWC or NCHW, got {_short(layout)}")
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
        if "schema" not in data:
            raise InputError(f"{where}: missing field 'schema'")
        schema = data["schema"]
        if not _is_int(schema):
            raise InputError(f"{where}: schema: expected an integer, got {_short(schema)}")
        if schema > SCHEMA_VERSION:
            raise InputError(
                f"{where}: bundle schema {schema} is newer than this edgekit understands "
                f"({SCHEMA_VERSION}); upgrade edgekit"
            )
        if schema < 1:
            raise InputError(f"{where}: schema: unknown bundle schema {schema} (expected 1 to {SCHEMA_VERSION})")
        name = _field(data, "name", str, where, root=True)
        if not name:
            raise InputError(f"{where}: name: must not be empty")
        created_by = _field(data, "created_by", str, where, root=True)
        target = _target(_field(data, "target", dict, where, root=True), f"{where}: target")
        quantization = _field(data, "quantization", str, where, root=True)
        inputs = _field(data, "inputs", list, where, root=True)
        outputs = _field(data, "outputs", list, where, root=True)
        if not inputs or not outputs:
            raise InputError(f"{where}: a bundle needs at least one input and one output")
        entries = _file_entries(_field(data, "files", dict, where, root=True), f"{where}: files")
        labels = data.get("labels")
        if labels is not None and (not isinstance(labels, str) or labels not in entries):
            raise InputError(f"{where}: labels: expected null or the name of a file listed in 'files'")
        preprocess = data.get("preprocess")
        task = data.get("task", "classification")
        if task not in TASKS:
            raise InputError(f"{where}: task: expected 'classification' or 'generic', got {_short(task)}")
        return cls(
            name=name,
            created_by=created_by,
            target=target,
            quantization=quantization,
            inputs=tuple(TensorSpec.from_dict(t, f"{where}: inputs[{i}]") for i, t in enumerate(inputs)),
            outputs=tuple(TensorSpec.from_dict(t, f"{where}: outputs[{i}]") for i, t in enumerate(outputs)),
            files=entries,
            preprocess=None if preprocess is None else Preprocess.from_dict(preprocess, f"{where}: preprocess"),
            task=task,
            labels=labels,
            source=_optional_dict(data, "source", where),
            conversion=_optional_dict(data, "conversion", where),
            schema=schema,
        )


def _target(target: dict[str, Any], where: str) -> dict[str, Any]:
    """The fields of the target profile that the device half reads must have usable values."""
    if "name" in target and not isinstance(target["name"], str):
        raise InputError(f"{where}.name: expected str, got {type(target['name']).__name__}")
    if "budget_ms" in target and not (_is_number(target["budget_ms"]) and target["budget_ms"] > 0):
        raise InputError(f"{where}.budget_ms: expected a positive number, got {_short(target['budget_ms'])}")
    if "threads" in target and not (_is_int(target["threads"]) and 1 <= target["threads"] <= MAX_THREADS):
        got = _short(target["threads"])
        raise InputError(f"{where}.threads: expected an integer from 1 to {MAX_THREADS}, got {got}")
    return target


def _file_entries(files: dict[str, Any], where: str) -> dict[str, FileEntry]:
    if len(files) > MAX_ARCHIVE_MEMBERS:
        raise InputError(f"{where}: lists {len(files)} files, at most {MAX_ARCHIVE_MEMBERS} are allowed")
    entries = {}
    for name, entry in files.items():
        fw = f"{where}[{name!r}]"
        if not _plain_file_name(name) or name in (MANIFEST_NAME, SIGNATURE_NAME):
            raise InputError(f"{fw}: file names must be plain names of files inside the bundle")
        _expect(entry, dict, fw)
        digest = _field(entry, "sha256", str, fw)
        size = _field(entry, "bytes", int, fw)
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise InputError(f"{fw}.sha256: expected 64 lowercase hex digits")
        if size < 0:
            raise InputError(f"{fw}.bytes: expected a size of 0 or more, got {size}")
        entries[name] = FileEntry(digest, size)
    if MODEL_NAME not in entries:
        raise InputError(f"{where}: must list {MODEL_NAME}")
    return entries


def _optional_dict(data: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError(f"{where}: {key}: expected an object or null, got {type(value).__name__}")
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _short(value: Any) -> str:
    """A value for an error message, cut short: manifests can be hostile."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _expect(value: Any, kind: type, where: str) -> None:
    if not isinstance(value, kind):
        raise InputError(f"{where}: expected {_kind_name(kind)}, got {_kind_name(type(value))}")


def _kind_name(kind: type) -> str:
    return {dict: "an object", list: "a list", str: "a string", int: "an integer"}.get(kind, kind.__name__)


def _field(data: dict[str, Any], key: str, kind: type, where: str, root: bool = False) -> Any:
    """data[key] of the given type; `where` is the file (root) or the path of the enclosing field."""
    if key not in data:
        raise InputError(f"{where}: missing field '{key}'")
    value = data[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        name = f"{where}: {key}" if root else f"{where}.{key}"
        raise InputError(f"{name}: expected {_kind_name(kind)}, got {_kind_name(type(value))}")
    return value


def _numbers(values: list[Any], where: str, channels: int) -> tuple[float, ...]:
    if not values or not all(_is_number(v) for v in values):
        raise InputError(f"{where}: expected a non-empty list of finite numbers")
    if len(values) not in (1, channels):
        expected = "1 value" if channels == 1 else f"1 or {channels} values"
        raise InputError(f"{where}: expected {expected} (one per channel), got {len(values)}")
    return tuple(float(v) for v in values)


def file_entry(path: Path) -> FileEntry:
    return FileEntry(sha256_file(path), path.stat().st_size)


# --- reading ---------------------------------------------------------------------------------


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


class _DuplicateKey(ValueError):
    pass


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Two parsers could pick different values for a duplicated key: a signed manifest must mean one thing.
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise _DuplicateKey(f"duplicate key {_short(key)}")
        data[key] = value
    return data


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def parse_manifest(content: bytes, where: str) -> Manifest:
    """Manifest bytes → validated Manifest; `where` names the file in error messages."""
    if len(content) > MAX_MANIFEST_BYTES:
        raise InputError(f"{where}: manifest is larger than {MAX_MANIFEST_BYTES} bytes, refused")
    try:
        data = json.loads(
            content.decode("utf-8"), object_pairs_hook=_refuse_duplicates, parse_constant=_refuse_constant
        )
    except UnicodeDecodeError:
        raise InputError(f"{where}: not valid JSON (not UTF-8 text)") from None
    except RecursionError:
        raise InputError(f"{where}: not valid JSON (nested too deeply)") from None
    except ValueError as exc:  # JSONDecodeError, duplicate keys, NaN
        raise InputError(f"{where}: not valid JSON ({exc})") from None
    return Manifest.from_dict(data, where=where)


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
        from edgekit.signing import verify_signature

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
    with tempfile.TemporaryDirectory(prefix="edgekit-") as tmp:
        folder = unpack_archive(source, Path(tmp))
        yield load_bundle(folder, verify, trusted_key, shown_as=f"{source}:{folder.name}")


# --- writing ---------------------------------------------------------------------------------


def pack_archive(folder: Path, archive: Path, force: bool = False) -> Path:
    """Write `folder` as a `.tar.gz` with one top-level folder, atomically."""
    if archive.exists() and not force:
        raise InputError(f"{archive}: already exists (use --force to overwrite)")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{archive.name}.", suffix=".partial", dir=archive.parent)
    except OSError as exc:
        raise InputError(f"{archive}: cannot write ({exc.strerror or exc})") from None
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
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if is_no_space(exc):
            raise InputError(
                f"{archive}: {exc.strerror or 'no space left'} while writing the archive; nothing was written there"
            ) from None
        raise
    return archive


def _plain_file_name(name: Any) -> bool:
    """A name that can only mean a file directly inside the bundle folder."""
    return (
        isinstance(name, str)
        and name not in ("", ".", "..")
        and not any(c in name for c in "/\\\x00")
        and len(name.encode("utf-8", "surrogatepass")) <= 255
    )


def _safe_member_name(name: str) -> bool:
    """A relative archive path made of plain names: no absolute paths, `..`, `.` or empty parts."""
    return bool(name) and all(_plain_file_name(part) for part in name.split("/"))


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
    import gzip

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
        shown = _short(member.name)
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
        source = tar.extractfile(member)
        if source is None:
            raise InputError(f"{archive}: member {_short(member.name)} cannot be read")
        with source:
            try:
                out = open(dest / member.name, "xb")  # noqa: SIM115 - closed by the `with out` below
            except OSError as exc:
                raise InputError(
                    f"{archive}: cannot unpack member {_short(member.name)} ({exc.strerror or exc})"
                ) from None
            with out:
                for block in iter(lambda: source.read(MAX_ARCHIVE_READ), b""):  # noqa: B023 - used at once
                    try:
                        out.write(block)
                    except OSError as exc:
                        raise InputError(
                            f"{archive}: cannot unpack member {_short(member.name)} into {dest} ({exc.strerror or exc})"
                        ) from None
    return root
