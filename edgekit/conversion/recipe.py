"""The recipe: every setting of one conversion as one frozen, validated, serialisable object.

`ConvertOptions` has the CLI's flags as flat fields (`--prune-channels` → `prune_channels`). It is
plain data: `to_dict()`/`from_dict()` round-trip through JSON and TOML, `from_file()` reads either
(or a bundle's `edgekit.json`, whose `conversion.recipe` it takes), and `resolve()` lays keyword
overrides over a recipe, as flags given on the command line override a `--recipe` file. Every check
that needs only the options themselves happens here, once, when the object is made; checks that need
the model or the target profiles (a per-channel `--mean` count, a target that cannot run a mode) happen
where those are read.

Paths are kept as given (relative ones resolve against the working directory, as on the command line).
This module imports no numpy or TensorFlow: the CLI can build and check a recipe cheaply.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Mapping

from edgekit import defaults
from edgekit.bundle.manifest import TASKS
from edgekit.errors import InputError, UsageError
from edgekit.targets import QUANT_MODES

AUTO = "auto"
# A raw output's worst channel may be off by this share of its RMS value: the relative error a cosine of
# 0.98 allows (|a - b|² = 2 (1 - cos) for unit vectors), applied channel by channel.
MAX_CHANNEL_ERROR = 0.2
PRUNE_NORMS = ("l1", "l2")
# Not written into a bundle's recipe: where this machine writes (out, force), what it shows (verbose),
# and the trust decision to run code carried by a model file (unsafe_load), which must be made anew
# for every file, never inherited from a recipe.
# Nor the device `-q auto` is timed on (on, ssh_config, remote_python): the laptop's own SSH setup.
MACHINE_LOCAL = ("out", "force", "verbose", "unsafe_load", "on", "ssh_config", "remote_python")

# Field kinds for from_dict(): what a JSON or TOML value must be.
_NAMES = ("targets", "keep_float", "prune_skip", "prune_include", "float_outputs", "min_accuracy")
_CHANNELS = ("mean", "std")
_PATHS = ("calibration", "labels", "targets_dir", "eval_data", "finetune_data", "out", "ssh_config")
_TEXT = ("quantization", "name", "prune_norm", "task", "on", "remote_python")
_INTS = ("calibration_size", "eval_size", "prune_block", "prune_channels_multiple", "finetune_epochs")
_FLOATS = (
    "max_accuracy_drop",
    "min_agreement",
    "min_cosine",
    "prune",
    "prune_channels",
    "finetune_lr",
    "max_channel_error",
)
_SHAPES = ("input_shape",)  # ONNX dynamic dimensions: "1,3,320,320" or "NAME=1,3,320,320", kept as written
_BOOLS = ("archive", "force", "unsafe_load", "verbose", "allow_degraded", "auto_keep_float", "explain")


@dataclass(frozen=True)
class ConvertOptions:
    """Every setting of `edgekit convert`, named like its flag; validated when made."""

    targets: tuple[str, ...] | None = None  # None: every target profile
    quantization: str | None = None  # None: each target's own mode; "auto": measured per target
    calibration: str | None = None
    calibration_size: int = defaults.CALIBRATION_SIZE
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    labels: str | None = None
    name: str | None = None  # None: the model file's name
    out: str = defaults.OUT
    archive: bool = False
    force: bool = False
    targets_dir: str | None = None
    unsafe_load: bool = False
    verbose: bool = False
    eval_data: str | None = None
    eval_size: int = defaults.EVAL_SIZE
    max_accuracy_drop: float | None = None  # percentage points
    min_agreement: float = defaults.MIN_AGREEMENT
    min_cosine: float = defaults.MIN_COSINE
    allow_degraded: bool = False
    keep_float: tuple[str, ...] = ()
    auto_keep_float: bool = False
    explain: bool = False
    prune: float | None = None
    prune_channels: float | None = None
    prune_skip: tuple[str, ...] = ()
    prune_include: tuple[str, ...] = ()
    prune_block: int | None = None  # None: 4 with --finetune-data, 1 without
    prune_norm: str = defaults.PRUNE_NORM
    prune_channels_multiple: int = defaults.PRUNE_CHANNELS_MULTIPLE
    finetune_data: str | None = None
    finetune_epochs: int | None = None  # None: defaults.FINETUNE_EPOCHS
    finetune_lr: float | None = None  # None: defaults.FINETUNE_LEARNING_RATE
    task: str | None = None  # None: inferred from the outputs where unambiguous
    float_outputs: tuple[str, ...] = ()  # int8 with these outputs computed and returned in float
    min_accuracy: tuple[str, ...] = ()  # "PCT" (every labelled classifier output) or "NAME=PCT"
    max_channel_error: float = MAX_CHANNEL_ERROR  # raw outputs: worst channel's RMS error / RMS value
    input_shape: tuple[str, ...] = ()  # --input-shape: fixed shapes for an ONNX model's dynamic dimensions
    on: str | None = None  # -q auto: time the candidate modes on this device over SSH, not on the laptop
    ssh_config: str | None = None
    remote_python: str | None = None

    def __post_init__(self) -> None:
        for key, value in _normalised(self).items():
            object.__setattr__(self, key, value)
        validate(self)

    @property
    def pruning(self) -> bool:
        return self.prune is not None or self.prune_channels is not None

    def min_accuracy_by_output(self) -> dict[str, float]:
        """--min-accuracy as output name → percent ("" for every labelled classifier output)."""
        result = {}
        for item in self.min_accuracy:
            name, _, value = item.rpartition("=")
            try:
                result[name] = float(value)
            except ValueError:
                raise UsageError(f"--min-accuracy {item}: expected PCT or NAME=PCT") from None
            if not 0.0 <= result[name] <= 100.0:
                raise UsageError(f"--min-accuracy {item}: a percentage from 0 to 100")
        return result

    @property
    def debugging(self) -> bool:
        """Whether the int8 layer debugger is asked for (--keep-float, --auto-keep-float, --explain)."""
        return bool(self.keep_float) or self.auto_keep_float or self.explain

    def to_dict(self) -> dict[str, Any]:
        """Every field, as JSON-ready values (tuples as lists)."""
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}

    def recipe(self) -> dict[str, Any]:
        """What a bundle's manifest keeps as `conversion.recipe`: every field except MACHINE_LOCAL ones."""
        return {key: value for key, value in self.to_dict().items() if key not in MACHINE_LOCAL}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "recipe") -> ConvertOptions:
        """A recipe from plain data (JSON or TOML values); wrong keys and types are UsageErrors naming
        the field."""
        return cls(**_typed(data, where))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> ConvertOptions:
        """A recipe from a `.json` or `.toml` file, or from a bundle's `edgekit.json`."""
        return cls.from_dict(read_recipe_file(path), str(path))

    @classmethod
    def resolve(cls, recipe: Any = None, overrides: Mapping[str, Any] | None = None) -> ConvertOptions:
        """`recipe` (a ConvertOptions, a dict, a path to a recipe file, or None) with `overrides` on top:
        the keyword arguments of `convert()`, or the flags given on the command line."""
        if recipe is None:
            base: dict[str, Any] = {}
        elif isinstance(recipe, ConvertOptions):
            base = asdict(recipe)
        elif isinstance(recipe, Mapping):
            base = _typed(recipe, "recipe")
        elif isinstance(recipe, (str, os.PathLike)):
            base = _typed(read_recipe_file(recipe), str(recipe))
        else:
            raise UsageError(f"recipe must be a ConvertOptions, a dict or a path, got {type(recipe).__name__}")
        extra = dict(overrides or {})
        unknown = sorted(set(extra) - {f.name for f in fields(cls)})
        if unknown:
            raise UsageError(f"convert() got an unknown option {unknown[0]!r}")
        return cls(**{**base, **extra})


