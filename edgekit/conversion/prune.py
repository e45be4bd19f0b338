"""Magnitude pruning on Keras 3 (smaller archives), and the pruning step of `convert`.

Zeroing the smallest weights of Conv/Dense kernels does not make a CPU faster (prune_channels.py
does that); it makes the bundle's `.tar.gz` smaller: the zeros survive batch-norm folding and
per-channel int8 quantization exactly (0 x scale = 0), and gzip codes them in about a bit each.
With labelled data the sparsity grows along a polynomial schedule while the model fine-tunes, and
the mask is re-applied after every batch, so the optimizer can never bring a pruned weight back.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from edgekit.bundle import Preprocess, TensorSpec
from edgekit.conversion.finetune import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_EPOCHS,
    DEFAULT_LEARNING_RATE,
    FineTuning,
    LabelledData,
    fine_tune,
    load_labelled,
    top1_accuracy,
)
from edgekit.conversion.load import SourceModel
from edgekit.conversion.prune_channels import DEFAULT_MULTIPLE, ChannelPruning, prune_channels
from edgekit.conversion.quiet import import_keras
from edgekit.errors import InputError, UsageError

Progress = Callable[[str, int, int], None]
# Kernels smaller than this save a few hundred bytes at most, and tend to be the sensitive ones.
MIN_PRUNABLE_WEIGHTS = 1024
SCHEDULE_POWER = 3  # the cubic schedule of Zhu & Gupta (2017): prune fast early, gently near the target
RAMP_FRACTION = 2 / 3  # reach the target after two thirds of fine-tuning, recover during the rest
MASK_UPDATES = 10  # how many times the mask grows on the way to the target
COMPENSATION_SAMPLES = 256  # inputs to average the activations of removed channels over
NORMS = ("l1", "l2")
# Blocks of 4 input channels compress better than single weights at the same sparsity (digits int8,
# 50 %: archive -36 % instead of -27 %) and, fine-tuned, cost no more accuracy; one-shot they cost
# more (97.2 % instead of 98.9 %), so single weights stay the default without training data.
FINETUNED_BLOCK = 4
WEIGHT_OPS = {"CONV_2D": 1, "DEPTHWISE_CONV_2D": 1, "FULLY_CONNECTED": 1, "TRANSPOSE_CONV": 1, "CONV_3D": 1}


@dataclass(frozen=True)
class LayerSparsity:
    """The share of zeros one kernel reached, or why it was left dense."""

    name: str
    kind: str
    weights: int
    sparsity: float
    skipped: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "weights": self.weights,
            "sparsity": round(self.sparsity, 4),
            "skipped": self.skipped,
        }


@dataclass(frozen=True)
class MagnitudePruning:
    """Magnitude pruning as done: target, block size, and the sparsity each layer reached."""

    target: float
    block: int
    layers: tuple[LayerSparsity, ...]

    @property
    def sparsity(self) -> float:
        """Share of zeros over the pruned kernels."""
        pruned = [layer for layer in self.layers if layer.skipped is None]
        total = sum(layer.weights for layer in pruned)
        return sum(layer.sparsity * layer.weights for layer in pruned) / total if total else 0.0

    @property
    def model_sparsity(self) -> float:
        """Share of zeros over every Conv/Dense kernel, skipped ones included."""
        total = sum(layer.weights for layer in self.layers)
        return sum(layer.sparsity * layer.weights for layer in self.layers) / total if total else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "block": self.block,
            "sparsity": round(self.sparsity, 4),
            "model_sparsity": round(self.model_sparsity, 4),
            "layers": [layer.to_dict() for layer in self.layers],
        }


def kernel_layers(model: Any) -> list[Any]:
    """Conv and Dense layers with a kernel, in graph order (nested models included)."""
    keras = import_keras()
    kinds = (
        keras.layers.Conv1D,
        keras.layers.Conv2D,
        keras.layers.Conv3D,
        keras.layers.Conv1DTranspose,
        keras.layers.Conv2DTranspose,
        keras.layers.Conv3DTranspose,
        keras.layers.DepthwiseConv1D,
        keras.layers.DepthwiseConv2D,
        keras.layers.Dense,
    )
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found.extend(kernel_layers(layer))
        elif isinstance(layer, kinds) and getattr(layer, "kernel", None) is not None:
            found.append(layer)
    return found


def input_axis(layer: Any) -> int:
    """The kernel axis of input channels: TFLite stores it innermost (OHWI, and (out, in) for
    fully-connected), so blocks along it become contiguous runs of zero bytes."""
    return -1 if "Transpose" in type(layer).__name__ else -2


def magnitude_mask(kernel: np.ndarray, sparsity: float, block: int = 1, axis: int = -2) -> np.ndarray:
    """1/0 mask zeroing the `sparsity` share of weights with the smallest magnitude, in blocks of
    `block` consecutive input channels ranked by their mean magnitude (1 = single weights)."""
    moved = np.moveaxis(np.abs(kernel.astype(np.float64)), axis, -1)
    channels = moved.shape[-1]
    block = max(1, min(block, channels))
    pad = (-channels) % block
    if pad:
        moved = np.concatenate([moved, np.full((*moved.shape[:-1], pad), np.nan)], axis=-1)
    blocks = moved.reshape(-1, block)
    sizes = block - np.isnan(blocks).sum(axis=1)
    scores = np.nansum(blocks, axis=1) / sizes
    order = np.argsort(scores, kind="stable")
    wanted = int(round(sparsity * kernel.size))
    cumulative = np.concatenate([[0], np.cumsum(sizes[order])])
    count = int(np.abs(cumulative - wanted).argmin())  # blocks whose sizes sum closest to the target
    keep = np.ones(len(blocks), dtype=bool)
    keep[order[:count]] = False
    mask = np.repeat(keep, block).reshape(moved.shape)[..., :channels]
    return np.moveaxis(mask, -1, axis).astype(kernel.dtype)


def plan_magnitude(
    model: Any, skip: Sequence[str] = (), include: Sequence[str] = (), min_weights: int = MIN_PRUNABLE_WEIGHTS
) -> list[tuple[Any, str | None]]:
    """Every Conv/Dense layer with the reason it stays dense (None: it is pruned). The first and
    the last layer (the stem and the classifier) are the most sensitive and stay dense, and so do
    small kernels, unless named in `include`."""
    layers = kernel_layers(model)
    if not layers:
        raise InputError("--prune: the model has no Conv or Dense layers to prune")
    names = [layer.name for layer in layers]
    for option, wanted in (("--prune-skip", skip), ("--prune-include", include)):
        unknown = [name for name in wanted if name not in names]
        if unknown:
            raise InputError(
                f"{option} {unknown[0]!r}: no Conv or Dense layer of that name (layers: {', '.join(names)})"
            )
    plan = []
    for index, layer in enumerate(layers):
        size = int(np.prod(layer.kernel.shape))
        if layer.name in skip:
            reason = "--prune-skip"
        elif layer.name in include:
            reason = None
        elif index == 0:
            reason = "first layer"
        elif index == len(layers) - 1:
            reason = "last layer"
        elif size < min_weights:
            reason = f"small (< {min_weights} weights)"
        else:
            reason = None
        plan.append((layer, reason))
    if all(reason is not None for _, reason in plan):
        raise InputError(
            "--prune: every Conv/Dense layer is skipped (first, last, small or --prune-skip); "
            "name layers to prune with --prune-include"
        )
    return plan


def apply_sparsity(plan: list[tuple[Any, str | None]], sparsity: float, block: int) -> dict[str, np.ndarray]:
    """Zero the weights of every planned layer down to `sparsity`; returns the masks by layer name."""
    masks = {}
    for layer, reason in plan:
        if reason is not None:
            continue
        kernel = np.asarray(layer.kernel.numpy())
        mask = magnitude_mask(kernel, sparsity, block, input_axis(layer))
        layer.kernel.assign(kernel * mask)
        masks[layer.name] = mask
    return masks


def measured_sparsity(plan: list[tuple[Any, str | None]], target: float, block: int) -> MagnitudePruning:
    """What the kernels hold now (not what was asked for)."""
    layers = []
    for layer, reason in plan:
        kernel = np.asarray(layer.kernel.numpy())
        layers.append(
            LayerSparsity(layer.name, type(layer).__name__, int(kernel.size), float((kernel == 0).mean()), reason)
        )
    return MagnitudePruning(target, block, tuple(layers))


def polynomial_sparsity(step: int, ramp_steps: int, target: float, power: int = SCHEDULE_POWER) -> float:
    """Sparsity at `step` of a schedule that starts at 0 and reaches `target` at `ramp_steps`."""
    if ramp_steps <= 0 or step >= ramp_steps:
        return target
    return target * (1.0 - (1.0 - step / ramp_steps) ** power)


def pruning_callback(plan: list[tuple[Any, str | None]], target: float, block: int, total_steps: int) -> Any:
    """A Keras callback that grows the masks along the polynomial schedule and re-applies them after
    every training batch, ending at exactly `target`."""
    keras = import_keras()
    ramp = max(1, int(total_steps * RAMP_FRACTION))
    every = max(1, ramp // MASK_UPDATES)
    layers = [layer for layer, reason in plan if reason is None]

    class MagnitudePruningCallback(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.step = 0
            self.masks: dict[str, Any] = {}

        def _update(self, sparsity: float) -> None:
            masks = apply_sparsity(plan, sparsity, block)
            self.masks = {name: keras.ops.convert_to_tensor(mask) for name, mask in masks.items()}

        def _reapply(self) -> None:
            for layer in layers:
                layer.kernel.assign(layer.kernel * self.masks[layer.name])

        def on_train_begin(self, logs: dict | None = None) -> None:
            self._update(polynomial_sparsity(0, ramp, target))

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            self.step += 1
            if self.step % every == 0 and self.step <= ramp:
                self._update(polynomial_sparsity(self.step, ramp, target))
            else:
                self._reapply()

        def on_train_end(self, logs: dict | None = None) -> None:
            self._update(target)

    return MagnitudePruningCallback()


@dataclass(frozen=True)
class PruneSettings:
    """What to prune and how: `sparsity` (magnitude), `channels` (structured), or both."""

    sparsity: float | None = None
    channels: float | None = None
    skip: tuple[str, ...] = ()
    include: tuple[str, ...] = ()
    block: int | None = None  # None: FINETUNED_BLOCK with fine-tuning data, single weights without
    norm: str = "l1"
    multiple: int = DEFAULT_MULTIPLE  # channel counts rounded to multiples of this
    epochs: int = DEFAULT_EPOCHS
    learning_rate: float = DEFAULT_LEARNING_RATE

    @property
    def active(self) -> bool:
        return self.sparsity is not None or self.channels is not None

    def check(self) -> None:
        if self.sparsity is not None and not 0.0 < self.sparsity < 1.0:
            raise InputError(f"--prune takes a share of weights to zero, between 0 and 1 (got {self.sparsity})")
        if self.channels is not None and not 0.0 < self.channels < 1.0:
            raise InputError(
                f"--prune-channels takes a share of filters to remove, between 0 and 1 (got {self.channels})"
            )
        if self.block is not None and self.block < 1:
            raise InputError(f"--prune-block must be at least 1, got {self.block}")
        if self.multiple < 1:
            raise InputError(f"--prune-channels-multiple must be at least 1, got {self.multiple}")
        if self.norm not in NORMS:
            raise InputError(f"--prune-norm must be one of {', '.join(NORMS)}, got {self.norm!r}")
        if self.epochs < 1:
            raise InputError(f"--finetune-epochs must be at least 1, got {self.epochs}")
        if self.learning_rate <= 0:
            raise InputError(f"--finetune-lr must be positive, got {self.learning_rate}")
        if self.skip and not self.active:
            raise UsageError("--prune-skip needs --prune or --prune-channels")
        if self.include and self.sparsity is None:
            raise UsageError("--prune-include needs --prune")
        both = set(self.skip) & set(self.include)
        if both:
            raise UsageError(f"layer {sorted(both)[0]!r} is both in --prune-skip and --prune-include")

    def to_dict(self) -> dict[str, Any]:
        return {
            "sparsity": self.sparsity,
            "channels": self.channels,
            "skip": list(self.skip),
            "include": list(self.include),
            "block": self.block,
            "norm": self.norm,
            "multiple": self.multiple,
            "epochs": self.epochs,
            "learning_rate": self.learning_rate,
        }


@dataclass(frozen=True)
class ConvertedFigures:
    """One converted model, measured: work, size, zeros, accuracy and speed on this machine."""

    macs: int
    tflite_bytes: int
    gzip_bytes: int
    weight_sparsity: float
    accuracy: float | None
    p50_ms: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "macs": self.macs,
            "tflite_bytes": self.tflite_bytes,
            "gzip_bytes": self.gzip_bytes,
            "weight_sparsity": round(self.weight_sparsity, 4),
            "accuracy": None if self.accuracy is None else round(self.accuracy, 4),
            "p50_ms": round(self.p50_ms, 4),
        }


@dataclass(frozen=True)
class PrunedVsUnpruned:
    """The same conversion mode of the unpruned and the pruned model, side by side (same run,
    same threads, latency measured interleaved on this machine)."""

    mode: str
    threads: int
    unpruned: ConvertedFigures
    pruned: ConvertedFigures

    @property
    def speedup(self) -> float:
        return self.unpruned.p50_ms / self.pruned.p50_ms if self.pruned.p50_ms else 0.0

    @property
    def gzip_saving(self) -> float:
        return 1.0 - self.pruned.gzip_bytes / self.unpruned.gzip_bytes

    @property
    def macs_ratio(self) -> float:
        return self.pruned.macs / self.unpruned.macs if self.unpruned.macs else 1.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "threads": self.threads,
            "unpruned": self.unpruned.to_dict(),
            "pruned": self.pruned.to_dict(),
            "macs_ratio": round(self.macs_ratio, 4),
            "gzip_saving": round(self.gzip_saving, 4),
            "speedup": round(self.speedup, 3),
        }


@dataclass(frozen=True)
class PruningReport:
    """What pruning did to the model, and (after conversion) what it bought per mode."""

    settings: PruneSettings
    magnitude: MagnitudePruning | None
    channels: ChannelPruning | None
    fine_tuning: FineTuning | None
    float_accuracy: dict[str, float] | None = None
    comparisons: tuple[PrunedVsUnpruned, ...] = ()

    @property
    def method(self) -> str:
        return "fine-tuned" if self.fine_tuning is not None else "one-shot"

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "settings": self.settings.to_dict(),
            "magnitude": None if self.magnitude is None else self.magnitude.to_dict(),
            "channels": None if self.channels is None else self.channels.to_dict(),
            "fine_tuning": None if self.fine_tuning is None else self.fine_tuning.to_dict(),
            "float_accuracy": None
            if self.float_accuracy is None
            else {k: round(v, 4) for k, v in self.float_accuracy.items()},
            "comparisons": [c.to_dict() for c in self.comparisons],
        }

    def summary(self) -> dict[str, Any]:
        """The few facts a bundle's manifest keeps about how its model was pruned."""
        data: dict[str, Any] = {"method": self.method}
        if self.magnitude is not None:
            data["sparsity"] = round(self.magnitude.sparsity, 4)
            data["block"] = self.magnitude.block
        if self.channels is not None:
            data["channels_removed"] = round(self.channels.removed_share, 4)
        if self.fine_tuning is not None:
            data["finetune_epochs"] = self.fine_tuning.epochs
        return data


