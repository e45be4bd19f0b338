"""Structured channel pruning on Keras 3: remove the weakest filters of Conv layers and rebuild a
narrower model, because fewer channels (unlike zeros) make every CPU kernel do less work.

Plan (channel_graph.py), then apply: clone the model with fewer filters per pruned Conv and copy the
kept slices of every weight, consumers (Conv, Dense, depthwise, batch norm) included.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from edgekit import defaults
from edgekit.conversion.prune.channel_graph import (
    CONVS,
    DEPTHWISE,
    ChannelGraph,
    ChannelPlan,
    Channels,
    plan_channels,
)
from edgekit.conversion.quiet import import_keras
from edgekit.conversion.recipe import check_pruning
from edgekit.errors import InputError


@dataclass(frozen=True)
class LayerChannels:
    """One Conv layer's filters before and after, or why it kept them all."""

    name: str
    filters: int
    kept: int
    tied_with: tuple[str, ...] = ()
    kept_all_because: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "filters": self.filters,
            "kept": self.kept,
            "removed": self.filters - self.kept,
            "tied_with": list(self.tied_with),
            "kept_all_because": self.kept_all_because,
        }


@dataclass(frozen=True)
class ChannelPruning:
    """Channel pruning as done, per Conv layer, with the parameter counts before and after."""

    ratio: float
    norm: str
    layers: tuple[LayerChannels, ...]
    params_before: int
    params_after: int
    compensated: tuple[str, ...] = ()  # layers whose bias took over the removed channels' mean

    @property
    def removed_share(self) -> float:
        total = sum(layer.filters for layer in self.layers)
        return sum(layer.filters - layer.kept for layer in self.layers) / total if total else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "ratio": self.ratio,
            "norm": self.norm,
            "removed_share": round(self.removed_share, 4),
            "params_before": self.params_before,
            "params_after": self.params_after,
            "compensated": list(self.compensated),
            "layers": [layer.to_dict() for layer in self.layers],
        }


def filter_norms(plan: ChannelPlan, name: str, norm: str) -> np.ndarray:
    """Each filter's L1 or L2 norm over its kernel (Li et al., 2017). Raw, not folded with a following
    batch norm: on a BN model (wide digits, 30 % one-shot) raw norms kept 88 % accuracy where norms
    scaled by gamma/sqrt(var) kept 51 %, since BN gives every channel the same output scale anyway."""
    kernel = np.asarray(plan.layers[name].kernel.numpy(), dtype=np.float64)
    flat = kernel.reshape(-1, kernel.shape[-1])
    return np.abs(flat).sum(axis=0) if norm == "l1" else np.sqrt((flat**2).sum(axis=0))


def kept_count(size: int, ratio: float, multiple: int = 1) -> int:
    """How many of `size` filters stay: `ratio` removed, rounded to a multiple of `multiple` (SIMD
    kernels process channels in packs of 8 or 16, so a ragged count buys less speed), at least one."""
    keep = max(1, size - int(round(size * ratio)))
    if multiple > 1 and size >= 4 * multiple:  # narrower layers keep the exact count: rounding would distort them
        keep = max(multiple, int(round(keep / multiple)) * multiple)
    return min(size, keep)


def choose_filters(plan: ChannelPlan, ratio: float, norm: str, multiple: int = 1) -> dict[int, np.ndarray]:
    """group root → sorted indices of the channels it keeps, for every group that is pruned.
    Tied convs are ranked by the sum of their norms, each normalised by its own mean."""
    graph = plan.graph
    kept: dict[int, np.ndarray] = {}
    roots = sorted({graph.find(c.segments[0]) for c in plan.outputs.values()})
    for root in roots:
        group = graph.groups[root]
        if group.frozen or not group.sources:
            continue
        keep = kept_count(group.size, ratio, multiple)
        if keep == group.size:
            continue
        score = np.zeros(group.size)
        for source in group.sources:
            norms = filter_norms(plan, source, norm)
            score += norms / max(float(norms.mean()), 1e-12)
        order = np.argsort(-score, kind="stable")
        kept[root] = np.sort(order[:keep])
    return kept


def kept_indices(graph: ChannelGraph, channels: Channels, kept: dict[int, np.ndarray]) -> np.ndarray | None:
    """Indices of the kept entries of a tensor's last axis (None: all kept)."""
    parts, offset, pruned = [], 0, False
    for segment in channels.segments:
        root = graph.find(segment)
        size = graph.groups[root].size
        if root in kept:
            parts.append(kept[root] + offset)
            pruned = True
        else:
            parts.append(np.arange(size) + offset)
        offset += size
    if not pruned:
        return None
    base = np.concatenate(parts)
    if channels.positions == 1:
        return base
    return (np.arange(channels.positions)[:, None] * offset + base[None, :]).reshape(-1)


def sliced_weights(layer: Any, keep_in: np.ndarray | None, keep_out: np.ndarray | None) -> list[np.ndarray]:
    """The layer's weights with only the kept input and output channels."""
    kind = type(layer).__name__
    weights = [np.asarray(w) for w in layer.get_weights()]
    if kind in CONVS or kind == "Dense":
        kernel = weights[0]
        if keep_in is not None:
            kernel = np.take(kernel, keep_in, axis=-2)
        if keep_out is not None:
            kernel = np.take(kernel, keep_out, axis=-1)
            weights[1:] = [np.take(w, keep_out, axis=-1) for w in weights[1:]]
        return [kernel, *weights[1:]]
    if kind in DEPTHWISE and keep_in is not None:
        return [np.take(weights[0], keep_in, axis=-2), *[np.take(w, keep_in, axis=-1) for w in weights[1:]]]
    if kind == "BatchNormalization" and keep_in is not None:
        return [np.take(w, keep_in, axis=-1) for w in weights]
    return weights