def read_recipe_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The recipe table of a `.json` or `.toml` file (a bundle manifest's `conversion.recipe` too)."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{source}: cannot read recipe ({exc})") from None
    try:
        if source.suffix.lower() == ".toml":
            import tomllib

            data = tomllib.loads(text)
        elif source.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            raise InputError(f"{source}: a recipe is a .json or a .toml file")
    except (ValueError, TypeError) as exc:  # JSONDecodeError and TOMLDecodeError are ValueErrors
        raise InputError(f"{source}: not a valid recipe file ({' '.join(str(exc).split())[:200]})") from None
    if isinstance(data, dict) and isinstance(data.get("conversion"), dict) and "recipe" in data["conversion"]:
        data = data["conversion"]["recipe"]  # a bundle's manifest: the recipe it was made with
    if not isinstance(data, dict):
        raise InputError(f"{source}: a recipe is a table of options")
    return data


def _typed(data: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Check each value's type for its field; a wrong one names the field and the file."""
    known = {f.name for f in fields(ConvertOptions)}
    result = {}
    for key, value in data.items():
        if key not in known:
            raise UsageError(
                f"{where}: unknown option {key!r} (options are the convert flags: {', '.join(sorted(known))})"
            )
        if value is None:
            result[key] = None
            continue
        if key in _NAMES:
            ok = isinstance(value, str) or (isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value))
        elif key in _CHANNELS:  # numbers, or NAME=VALUES strings for models with several image inputs
            items = value if isinstance(value, (list, tuple)) else [value]
            ok = all(isinstance(v, (int, float, str)) and not isinstance(v, bool) for v in items)
        elif key in _SHAPES:
            ok = isinstance(value, str) or (isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value))
        elif key in _PATHS:
            ok = isinstance(value, (str, os.PathLike))
        elif key in _TEXT:
            ok = isinstance(value, str)
        elif key in _INTS:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif key in _FLOATS:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        else:
            ok = isinstance(value, bool)
        if not ok:
            raise UsageError(f"{where}: {key} has the wrong type ({type(value).__name__}: {value!r})")
        result[key] = value
    return result