def keras_predictor(model: Any) -> Callable[[np.ndarray], np.ndarray]:
    def predict(batch: np.ndarray) -> np.ndarray:
        return np.asarray(model(batch, training=False))

    return predict


def copy_model(model: Any) -> Any:
    keras = import_keras()
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def prune_model(
    model: Any,
    settings: PruneSettings,
    train: LabelledData | None = None,
    evaluation: LabelledData | None = None,
    progress: Progress | None = None,
    verbose: bool = False,
    samples: np.ndarray | None = None,
) -> tuple[Any, PruningReport]:
    """Prune a Keras model: channels first (a narrower model), then magnitude; fine-tune when
    `train` is given, else one-shot. The input model is left untouched. `samples` (model inputs, the
    calibration data in `convert`) let channel pruning keep each layer's mean output."""
    settings.check()
    accuracy: dict[str, float] = {}
    if evaluation is not None:
        accuracy["unpruned"] = top1_accuracy(keras_predictor(model), evaluation)
    channels = None
    if settings.channels is not None:
        if samples is None and train is not None:
            samples = train.x[: len(train) : max(1, len(train) // COMPENSATION_SAMPLES)]
        samples = None if samples is None else samples[:COMPENSATION_SAMPLES]
        model, channels = prune_channels(
            model, settings.channels, settings.norm, settings.skip, settings.multiple, samples
        )
    else:
        model = copy_model(model)
    plan = plan_magnitude(model, settings.skip, settings.include) if settings.sparsity is not None else []
    block = settings.block or (FINETUNED_BLOCK if train is not None else 1)
    tuning = None
    if train is None:
        if plan:
            apply_sparsity(plan, settings.sparsity, block)
        if evaluation is not None:
            accuracy["one_shot"] = top1_accuracy(keras_predictor(model), evaluation)
    else:
        if evaluation is not None:
            one_shot = copy_model(model)
            if plan:
                apply_sparsity(plan_magnitude(one_shot, settings.skip, settings.include), settings.sparsity, block)
            accuracy["one_shot"] = top1_accuracy(keras_predictor(one_shot), evaluation)
            del one_shot
        callbacks = []
        if plan:
            steps = -(-len(train) // DEFAULT_BATCH_SIZE) * settings.epochs
            callbacks.append(pruning_callback(plan, settings.sparsity, block, steps))
        tuning = fine_tune(
            model,
            train,
            settings.epochs,
            settings.learning_rate,
            callbacks=callbacks,
            progress=progress,
            verbose=verbose,
        )
        if evaluation is not None:
            accuracy["fine_tuned"] = top1_accuracy(keras_predictor(model), evaluation)
    magnitude = measured_sparsity(plan, settings.sparsity, block) if plan else None
    report = PruningReport(settings, magnitude, channels, tuning, accuracy or None)
    return model, report


def labelled(evaluation: Any) -> LabelledData | None:
    """`--eval-data` as loaded by the pipeline → labelled data, or None when it has no labels."""
    if evaluation is None or getattr(evaluation, "y", None) is None:
        return None
    if isinstance(evaluation, LabelledData):
        return evaluation
    return LabelledData(evaluation.x, evaluation.y, str(getattr(evaluation, "path", "--eval-data")))


def prune_source(
    source: SourceModel,
    settings: PruneSettings,
    float_input: TensorSpec,
    preprocess: Preprocess | None,
    labels: Sequence[str] | None = None,
    finetune_data: str | os.PathLike[str] | None = None,
    evaluation: Any = None,
    progress: Progress | None = None,
    verbose: bool = False,
    samples: np.ndarray | None = None,
) -> tuple[SourceModel, PruningReport]:
    """The pruning step of `convert`: a loaded source model → a pruned one, ready to convert."""
    if source.kind not in ("keras", "h5"):
        raise InputError(
            f"{source.path}: pruning rewrites Keras models; give the .keras (or .h5) file, not a {source.kind}"
        )
    train = load_labelled(finetune_data, float_input, preprocess, labels) if finetune_data is not None else None
    model, report = prune_model(source.keras_model, settings, train, labelled(evaluation), progress, verbose, samples)
    pruned = dataclasses.replace(source, keras_model=model, predict_fn=keras_predictor(model))
    return pruned, report


def tflite_weight_sparsity(interpreter: Any) -> float:
    """Share of zeros in the weight tensors of the converted model's Conv/FC operators (following
    a DEQUANTIZE back to the stored float16 weights)."""
    ops = interpreter._get_ops_details()
    producer = {int(out): op for op in ops for out in op["outputs"]}
    zeros = total = 0
    for op in ops:
        slot = WEIGHT_OPS.get(op["op_name"])
        if slot is None or len(op["inputs"]) <= slot:
            continue
        index = int(op["inputs"][slot])
        source_op = producer.get(index)
        if source_op is not None and source_op["op_name"] == "DEQUANTIZE":
            index = int(source_op["inputs"][0])
        elif source_op is not None:
            continue  # weights computed at run time: not a stored tensor
        weights = interpreter.get_tensor(index)
        zeros += int((weights == 0).sum())
        total += int(weights.size)
    return zeros / total if total else 0.0


def interleaved_p50(contents: Sequence[bytes], threads: int, seconds: float = 1.5, min_runs: int = 20) -> list[float]:
    """Invoke p50 (ms) of each model, timed in alternating rounds so that a busy machine slows all
    of them alike; zeros as input, set once outside the timed region."""
    from edgekit.conversion.verify import TFLiteModel
    from edgekit.runtime.preprocess import quantize

    models = [TFLiteModel(content, threads=threads) for content in contents]
    for model in models:
        model.interpreter.set_tensor(model._in, quantize(np.zeros(model.input.shape, np.float32), model.input))
        for _ in range(3):
            model.interpreter.invoke()
    timings: list[list[int]] = [[] for _ in models]
    clock = time.perf_counter_ns
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or min(len(t) for t in timings) < min_runs:
        for model, series in zip(models, timings):
            invoke = model.interpreter.invoke
            for _ in range(5):
                start = clock()
                invoke()
                series.append(clock() - start)
        if min(len(t) for t in timings) >= 5000:
            break
    return [float(np.median(series)) / 1e6 for series in timings]


def measure_converted(path: Path, evaluation: LabelledData | None, p50_ms: float) -> ConvertedFigures:
    from edgekit.conversion.verify import TFLiteModel
    from edgekit.runtime.inspect_model import plain_interpreter
    from edgekit.runtime.macs import count_macs

    content = path.read_bytes()
    interpreter = plain_interpreter(path)
    interpreter.allocate_tensors()
    accuracy = None
    if evaluation is not None:
        accuracy = top1_accuracy(TFLiteModel(content).predict, evaluation)
    return ConvertedFigures(
        macs=count_macs(path),
        tflite_bytes=len(content),
        gzip_bytes=len(gzip.compress(content, compresslevel=9, mtime=0)),
        weight_sparsity=tflite_weight_sparsity(interpreter),
        accuracy=accuracy,
        p50_ms=p50_ms,
    )


def compare_converted(
    mode: str, unpruned: bytes, pruned: bytes, evaluation: LabelledData | None, threads: int
) -> PrunedVsUnpruned:
    """Measure the unpruned and the pruned conversion of one mode the same way, in the same run."""
    threads = max(1, min(threads, os.cpu_count() or 1))
    p50 = interleaved_p50([unpruned, pruned], threads)
    with tempfile.TemporaryDirectory(prefix="edgekit-prune-") as tmp:
        paths = [Path(tmp) / "unpruned.tflite", Path(tmp) / "pruned.tflite"]
        paths[0].write_bytes(unpruned)
        paths[1].write_bytes(pruned)
        before = measure_converted(paths[0], evaluation, p50[0])
        after = measure_converted(paths[1], evaluation, p50[1])
    return PrunedVsUnpruned(mode, threads, before, after)


def compare_with_unpruned(
    report: PruningReport,
    unpruned: SourceModel,
    pruned_models: dict[str, bytes],
    calibration: np.ndarray | None,
    evaluation: Any,
    threads: dict[str, int],
    verbose: bool = False,
) -> PruningReport:
    """Convert the unpruned model with the same settings for each mode and measure both."""
    from edgekit.conversion.quantize import CALIBRATED_MODES, convert_saved_model, saved_model_dir

    comparisons = []
    with saved_model_dir(unpruned, verbose) as export_dir:
        for mode, content in pruned_models.items():
            baseline = convert_saved_model(export_dir, mode, calibration if mode in CALIBRATED_MODES else None, verbose)
            comparisons.append(compare_converted(mode, baseline, content, labelled(evaluation), threads.get(mode, 1)))
    return dataclasses.replace(report, comparisons=tuple(comparisons))
