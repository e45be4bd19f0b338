"""`convert()`: the whole laptop-side workflow, top to bottom.

load → preprocessing contract → calibration samples → one conversion per mode → fidelity check
→ one bundle per target (staged, then renamed into place) → optional `.tar.gz`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from edgekit import __version__
from edgekit.bundle import (
    ARCHIVE_SUFFIX,
    LABELS_NAME,
    MANIFEST_NAME,
    MODEL_NAME,
    Manifest,
    Preprocess,
    TensorSpec,
    file_entry,
    pack_archive,
    staged_folder,
)
from edgekit.conversion.calibration import DEFAULT_CALIBRATION_SIZE, load_samples
from edgekit.conversion.load import load_model
from edgekit.conversion.quantize import QUANT_MODES, convert_saved_model, saved_model_dir
from edgekit.conversion.verify import Fidelity, TFLiteModel, compare_outputs
from edgekit.errors import InputError
from edgekit.targets import Target, get_target, list_targets

Progress = Callable[[str, int, int], None]
SYNTHETIC_SAMPLES = 32


@dataclass(frozen=True)
class ModeConversion:
    """One `.tflite` conversion, shared by every target that wants this mode."""

    mode: str
    content: bytes
    seconds: float
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    fidelity: Fidelity


@dataclass(frozen=True)
class BundleResult:
    """One bundle written for one target."""

    target: str
    arch: str
    mode: str
    path: str
    archive: str | None
    bytes: int
    archive_bytes: int | None
    size_ratio: float
    conversion_seconds: float
    fidelity: Fidelity

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "arch": self.arch,
            "mode": self.mode,
            "path": self.path,
            "archive": self.archive,
            "bytes": self.bytes,
            "archive_bytes": self.archive_bytes,
            "size_ratio": round(self.size_ratio, 4),
            "conversion_seconds": round(self.conversion_seconds, 3),
            "fidelity": self.fidelity.to_dict(),
        }


@dataclass(frozen=True)
class ConversionReport:
    """The result of `edgekit convert`."""

    name: str
    source: dict[str, Any]
    preprocess: Preprocess | None
    float32_bytes: int
    bundles: tuple[BundleResult, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": dict(self.source),
            "preprocess": self.preprocess.to_dict() if self.preprocess else None,
            "float32_bytes": self.float32_bytes,
            "bundles": [b.to_dict() for b in self.bundles],
        }


def parse_channels(values: Sequence[float] | None, default: float, channels: int, name: str) -> tuple[float, ...]:
    """One value for all channels or one per channel."""
    if not values:
        return (float(default),)
    if len(values) not in (1, channels):
        raise InputError(
            f"--{name} takes 1 or {channels} values for this model's {channels} channels, got {len(values)}"
        )
    if name == "std" and any(v == 0 for v in values):
        raise InputError("--std must not be zero")
    return tuple(float(v) for v in values)


def image_preprocess(
    input_shape: tuple[int | None, ...], mean: Sequence[float] | None, std: Sequence[float] | None
) -> Preprocess | None:
    """The preprocessing contract from the input shape: NHWC (or NCHW) with 1 or 3 channels is an
    image; anything else takes arrays only."""
    if len(input_shape) != 4:
        if mean or std:
            raise InputError("--mean/--std apply to image inputs; this model's input is not an image")
        return None
    _, a, b, c = input_shape
    if c in (1, 3) and a and b:
        layout, size, channels = "NHWC", (int(a), int(b)), int(c)
    elif a in (1, 3) and b and c:
        layout, size, channels = "NCHW", (int(b), int(c)), int(a)
    else:
        return None
    return Preprocess(
        size=size,
        color="L" if channels == 1 else "RGB",
        mean=parse_channels(mean, 0.0, channels, "mean"),
        std=parse_channels(std, 255.0, channels, "std"),
        layout=layout,
    )


def resolve_targets(names: Sequence[str] | None, targets_dir: str | os.PathLike[str] | None) -> list[Target]:
    if not names:
        return list_targets(targets_dir)
    unique = list(dict.fromkeys(names))
    return [get_target(n, targets_dir) for n in unique]


def plan_modes(targets: Sequence[Target], mode: str | None) -> dict[str, str]:
    """target name → mode; refuses a mode the target's runtime cannot load."""
    if mode is not None and mode not in QUANT_MODES:
        raise InputError(f"unknown quantization mode {mode!r} (known: {', '.join(QUANT_MODES)})")
    plan = {}
    for target in targets:
        chosen = mode or target.quantization
        if chosen not in target.modes:
            raise InputError(
                f"target {target.name} ({target.runtime_requirement}) cannot run {chosen} models "
                f"(it takes: {', '.join(target.modes)}); choose another -q or leave that target out"
            )
        plan[target.name] = chosen
    return plan


