"""Magnitude pruning on Keras 3: smaller archives.

Zeroing the smallest weights of Conv/Dense kernels does not make a CPU faster (channels.py
does that); it makes the bundle's `.tar.gz` smaller: the zeros survive batch-norm folding and
per-channel int8 quantization exactly (0 x scale = 0), and gzip codes them in about a bit each.
With labelled data the sparsity grows along a polynomial schedule while the model fine-tunes, and
the mask is re-applied after every batch, so the optimizer can never bring a pruned weight back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from edgekit.conversion.quiet import import_keras
from edgekit.errors import InputError

# Kernels smaller than this save a few hundred bytes at most, and tend to be the sensitive ones.
MIN_PRUNABLE_WEIGHTS = 1024
SCHEDULE_POWER = 3  # the cubic schedule of Zhu & Gupta (2017): prune fast early, gently near the target
RAMP_FRACTION = 2 / 3  # reach the target after two thirds of fine-tuning, recover during the rest
MASK_UPDATES = 10  # how many times the mask grows on the way to the target
# Blocks of 4 input channels compress better than single weights at the same sparsity (digits int8,
# 50 %: archive -36 % instead of -27 %) and, fine-tuned, cost no more accuracy; one-shot they cost
# more (97.2 % instead of 98.9 %), so single weights stay the default without training data.
FINETUNED_BLOCK = 4


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
