"""Device profiles: one TOML file per target, read into a frozen `Target`."""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgekit.bundle import MAX_THREADS
from edgekit.errors import InputError

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.9/3.10 on devices
    import tomli as tomllib  # type: ignore[no-redef]

# int16x8: 16-bit activations, 8-bit weights; LiteRT runs it on reference kernels, so it buys accuracy, not speed.
QUANT_MODES = ("float32", "dynamic", "float16", "int8", "int16x8")
RUNTIMES = ("ai-edge-litert", "tflite-runtime")
BUILTIN_TARGETS_DIR = Path(__file__).resolve().parent / "profiles"
TARGETS_DIR_ENV = "EDGEKIT_TARGETS_DIR"


@dataclass(frozen=True)
class Target:
    """What edgekit needs to know about a device to convert for it and judge its latency."""

    name: str
    description: str
    arch: str
    cpu: str
    cores: int
    threads: int
    quantization: str
    budget_ms: float
    runtime: str
    runtime_requirement: str
    modes: tuple[str, ...] = QUANT_MODES
    delegate: str | None = None
    qemu_cpu: str | None = None
    notes: str = ""
    source: str = field(default="", compare=False)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["modes"] = list(self.modes)
        data.pop("source")
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "") -> Target:
        """Build a Target from profile data, with errors that name the file and the field."""
        where = source or "target profile"
        required = {
            "name": str,
            "description": str,
            "arch": str,
            "cpu": str,
            "cores": int,
            "threads": int,
            "quantization": str,
            "budget_ms": (int, float),
            "runtime": str,
            "runtime_requirement": str,
        }
        for key, kind in required.items():
            if key not in data:
                raise InputError(f"{where}: missing field '{key}'")
            if not isinstance(data[key], kind) or isinstance(data[key], bool):
                raise InputError(f"{where}: field '{key}' has the wrong type ({type(data[key]).__name__})")
        raw_modes = data.get("modes", list(QUANT_MODES))
        if not isinstance(raw_modes, list) or not all(isinstance(m, str) for m in raw_modes):
            raise InputError(f"{where}: field 'modes' must be a list of mode names")
        modes = tuple(raw_modes)
        unknown = [m for m in (*modes, data["quantization"]) if m not in QUANT_MODES]
        if unknown:
            raise InputError(f"{where}: unknown quantization mode {unknown[0]!r} (known: {', '.join(QUANT_MODES)})")
        if data["quantization"] not in modes:
            raise InputError(f"{where}: default quantization {data['quantization']!r} is not in its modes")
        if data["runtime"] not in RUNTIMES:
            raise InputError(f"{where}: runtime must be one of {', '.join(RUNTIMES)}")
        if data["threads"] < 1 or data["cores"] < 1 or not 0 < data["budget_ms"] < math.inf:
            raise InputError(f"{where}: cores, threads and budget_ms must be positive (and finite)")
        if data["threads"] > MAX_THREADS:
            raise InputError(f"{where}: threads must be at most {MAX_THREADS}")
        known = set(required) | {"modes", "delegate", "qemu_cpu", "notes"}
        extra = sorted(set(data) - known)
        if extra:
            raise InputError(f"{where}: unknown field '{extra[0]}'")
        return cls(
            name=data["name"],
            description=data["description"],
            arch=data["arch"],
            cpu=data["cpu"],
            cores=data["cores"],
            threads=data["threads"],
            quantization=data["quantization"],
            budget_ms=float(data["budget_ms"]),
            runtime=data["runtime"],
            runtime_requirement=data["runtime_requirement"],
            modes=modes,
            delegate=data.get("delegate"),
            qemu_cpu=data.get("qemu_cpu"),
            notes=data.get("notes", ""),
            source=source,
        )


def target_dirs(targets_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Folders searched for profiles: the user's (flag or environment) first, then the built-in ones."""
    dirs = []
    chosen = targets_dir or os.environ.get(TARGETS_DIR_ENV)
    if chosen:
        path = Path(chosen)
        if not path.is_dir():
            raise InputError(f"{path}: targets folder does not exist")
        dirs.append(path)
    dirs.append(BUILTIN_TARGETS_DIR)
    return dirs


def load_target_file(path: Path) -> Target:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read target profile ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML ({exc})") from None
    target = Target.from_dict(data, source=str(path))
    if target.name != path.stem:
        raise InputError(f"{path}: profile name {target.name!r} must match the file name {path.stem!r}")
    return target


def list_targets(targets_dir: str | os.PathLike[str] | None = None) -> list[Target]:
    """Every known profile, sorted by name; a user's profile overrides a built-in one of the same name."""
    found: dict[str, Target] = {}
    for folder in reversed(target_dirs(targets_dir)):
        for path in sorted(folder.glob("*.toml")):
            target = load_target_file(path)
            found[target.name] = target
    return [found[name] for name in sorted(found)]


def get_target(name: str, targets_dir: str | os.PathLike[str] | None = None) -> Target:
    targets = {t.name: t for t in list_targets(targets_dir)}
    if name not in targets:
        raise InputError(f"unknown target {name!r} (known: {', '.join(targets) or 'none'})")
    return targets[name]