def read_labels(path: str | os.PathLike[str] | None, classes: int | None) -> list[str] | None:
    if path is None:
        return None
    source = Path(path)
    try:
        labels = [line.strip() for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{source}: cannot read labels ({exc})") from None
    if classes is not None and len(labels) != classes:
        raise InputError(f"{source}: {len(labels)} labels for a model with {classes} outputs")
    return labels


def synthetic_samples(tensor: TensorSpec, preprocess: Preprocess | None, count: int) -> np.ndarray:
    """Random inputs in the model's input range, for fidelity only (never for calibration)."""
    rng = np.random.default_rng(0)
    shape = (count, *tensor.shape[1:])
    if preprocess is None:
        return rng.standard_normal(shape).astype(np.float32)
    pixels = rng.integers(0, 256, size=shape).astype(np.float32)
    channel_axis = -1 if preprocess.layout == "NHWC" else 1
    mean = np.asarray(preprocess.mean, dtype=np.float32)
    std = np.asarray(preprocess.std, dtype=np.float32)
    if channel_axis == 1:
        mean, std = mean.reshape(-1, 1, 1), std.reshape(-1, 1, 1)
    return ((pixels - mean) / std).astype(np.float32)


def convert(
    model: str | os.PathLike[str],
    targets: Sequence[str] | None = None,
    quantization: str | None = None,
    calibration: str | os.PathLike[str] | None = None,
    calibration_size: int = DEFAULT_CALIBRATION_SIZE,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    labels: str | os.PathLike[str] | None = None,
    name: str | None = None,
    out: str | os.PathLike[str] = "bundles",
    archive: bool = False,
    force: bool = False,
    targets_dir: str | os.PathLike[str] | None = None,
    unsafe_load: bool = False,
    verbose: bool = False,
    progress: Progress | None = None,
) -> ConversionReport:
    """Convert a trained model into one bundle per target."""
    out_dir = Path(out)
    chosen_targets = resolve_targets(targets, targets_dir)
    plan = plan_modes(chosen_targets, quantization)
    source = load_model(model, unsafe=unsafe_load)
    bundle_name = name or Path(model).stem
    if not bundle_name or "/" in bundle_name or bundle_name.startswith("."):
        raise InputError(f"--name {bundle_name!r}: must be a plain file name")
    for target in chosen_targets:
        final = out_dir / f"{bundle_name}-{target.name}"
        if final.exists() and not force:
            raise InputError(f"{final}: already exists (use --force to overwrite)")

    preprocess = image_preprocess(source.input_shape, mean, std)
    float_input = TensorSpec("input", (1, *[int(d or 1) for d in source.input_shape[1:]]), "float32")
    classes = int(source.output_shape[-1]) if len(source.output_shape) == 2 and source.output_shape[-1] else None
    label_list = read_labels(labels, classes)
    is_classifier = classes is not None and classes > 1

    modes = sorted(set(plan.values()) | {"float32"}, key=QUANT_MODES.index)
    samples = None
    if calibration is not None:
        samples = load_samples(calibration, float_input, preprocess, calibration_size)
    elif "int8" in modes:
        raise InputError(
            "int8 needs calibration data: pass --calibration (a folder of images, .npy or .npz); "
            "edgekit never calibrates on random data"
        )
    check_samples = (
        samples[:200] if samples is not None else synthetic_samples(float_input, preprocess, SYNTHETIC_SAMPLES)
    )
    reference = source.predict(check_samples)

    steps = len(modes) + len(chosen_targets)
    done = 0

    def tick(label: str) -> None:
        nonlocal done
        done += 1
        if progress:
            progress(label, done, steps)

    conversions: dict[str, ModeConversion] = {}
    with saved_model_dir(source, verbose) as export_dir:
        for mode in modes:
            conversions[mode] = convert_mode(
                export_dir, mode, samples, check_samples, reference, is_classifier, calibration is None, verbose
            )
            tick(f"converted {mode}")

    float32_bytes = len(conversions["float32"].content)
    results = []
    for target in chosen_targets:
        mode = plan[target.name]
        conversion = conversions[mode]
        manifest_source = {**source.to_dict()}
        path = out_dir / f"{bundle_name}-{target.name}"
        write_bundle(
            path, bundle_name, target, conversion, preprocess, label_list, is_classifier, manifest_source, force
        )
        archive_path = None
        archive_bytes = None
        if archive:
            archive_path = pack_archive(path, out_dir / f"{bundle_name}-{target.name}{ARCHIVE_SUFFIX}", force=True)
            archive_bytes = archive_path.stat().st_size
        results.append(
            BundleResult(
                target=target.name,
                arch=target.arch,
                mode=mode,
                path=str(path),
                archive=None if archive_path is None else str(archive_path),
                bytes=len(conversion.content),
                archive_bytes=archive_bytes,
                size_ratio=len(conversion.content) / float32_bytes,
                conversion_seconds=conversion.seconds,
                fidelity=conversion.fidelity,
            )
        )
        tick(f"bundled {target.name}")
    return ConversionReport(bundle_name, source.to_dict(), preprocess, float32_bytes, tuple(results))


def convert_mode(
    export_dir: Path,
    mode: str,
    samples: np.ndarray | None,
    check_samples: np.ndarray,
    reference: np.ndarray,
    is_classifier: bool,
    synthetic: bool,
    verbose: bool,
) -> ModeConversion:
    """Convert once for a mode and measure its fidelity against the source outputs."""
    start = time.perf_counter()
    content = convert_saved_model(export_dir, mode, samples if mode == "int8" else None, verbose)
    seconds = time.perf_counter() - start
    converted = TFLiteModel(content)
    fidelity = compare_outputs(reference, converted.predict(check_samples), is_classifier, synthetic)
    return ModeConversion(mode, content, seconds, converted.inputs, converted.outputs, fidelity)


def write_bundle(
    path: Path,
    name: str,
    target: Target,
    conversion: ModeConversion,
    preprocess: Preprocess | None,
    labels: list[str] | None,
    is_classifier: bool,
    source: dict[str, Any],
    force: bool,
) -> None:
    """Write one bundle folder atomically: staged next to its final place, then renamed."""
    with staged_folder(path, force) as staging:
        (staging / MODEL_NAME).write_bytes(conversion.content)
        if labels:
            (staging / LABELS_NAME).write_text("\n".join(labels) + "\n", encoding="utf-8")
        files = {p.name: file_entry(p) for p in sorted(staging.iterdir())}
        manifest = Manifest(
            name=name,
            created_by=f"edgekit {__version__}",
            target=target.to_dict(),
            quantization=conversion.mode,
            inputs=conversion.inputs,
            outputs=conversion.outputs,
            files=files,
            preprocess=preprocess,
            task="classification" if is_classifier else "generic",
            labels=LABELS_NAME if labels else None,
            source=source,
            conversion={"seconds": round(conversion.seconds, 3), "fidelity": conversion.fidelity.to_dict()},
        )
        (staging / MANIFEST_NAME).write_text(manifest.to_json(), encoding="utf-8")
