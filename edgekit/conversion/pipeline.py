"""`convert()`: the whole laptop-side workflow, top to bottom.

load → preprocessing contract → calibration samples → verification set (--eval-data, else the
calibration inputs) → one conversion per mode, each judged against the thresholds → (int8 layers kept
in float; --quantize auto's measured choice) → refuse, writing nothing, when a bundle would miss the
thresholds → one bundle per target (staged, then renamed into place) → optional `.tar.gz`.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from dataclasses import dataclass, field, replace
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
from edgekit.conversion.accuracy import DEFAULT_EVAL_SIZE, Accuracy, load_eval_data
from edgekit.conversion.calibration import DEFAULT_CALIBRATION_SIZE, load_samples
from edgekit.conversion.debug import DebugReport, KeepFloatResult, MixedModel, QuantizationDebug, debug_samples
from edgekit.conversion.load import SourceModel, load_model
from edgekit.conversion.prune import PruneSettings, PruningReport, compare_with_unpruned, prune_source
from edgekit.conversion.quantize import (
    CALIBRATED_MODES,
    INT16X8_NOTE,
    QUANT_MODES,
    convert_saved_model,
    saved_model_dir,
)
from edgekit.conversion.selection import Candidate, Trial, choose_mode, machine_threads, measure_latencies
from edgekit.conversion.verify import (
    DEFAULT_MIN_AGREEMENT,
    DEFAULT_MIN_COSINE,
    Fidelity,
    TFLiteModel,
    Thresholds,
    Verdict,
    VerificationSet,
    judge,
    require_labels_for_accuracy_gate,
    verification_set,
)
from edgekit.errors import CheckFailed, ConversionError, FidelityError, InputError, UsageError
from edgekit.targets import Target, get_target, list_targets

Progress = Callable[[str, int, int], None]
SYNTHETIC_SAMPLES = 32
AUTO = "auto"
# --quantize auto with labelled --eval-data and no --max-accuracy-drop: a mode may cost at most 1 point.
AUTO_MAX_ACCURACY_DROP = 1.0


@dataclass(frozen=True)
class ModeConversion:
    """One `.tflite` conversion, shared by every target that wants this mode."""

    mode: str
    content: bytes
    seconds: float
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    fidelity: Fidelity
    verdict: Verdict | None = None
    keep_float: tuple[str, ...] = ()  # int8 with these layers (and their readers) in float
    float_layers: tuple[str, ...] = ()

    @property
    def accuracy(self) -> Accuracy | None:
        return self.verdict.accuracy if self.verdict else None

    @property
    def problems(self) -> tuple[str, ...]:
        return self.verdict.problems if self.verdict else ()


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
    accuracy: Accuracy | None = None
    problems: tuple[str, ...] = ()  # thresholds missed (written anyway only with --allow-degraded)
    keep_float: tuple[str, ...] = ()
    float_layers: tuple[str, ...] = ()
    candidates: tuple[Candidate, ...] | None = None  # --quantize auto: every mode considered

    @property
    def degraded(self) -> bool:
        return bool(self.problems)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "arch": self.arch,
            "mode": self.mode,
            "path": self.path,
            "archive": self.archive,
            "bytes": self.bytes,
            "archive_bytes": self.archive_bytes,
            "size_ratio": None if self.size_ratio is None else round(self.size_ratio, 4),
            "conversion_seconds": round(self.conversion_seconds, 3),
            "fidelity": self.fidelity.to_dict(),
            "accuracy": None if self.accuracy is None else self.accuracy.to_dict(),
            "agreement": self.fidelity.top1_agreement,
            "degraded": self.degraded,
            "problems": list(self.problems),
            "keep_float": list(self.keep_float),
            "float_layers": list(self.float_layers),
            "candidates": None if self.candidates is None else [c.to_dict() for c in self.candidates],
        }


@dataclass(frozen=True)
class ConversionReport:
    """The result of `edgekit convert`."""

    name: str
    source: dict[str, Any]
    preprocess: Preprocess | None
    float32_bytes: int | None
    bundles: tuple[BundleResult, ...] = field(default_factory=tuple)
    verification: dict[str, Any] = field(default_factory=dict)
    thresholds: Thresholds | None = None
    explain: DebugReport | None = None  # --explain: the int8 layer report
    keep_float: KeepFloatResult | None = None  # --keep-float / --auto-keep-float: mixed vs plain int8
    notes: tuple[str, ...] = ()
    pruning: PruningReport | None = None  # --prune / --prune-channels: what it did and bought

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": dict(self.source),
            "preprocess": self.preprocess.to_dict() if self.preprocess else None,
            "float32_bytes": self.float32_bytes,
            "verification": dict(self.verification),
            "thresholds": None if self.thresholds is None else self.thresholds.to_dict(),
            "bundles": [b.to_dict() for b in self.bundles],
            "keep_float": None if self.keep_float is None else self.keep_float.to_dict(),
            "explain": None if self.explain is None else self.explain.to_dict(),
            "notes": list(self.notes),
            "pruning": None if self.pruning is None else self.pruning.to_dict(),
        }


def parse_channels(values: Sequence[float] | None, default: float, channels: int, name: str) -> tuple[float, ...]:
    """One value for all channels or one per channel."""
    if not values:
        return (float(default),)
    if len(values) not in (1, channels):
        raise InputError(
            f"--{name} takes 1 or {channels} values for this model's {channels} channels, got {len(values)}"
        )
    if not all(math.isfinite(v) for v in values):
        raise InputError(f"--{name} values must be finite numbers, got {', '.join(map(str, values))}")
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
        raise UsageError(f"unknown quantization mode {mode!r} (known: {', '.join(QUANT_MODES)}, {AUTO})")
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
    eval_data: str | os.PathLike[str] | None = None,
    eval_size: int = DEFAULT_EVAL_SIZE,
    max_accuracy_drop: float | None = None,
    min_agreement: float = DEFAULT_MIN_AGREEMENT,
    min_cosine: float = DEFAULT_MIN_COSINE,
    allow_degraded: bool = False,
    keep_float: Sequence[str] = (),
    auto_keep_float: bool = False,
    explain: bool = False,
    prune: PruneSettings | None = None,
    finetune_data: str | os.PathLike[str] | None = None,
) -> ConversionReport:
    """Convert a trained model into one bundle per target.

    Every conversion is checked against its source (`min_agreement`, `min_cosine`, and with labelled
    `eval_data` the `max_accuracy_drop` in percentage points); a bundle that would miss them is refused
    with FidelityError/CheckFailed (exit 4) before anything is written, unless `allow_degraded`.
    `quantization="auto"` picks, per target, the fastest mode that passes, measured on this machine.
    `prune` prunes the Keras model before conversion (fine-tuned on `finetune_data` when given); the
    checks then compare each conversion with the pruned model, and `report.pruning` sets the pruned
    conversions beside the unpruned ones."""
    out_dir = Path(out)
    pruning_wanted = prune is not None and prune.active
    if prune is not None:
        prune.check()
    if finetune_data is not None and not pruning_wanted:
        raise UsageError("--finetune-data fine-tunes a pruned model: add --prune or --prune-channels")
    thresholds = Thresholds(min_agreement, min_cosine, max_accuracy_drop)
    chosen_targets = resolve_targets(targets, targets_dir)
    auto = quantization == AUTO
    plan = {} if auto else plan_modes(chosen_targets, quantization)
    source = load_model(model, unsafe=unsafe_load)
    if source.kind == "tflite":
        debugging = bool(keep_float or auto_keep_float or explain)
        plan = plan_existing_tflite(source, chosen_targets, quantization, debugging)
    bundle_name = name or Path(model).stem
    if not bundle_name or "/" in bundle_name or bundle_name.startswith("."):
        raise InputError(f"--name {bundle_name!r}: must be a plain file name")
    for target in chosen_targets:
        final = out_dir / f"{bundle_name}-{target.name}"
        for existing in (final, *([final.with_name(final.name + ARCHIVE_SUFFIX)] if archive else [])):
            if existing.exists() and not force:
                raise InputError(f"{existing}: already exists (use --force to overwrite)")

    preprocess = image_preprocess(source.input_shape, mean, std)
    float_input = TensorSpec("input", (1, *[int(d or 1) for d in source.input_shape[1:]]), "float32")
    classes = int(source.output_shape[-1]) if len(source.output_shape) == 2 and source.output_shape[-1] else None
    label_list = read_labels(labels, classes)
    is_classifier = classes is not None and classes > 1

    wanted = {m for t in chosen_targets for m in t.modes} if auto else set(plan.values())
    modes = sorted(wanted | {"float32"}, key=QUANT_MODES.index)
    if source.kind == "tflite":
        modes = [str(source.quantization)]
    samples = None
    if calibration is not None:
        samples = load_samples(calibration, float_input, preprocess, calibration_size)
    elif not auto and any(m in CALIBRATED_MODES for m in modes) and source.kind != "tflite":
        needing = next(m for m in modes if m in CALIBRATED_MODES)
        raise InputError(
            f"{needing} needs calibration data: pass --calibration (a folder of images, .npy or .npz); "
            "edgekit never calibrates on random data"
        )
    wants_mixed = bool(keep_float) or auto_keep_float
    if keep_float and auto_keep_float:
        raise UsageError("--keep-float names the layers, --auto-keep-float searches for them: use one")
    if (wants_mixed or explain) and "int8" not in modes:
        raise UsageError("--keep-float, --auto-keep-float and --explain apply to int8: choose -q int8 or auto")
    if (wants_mixed or explain) and samples is None:
        raise InputError("--keep-float, --auto-keep-float and --explain need --calibration data for int8")
    evaluation = None
    if eval_data is not None:
        evaluation = load_eval_data(eval_data, float_input, preprocess, label_list, eval_size)
    unpruned, pruning = source, None
    if pruning_wanted:
        source, pruning = prune_source(
            source, prune, float_input, preprocess, label_list, finetune_data, evaluation, progress, verbose, samples
        )
    checks = verification_set(source, float_input, preprocess, samples, evaluation, classes)
    if pruning is not None and checks.labels is not None:  # accuracy is lost against the user's model
        checks = replace(checks, accuracy_reference=unpruned.predict(checks.x))
    require_labels_for_accuracy_gate(thresholds, checks)
    if auto and checks.labels is not None and thresholds.max_accuracy_drop is None:
        thresholds = replace(thresholds, max_accuracy_drop=AUTO_MAX_ACCURACY_DROP)

    steps = len(modes) + len(chosen_targets) + (2 if wants_mixed or explain else 0) + (1 if auto else 0)
    steps += 1 if pruning is not None else 0
    done = 0

    def tick(label: str) -> None:
        nonlocal done
        done += 1
        if progress:
            progress(label, done, steps)

    conversions: dict[str, ModeConversion] = {}
    failures: dict[str, str] = {}  # --quantize auto: modes that could not be converted, and why
    debug_session = None
    int8_fails = False  # plain int8 misses the thresholds: what --auto-keep-float acts on
    if source.kind == "tflite":
        conversions[modes[0]] = existing_tflite(source, checks, thresholds)
        tick(f"checked {modes[0]}")
    else:
        with saved_model_dir(source, verbose) as export_dir:
            for mode in modes:
                if mode in CALIBRATED_MODES and samples is None:
                    failures[mode] = f"{mode} needs --calibration data"
                    continue
                try:
                    conversions[mode] = convert_mode(export_dir, mode, samples, checks, thresholds, verbose)
                except ConversionError as exc:
                    if not auto:
                        raise
                    failures[mode] = str(exc)
                tick(f"converted {mode}")
            int8 = conversions.get("int8")
            int8_fails = int8 is not None and not int8.verdict.passed
            needs_debugger = explain or bool(keep_float) or (auto_keep_float and int8_fails)
            if int8 is not None and needs_debugger:
                debug_session = QuantizationDebug(export_dir, samples, source.keras_model, verbose)
                tick("calibrated the quantization debugger")

    explained = None
    mixed = None
    if debug_session is not None:
        probe = debug_samples(checks.x)
        layers = debug_session.layer_errors(probe)
        tick("measured layer errors")
        if explain:
            plain = conversions["int8"]
            explained = DebugReport(
                str(model),
                len(probe),
                tuple(layers),
                MixedModel((), plain.content, plain.verdict),
                verification=checks.to_dict(),
                thresholds=thresholds,
            )
        if keep_float or (auto_keep_float and int8_fails):  # --explain alone never changes the bundle
            mixed = keep_layers_float(
                debug_session, layers, conversions["int8"], keep_float, checks, thresholds, lambda label: tick(label)
            )
    if auto_keep_float and mixed is None and "int8" in conversions:
        plain = conversions["int8"]
        baseline = MixedModel((), plain.content, plain.verdict)
        mixed = KeepFloatResult("auto", baseline, baseline)  # int8 passes as it is: nothing to keep in float
    if mixed is not None:
        conversions["int8"] = mixed_conversion(conversions["int8"], mixed, checks, thresholds)

    candidates: dict[str, tuple[Candidate, ...]] = {}
    if auto:
        plan, candidates = choose_modes(
            chosen_targets, conversions, failures, checks, bundle_name, preprocess, is_classifier, allow_degraded
        )
        tick("timed every mode")
    refuse_failing(chosen_targets, plan, conversions, candidates, allow_degraded)
    if pruning is not None:
        bundled = sorted(set(plan.values()), key=QUANT_MODES.index)
        threads = {plan[t.name]: machine_threads(t) for t in reversed(chosen_targets)}
        pruned_models = {mode: conversions[mode].content for mode in bundled}
        pruning = compare_with_unpruned(pruning, unpruned, pruned_models, samples, evaluation, threads, verbose)
        tick("measured pruned vs unpruned")

    float32_bytes = len(conversions["float32"].content) if "float32" in conversions else None
    results = []
    for target in chosen_targets:
        mode = plan[target.name]
        conversion = conversions[mode]
        manifest_source = {**source.to_dict(), **({"pruning": pruning.summary()} if pruning else {})}
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
                size_ratio=None if float32_bytes is None else len(conversion.content) / float32_bytes,
                conversion_seconds=conversion.seconds,
                fidelity=conversion.fidelity,
                accuracy=conversion.accuracy,
                problems=conversion.problems,
                keep_float=conversion.keep_float,
                float_layers=conversion.float_layers,
                candidates=candidates.get(target.name) if auto else None,
            )
        )
        tick(f"bundled {target.name}")
    return ConversionReport(
        bundle_name,
        source.to_dict(),
        preprocess,
        float32_bytes,
        tuple(results),
        verification=checks.to_dict(),
        thresholds=thresholds,
        explain=explained,
        keep_float=mixed,
        notes=conversion_notes(source, checks, results, candidates),
        pruning=pruning,
    )


def convert_mode(
    export_dir: Path,
    mode: str,
    samples: np.ndarray | None,
    checks: VerificationSet,
    thresholds: Thresholds,
    verbose: bool,
) -> ModeConversion:
    """Convert once for a mode and judge it against the source outputs (and labels) and the thresholds."""
    start = time.perf_counter()
    content = convert_saved_model(export_dir, mode, samples if mode in CALIBRATED_MODES else None, verbose)
    return checked_conversion(mode, content, time.perf_counter() - start, checks, thresholds)


def checked_conversion(
    mode: str, content: bytes, seconds: float, checks: VerificationSet, thresholds: Thresholds
) -> ModeConversion:
    """Run a converted model on the verification set with the interpreter `edgekit run` uses."""
    converted = TFLiteModel(content, mode=mode)
    verdict = judge(converted.predict(checks.x), checks, thresholds)
    return ModeConversion(mode, content, seconds, converted.inputs, converted.outputs, verdict.fidelity, verdict)


def plan_existing_tflite(
    source: SourceModel, targets: Sequence[Target], quantization: str | None, wants_debugging: bool
) -> dict[str, str]:
    """An existing `.tflite` is bundled as it is, in the mode it was converted with: re-quantizing an
    already-converted model is out of scope (convert from the Keras or SavedModel source instead)."""
    mode = str(source.quantization)
    if quantization not in (None, mode):
        raise InputError(
            f"{source.path}: is already a {mode} .tflite; edgekit bundles an existing .tflite as it is and does "
            f"not re-quantize one (out of scope): convert the Keras or SavedModel source with -q {quantization}"
        )
    if wants_debugging:
        raise InputError(f"{source.path}: --keep-float, --auto-keep-float and --explain need the source model")
    return plan_modes(targets, mode)


def existing_tflite(source: SourceModel, checks: VerificationSet, thresholds: Thresholds) -> ModeConversion:
    """An existing `.tflite`, checked against itself through a fresh interpreter (nothing else to compare
    with) and, with labelled --eval-data, for accuracy."""
    assert source.tflite_content is not None
    return checked_conversion(str(source.quantization), source.tflite_content, 0.0, checks, thresholds)


def keep_layers_float(
    session: QuantizationDebug,
    layers: Sequence[Any],
    int8: ModeConversion,
    keep_float: Sequence[str],
    checks: VerificationSet,
    thresholds: Thresholds,
    progress: Callable[[str], None],
) -> KeepFloatResult:
    """--keep-float LAYER...: exactly those layers in float; --auto-keep-float: the search, worst first."""
    from edgekit.conversion.debug import float_layers, resolve_keep_float, search_keep_float
    from edgekit.conversion.verify import judge_content

    def judged(content: bytes) -> Verdict:
        return judge_content(content, checks, thresholds, "int8")

    baseline = MixedModel((), int8.content, int8.verdict)
    if not keep_float:
        return search_keep_float(session, layers, judged, baseline, progress=progress)
    names, tensors = resolve_keep_float(keep_float, layers)
    content = session.quantize(tensors)
    progress(f"kept {len(names)} layer(s) in float")
    chosen = MixedModel(names, content, judged(content), float_layers(tensors, layers))
    return KeepFloatResult("requested", chosen, baseline)


def mixed_conversion(
    int8: ModeConversion, mixed: KeepFloatResult, checks: VerificationSet, thresholds: Thresholds
) -> ModeConversion:
    """The int8 conversion with the mixed model in its place (unchanged when nothing is kept in float)."""
    if not mixed.chosen.layers:
        return int8
    checked = checked_conversion("int8", mixed.chosen.content, int8.seconds, checks, thresholds)
    return replace(checked, keep_float=mixed.chosen.layers, float_layers=mixed.chosen.float_layers)


def choose_modes(
    targets: Sequence[Target],
    conversions: dict[str, ModeConversion],
    failures: dict[str, str],
    checks: VerificationSet,
    name: str,
    preprocess: Preprocess | None,
    is_classifier: bool,
    allow_degraded: bool,
) -> tuple[dict[str, str | None], dict[str, tuple[Candidate, ...]]]:
    """--quantize auto: time every converted mode once per thread count (through real bundles and the
    device's Session), then choose per target."""
    trials = {m: Trial(m, len(c.content), c.verdict) for m, c in conversions.items()}
    trials.update({m: Trial(m, None, None, failure) for m, failure in failures.items()})
    with tempfile.TemporaryDirectory(prefix="edgekit-auto-") as tmp:
        bundles = {}
        for mode, conversion in conversions.items():
            bundles[mode] = Path(tmp) / mode
            write_bundle(bundles[mode], name, targets[0], conversion, preprocess, None, is_classifier, {}, False)
        latencies = measure_latencies(bundles, [machine_threads(t) for t in targets], checks.x[0])
    plan: dict[str, str | None] = {}
    candidates = {}
    for target in targets:
        plan[target.name], candidates[target.name] = choose_mode(target, trials, latencies, allow_degraded)
    return plan, candidates


def refuse_failing(
    targets: Sequence[Target],
    plan: dict[str, Any],
    conversions: dict[str, ModeConversion],
    candidates: dict[str, tuple[Candidate, ...]],
    allow_degraded: bool,
) -> None:
    """Nothing is written when a bundle would miss the thresholds, unless --allow-degraded."""
    for target in targets:
        mode = plan.get(target.name)
        if mode is None:
            reasons = "; ".join(f"{c.mode}: {c.reason}" for c in candidates.get(target.name, ()))
            raise CheckFailed(
                f"--quantize auto: no mode passes the checks for target {target.name} ({reasons}); nothing written "
                "(--allow-degraded writes the most faithful one anyway)"
            )
    if allow_degraded:
        return
    for mode in dict.fromkeys(plan[t.name] for t in targets):
        conversion = conversions[mode]
        if conversion.problems:
            users = ", ".join(t.name for t in targets if plan[t.name] == mode)
            kind = FidelityError if any("--max-accuracy-drop" not in p for p in conversion.problems) else CheckFailed
            raise kind(
                f"{mode} conversion for {users} fails the checks: {'; '.join(conversion.problems)}; nothing written "
                "(--allow-degraded writes it anyway; edgekit debug shows which layers lose the accuracy)"
            )


def conversion_notes(
    source: SourceModel,
    checks: VerificationSet,
    results: Sequence[BundleResult],
    candidates: dict[str, tuple[Candidate, ...]],
) -> tuple[str, ...]:
    """What a reader of the report should know that the numbers do not say."""
    notes = []
    if checks.synthetic:
        notes.append(
            "fidelity measured on random inputs (no --calibration or --eval-data): cosine only, top-1 agreement "
            "is reported but not judged"
        )
    if source.kind == "tflite":
        notes.append(
            f"existing {source.quantization} .tflite bundled as it is; its fidelity is checked against itself "
            "(nothing else to compare with)"
        )
    modes = {b.mode for b in results} | {c.mode for group in candidates.values() for c in group}
    if "int16x8" in modes:
        notes.append(INT16X8_NOTE)
    if any(b.degraded for b in results):
        notes.append("--allow-degraded: some bundles miss the thresholds (see 'problems'); their manifests say so")
    return tuple(notes)


def conversion_record(conversion: ModeConversion) -> dict[str, Any]:
    """The manifest's `conversion` entry: how the model was made and how faithful it is."""
    record: dict[str, Any] = {"seconds": round(conversion.seconds, 3), "fidelity": conversion.fidelity.to_dict()}
    if conversion.accuracy is not None:
        record["accuracy"] = conversion.accuracy.to_dict()
    if conversion.keep_float:
        record["keep_float"] = list(conversion.keep_float)
        record["float_layers"] = list(conversion.float_layers)
    if conversion.problems:
        record["degraded"] = True
        record["problems"] = list(conversion.problems)
    if conversion.mode == "int16x8":
        record["note"] = INT16X8_NOTE
    return record


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
            conversion=conversion_record(conversion),
        )
        (staging / MANIFEST_NAME).write_text(manifest.to_json(), encoding="utf-8")