def _normalised(options: ConvertOptions) -> dict[str, Any]:
    """Paths as strings, sequences as tuples, names split on commas: the one spelling to_dict() writes."""
    changed: dict[str, Any] = {}
    for key in _PATHS:
        value = getattr(options, key)
        if isinstance(value, os.PathLike):
            changed[key] = os.fspath(value)
    for key in _NAMES:
        value = getattr(options, key)
        if value is None:
            if key != "targets":
                changed[key] = ()
            continue
        if isinstance(value, str):
            value = [value]
        names = tuple(part.strip() for item in value for part in str(item).split(",") if part.strip())
        changed[key] = names if names or key != "targets" else None
    for key in _SHAPES:
        value = getattr(options, key)
        if isinstance(value, Mapping):  # Python callers: {"images": (1, 3, 320, 320)}
            value = [f"{name}={','.join(map(str, dims))}" for name, dims in value.items()]
        changed[key] = (value,) if isinstance(value, str) else tuple(value or ())
    for key in _CHANNELS:
        value = getattr(options, key)
        if value is not None:
            items = value if isinstance(value, (list, tuple)) else [value]
            changed[key] = tuple(v if isinstance(v, str) and "=" in v else float(v) for v in items) or None
    return changed


def validate(options: ConvertOptions) -> None:
    """Every check that needs only the options: a bad value or a contradiction is a UsageError (exit 2)."""
    o = options
    if o.quantization is not None and o.quantization not in (*QUANT_MODES, AUTO):
        raise UsageError(f"unknown quantization mode {o.quantization!r} (known: {', '.join(QUANT_MODES)}, {AUTO})")
    for flag, value in (("--calibration-size", o.calibration_size), ("--eval-size", o.eval_size)):
        if value < 1:
            raise UsageError(f"{flag} must be at least 1, got {value}")
    for flag, values in (("--mean", o.mean), ("--std", o.std)):
        numbers = [v for v in values or () if not isinstance(v, str)]
        for item in (v for v in values or () if isinstance(v, str)):
            try:
                numbers += [float(x) for x in item.partition("=")[2].split(",")]
            except ValueError:
                raise UsageError(f"{flag} {item}: expected NAME=NUMBER[,NUMBER...]") from None
        if not all(math.isfinite(v) for v in numbers):
            raise UsageError(f"{flag} values must be finite numbers, got {', '.join(map(str, values or ()))}")
        if flag == "--std" and any(v == 0 for v in numbers):
            raise UsageError("--std must not be zero")
    if o.task is not None and o.task not in TASKS:
        raise UsageError(f"--task must be one of {', '.join(TASKS)}, got {o.task!r}")
    o.min_accuracy_by_output()
    if o.on is not None and o.quantization != AUTO:
        raise UsageError("--on times the candidate modes of -q auto on a device: use it with -q auto")
    if (o.ssh_config is not None or o.remote_python is not None) and o.on is None:
        raise UsageError("--ssh-config and --remote-python need --on HOST")
    if o.min_accuracy and o.eval_data is None:
        raise UsageError("--min-accuracy needs labelled --eval-data (a folder per class, or a .npz with x and y)")
    if o.float_outputs and o.quantization not in (None, "int8", AUTO):
        raise UsageError("--float-outputs applies to int8: choose -q int8 or auto")
    if o.name is not None and (not o.name or "/" in o.name or o.name.startswith(".")):
        raise UsageError(f"--name {o.name!r}: must be a plain file name")
    check_thresholds(o.min_agreement, o.min_cosine, o.max_accuracy_drop)
    if o.max_accuracy_drop is not None and o.eval_data is None:
        raise UsageError(
            "--max-accuracy-drop needs labelled --eval-data (a folder per class, or a .npz with x and y) "
            "and a classifier"
        )
    if o.keep_float and o.auto_keep_float:
        raise UsageError("--keep-float names the layers, --auto-keep-float searches for them: use one")
    if o.debugging and o.quantization not in (None, "int8", AUTO):
        raise UsageError("--keep-float, --auto-keep-float and --explain apply to int8: choose -q int8 or auto")
    check_pruning(
        o.prune, o.prune_channels, o.prune_skip, o.prune_include, o.prune_block, o.prune_norm, o.prune_channels_multiple
    )
    check_finetuning(o.finetune_epochs, o.finetune_lr)
    if o.finetune_data is not None and not o.pruning:
        raise UsageError("--finetune-data fine-tunes a pruned model: add --prune or --prune-channels")
    if (o.finetune_epochs is not None or o.finetune_lr is not None) and o.finetune_data is None:
        raise UsageError("--finetune-epochs and --finetune-lr need --finetune-data")