def input_means(model: Any, plan: ChannelPlan, names: Sequence[str], samples: np.ndarray) -> dict[str, np.ndarray]:
    """Each named layer's input averaged over `samples` (and positions), per entry of its last axis."""
    keras = import_keras()
    probe = keras.Model(model.inputs[0], [plan.layers[name].input for name in names])
    sums: list[np.ndarray] = []
    rows = 0
    for start in range(0, len(samples), 64):
        outputs = probe(samples[start : start + 64], training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        flat = [np.asarray(o, dtype=np.float64).reshape(-1, o.shape[-1]) for o in outputs]
        sums = [f.sum(axis=0) for f in flat] if not sums else [s + f.sum(axis=0) for s, f in zip(sums, flat)]
        rows += flat[0].shape[0]
    return {name: total / rows for name, total in zip(names, sums)}


def compensation(layer: Any, keep_in: np.ndarray, means: np.ndarray) -> np.ndarray:
    """What the removed input channels added to each output on average: their mean activation times
    their weights (summed over the kernel window), so the consumer's bias can take it over."""
    kernel = np.asarray(layer.kernel.numpy(), dtype=np.float64)
    removed = np.setdiff1d(np.arange(kernel.shape[-2]), keep_in)
    weights = np.take(kernel, removed, axis=-2)
    weights = weights.reshape(-1, len(removed), kernel.shape[-1]).sum(axis=0)  # (removed, outputs)
    return means[removed] @ weights


def count_params(model: Any) -> int:
    return int(sum(np.prod(w.shape) for w in model.weights))


def prune_channels(
    model: Any,
    ratio: float,
    norm: str = "l1",
    skip: Sequence[str] = (),
    multiple: int = defaults.PRUNE_CHANNELS_MULTIPLE,
    samples: np.ndarray | None = None,
) -> tuple[Any, ChannelPruning]:
    """A narrower copy of `model` without the `ratio` weakest filters of every prunable Conv group,
    with the kept weights copied over; the input model is left untouched.

    With `samples` (model inputs), what the removed channels contributed on average moves into the
    bias of the layers that read them (or the mean of their batch norm), so one-shot pruning shifts
    no layer's mean output."""
    check_pruning(None, ratio, tuple(skip), (), None, norm, multiple)
    keras = import_keras()
    plan = plan_channels(model, skip)
    if not plan.outputs:
        raise InputError("--prune-channels: the model has no Conv layers to prune")
    kept = choose_filters(plan, ratio, norm, multiple)
    graph = plan.graph
    new_filters = {}
    for name, channels in plan.outputs.items():
        root = graph.find(channels.segments[0])
        if root in kept:
            new_filters[name] = len(kept[root])

    def narrower(layer: Any) -> Any:
        config = layer.get_config()
        if layer.name in new_filters:
            config["filters"] = new_filters[layer.name]
        return layer.__class__.from_config(config)

    pruned = keras.models.clone_model(model, clone_function=narrower)
    mixing = [
        name
        for name, layer in plan.layers.items()
        if (type(layer).__name__ in CONVS or type(layer).__name__ == "Dense")
        and name in plan.inputs
        and kept_indices(graph, plan.inputs[name], kept) is not None
    ]
    means = input_means(model, plan, mixing, samples) if samples is not None and mixing else {}
    compensated = []
    for name, layer in plan.layers.items():
        if not layer.weights:
            continue
        keep_in = kept_indices(graph, plan.inputs[name], kept) if name in plan.inputs else None
        keep_out = kept_indices(graph, plan.outputs[name], kept) if name in plan.outputs else None
        target = pruned.get_layer(name)
        weights = sliced_weights(layer, keep_in, keep_out)
        shapes = [tuple(w.shape) for w in target.get_weights()]
        if shapes != [w.shape for w in weights]:
            raise InputError(
                f"--prune-channels: cannot rewrite layer {name!r} ({shapes} vs {[w.shape for w in weights]})"
            )
        target.set_weights(weights)
    for name in means:  # after every copy: a shift may land in a batch norm copied after its conv
        keep_in = kept_indices(graph, plan.inputs[name], kept)
        keep_out = kept_indices(graph, plan.outputs[name], kept) if name in plan.outputs else None
        shift = compensation(plan.layers[name], keep_in, means[name])
        if absorb_shift(pruned, plan, name, shift if keep_out is None else shift[keep_out]):
            compensated.append(name)

    report = []
    for name, channels in plan.outputs.items():
        root = graph.find(channels.segments[0])
        group = graph.groups[root]
        report.append(
            LayerChannels(
                name=name,
                filters=group.size,
                kept=len(kept[root]) if root in kept else group.size,
                tied_with=tuple(s for s in group.sources if s != name),
                kept_all_because=None if root in kept else group.frozen or "too few filters for this ratio",
            )
        )
    return pruned, ChannelPruning(
        ratio, norm, tuple(report), count_params(model), count_params(pruned), tuple(compensated)
    )


def absorb_shift(pruned: Any, plan: ChannelPlan, name: str, shift: np.ndarray) -> bool:
    """Add `shift` to the layer's bias, or (no bias) take it out of the batch norm that alone reads it."""
    target = pruned.get_layer(name)
    if getattr(target, "bias", None) is not None:
        target.bias.assign(np.asarray(target.bias.numpy()) + shift.astype(np.float32))
        return True
    readers = plan.consumers.get(name, [])
    if len(readers) == 1 and type(plan.layers[readers[0]]).__name__ == "BatchNormalization":
        bn = pruned.get_layer(readers[0])
        bn.moving_mean.assign(np.asarray(bn.moving_mean.numpy()) - shift.astype(np.float32))
        return True
    return False