def check_thresholds(min_agreement: float, min_cosine: float, max_accuracy_drop: float | None) -> None:
    """The fidelity and accuracy thresholds' ranges (also what `Thresholds` checks when made)."""
    if not 0.0 <= min_agreement <= 1.0:
        raise UsageError(f"--min-agreement must be between 0 and 1, got {min_agreement}")
    if not -1.0 <= min_cosine <= 1.0:
        raise UsageError(f"--min-cosine must be between -1 and 1, got {min_cosine}")
    if max_accuracy_drop is not None and not 0.0 <= max_accuracy_drop <= 100.0:
        raise UsageError(f"--max-accuracy-drop is in percentage points (0-100), got {max_accuracy_drop}")


def check_pruning(
    sparsity: float | None,
    channels: float | None,
    skip: tuple[str, ...],
    include: tuple[str, ...],
    block: int | None,
    norm: str,
    multiple: int,
) -> None:
    """The pruning options (also what `PruneSettings` checks when made)."""
    if sparsity is not None and not 0.0 < sparsity < 1.0:
        raise UsageError(f"--prune takes a share of weights to zero, between 0 and 1 (got {sparsity})")
    if channels is not None and not 0.0 < channels < 1.0:
        raise UsageError(f"--prune-channels takes a share of filters to remove, between 0 and 1 (got {channels})")
    if block is not None and block < 1:
        raise UsageError(f"--prune-block must be at least 1, got {block}")
    if multiple < 1:
        raise UsageError(f"--prune-channels-multiple must be at least 1, got {multiple}")
    if norm not in PRUNE_NORMS:
        raise UsageError(f"--prune-norm must be one of {', '.join(PRUNE_NORMS)}, got {norm!r}")
    if skip and sparsity is None and channels is None:
        raise UsageError("--prune-skip needs --prune or --prune-channels")
    if include and sparsity is None:
        raise UsageError("--prune-include needs --prune")
    both = set(skip) & set(include)
    if both:
        raise UsageError(f"layer {sorted(both)[0]!r} is both in --prune-skip and --prune-include")


def check_finetuning(epochs: int | None, learning_rate: float | None) -> None:
    if epochs is not None and epochs < 1:
        raise UsageError(f"--finetune-epochs must be at least 1, got {epochs}")
    if learning_rate is not None and not (math.isfinite(learning_rate) and learning_rate > 0):
        raise UsageError(f"--finetune-lr must be a positive number, got {learning_rate}")
