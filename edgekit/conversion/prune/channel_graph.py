"""Channel groups of a functional Keras model: which filters must be kept or removed together.

Planning walks the functional graph once and puts every tensor's channels into groups: a Conv layer
starts a group (its filters), channel-wise layers (batch norm, activations, pooling, depthwise conv)
pass it on, `Add` and friends tie the groups of their inputs together (the channels they add must stay
aligned, so tied convs lose the same filters), `Concatenate` lays groups side by side, and `Flatten`
repeats them per position. A group that reaches the model output or a layer we don't understand is
frozen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from edgekit.conversion.quiet import import_keras
from edgekit.errors import InputError

PASS_THROUGH = {
    "Activation",
    "ReLU",
    "LeakyReLU",
    "ELU",
    "Dropout",
    "SpatialDropout1D",
    "SpatialDropout2D",
    "SpatialDropout3D",
    "GaussianNoise",
    "GaussianDropout",
    "AlphaDropout",
    "ActivityRegularization",
    "Identity",
    "ZeroPadding1D",
    "ZeroPadding2D",
    "ZeroPadding3D",
    "Cropping1D",
    "Cropping2D",
    "Cropping3D",
    "UpSampling1D",
    "UpSampling2D",
    "UpSampling3D",
    "MaxPooling1D",
    "MaxPooling2D",
    "MaxPooling3D",
    "AveragePooling1D",
    "AveragePooling2D",
    "AveragePooling3D",
    "GlobalAveragePooling1D",
    "GlobalAveragePooling2D",
    "GlobalAveragePooling3D",
    "GlobalMaxPooling1D",
    "GlobalMaxPooling2D",
    "GlobalMaxPooling3D",
}
ELEMENTWISE = {"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"}
CONVS = {"Conv1D", "Conv2D", "Conv3D"}
DEPTHWISE = {"DepthwiseConv1D", "DepthwiseConv2D"}


@dataclass
class ChannelGroup:
    """Channels that must be kept or removed together (one conv's filters, or several tied by Add)."""

    size: int
    sources: list[str] = field(default_factory=list)
    frozen: str | None = None  # why these channels cannot be pruned


@dataclass(frozen=True)
class Channels:
    """A tensor's last axis as groups laid side by side, repeated `positions` times after Flatten."""

    segments: tuple[int, ...]
    positions: int = 1


class ChannelGraph:
    """Channel groups of one functional model (a union-find over groups)."""

    def __init__(self) -> None:
        self.groups: list[ChannelGroup] = []
        self.parent: list[int] = []

    def new(self, size: int, source: str | None = None, frozen: str | None = None) -> int:
        self.groups.append(ChannelGroup(size, [source] if source else [], frozen))
        self.parent.append(len(self.parent))
        return len(self.parent) - 1

    def find(self, group: int) -> int:
        while self.parent[group] != group:
            self.parent[group] = self.parent[self.parent[group]]
            group = self.parent[group]
        return group

    def group(self, index: int) -> ChannelGroup:
        return self.groups[self.find(index)]

    def freeze(self, channels: Channels, reason: str) -> None:
        for segment in channels.segments:
            group = self.group(segment)
            group.frozen = group.frozen or reason

    def tie(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        ga, gb = self.groups[ra], self.groups[rb]
        self.parent[rb] = ra
        ga.sources.extend(gb.sources)
        ga.frozen = ga.frozen or gb.frozen
        if ga.size != gb.size:
            ga.frozen = ga.frozen or "inputs of different widths are combined"

    def width(self, channels: Channels) -> int:
        return sum(self.group(s).size for s in channels.segments)


def functional_nodes(model: Any) -> tuple[Any, list[Any]]:
    """The model's functional graph and its nodes in topological order."""
    keras = import_keras()
    graph = getattr(model, "_functional", None) if isinstance(model, keras.Sequential) else model
    if graph is None or not hasattr(graph, "_nodes_by_depth"):
        raise InputError("--prune-channels rewrites functional or Sequential Keras models, not subclassed ones")
    depths = sorted(graph._nodes_by_depth, reverse=True)
    return graph, [node for depth in depths for node in graph._nodes_by_depth[depth]]


def channels_last(layer: Any) -> bool:
    return getattr(layer, "data_format", "channels_last") in ("channels_last", None)


def last_axis(layer: Any, attribute: str, rank: int) -> bool:
    axis = getattr(layer, attribute, -1)
    if isinstance(axis, (list, tuple)):
        axis = axis[0] if len(axis) == 1 else None
    return axis is not None and (axis == -1 or axis == rank - 1)


@dataclass
class ChannelPlan:
    """Where every layer's channels come from: enough to choose filters and slice weights."""

    graph: ChannelGraph
    inputs: dict[str, Channels]  # layer name → channels of its (first) input
    outputs: dict[str, Channels]  # conv name → its output channels
    consumers: dict[str, list[str]]  # layer name → names of layers that read its output
    layers: dict[str, Any]


def plan_channels(model: Any, skip: Sequence[str] = ()) -> ChannelPlan:
    """Walk the graph once and group every tensor's channels; freeze what cannot be pruned."""
    functional, nodes = functional_nodes(model)
    graph = ChannelGraph()
    tensors: dict[int, Channels] = {}
    inputs: dict[str, Channels] = {}
    outputs: dict[str, Channels] = {}
    consumers: dict[str, list[str]] = {}
    layers: dict[str, Any] = {}
    calls: dict[str, int] = {}
    for node in nodes:
        calls[node.operation.name] = calls.get(node.operation.name, 0) + 1

    for node in nodes:
        layer = node.operation
        kind = type(layer).__name__
        layers[layer.name] = layer
        ins = [tensors[id(t)] for t in node.input_tensors if id(t) in tensors]
        for t in node.input_tensors:
            producer = t._keras_history.operation
            consumers.setdefault(producer.name, []).append(layer.name)
        out_tensors = list(node.outputs)
        if ins:
            inputs[layer.name] = ins[0]
        rank = len(node.input_tensors[0].shape) if node.input_tensors else 0
        width = int(out_tensors[0].shape[-1] or 0)

        result: Channels | None = None
        if kind == "InputLayer":
            result = Channels((graph.new(width, frozen="model input"),))
        elif not ins or len(ins) != len(node.input_tensors):
            result = None  # inputs we cannot follow (constants, nested graphs): freeze below
        elif calls[layer.name] > 1:
            for c in ins:
                graph.freeze(c, f"feeds shared layer {layer.name!r}")
            result = Channels((graph.new(width, frozen="shared layer"),))
        elif kind in CONVS and layer.groups == 1 and channels_last(layer) and ins[0].positions == 1:
            result = Channels((graph.new(int(layer.filters), source=layer.name),))
            outputs[layer.name] = result
        elif kind == "Dense" and ins[0].positions * graph.width(ins[0]) == int(node.input_tensors[0].shape[-1] or 0):
            result = Channels((graph.new(width, frozen="dense units"),))
        elif channel_wise(layer, kind, rank) and ins[0].positions == 1:
            result = ins[0]
        elif (
            kind == "Flatten" and ins[0].positions == 1 and all(d is not None for d in node.input_tensors[0].shape[1:])
        ):
            positions = int(np.prod(node.input_tensors[0].shape[1:-1])) if rank > 2 else 1
            result = Channels(ins[0].segments, positions)
        elif kind in ELEMENTWISE and _alignable(graph, ins):
            for other in ins[1:]:
                for a, b in zip(ins[0].segments, other.segments):
                    graph.tie(a, b)
            result = ins[0]
        elif kind == "Concatenate" and last_axis(layer, "axis", rank) and all(c.positions == 1 for c in ins):
            result = Channels(tuple(s for c in ins for s in c.segments))
        if result is None:
            for c in ins:
                graph.freeze(c, f"feeds {kind} {layer.name!r}, which channel pruning does not rewrite")
            result = Channels((graph.new(width, frozen="unsupported layer"),))
        for t in out_tensors:
            tensors[id(t)] = result

    for t in functional.outputs:
        if id(t) in tensors:
            graph.freeze(tensors[id(t)], "is a model output")
    for name in skip:
        if name not in layers:
            raise InputError(f"--prune-skip {name!r}: the model has no layer of that name")
        if name in outputs:  # a Dense name is for magnitude pruning; channel pruning has nothing to skip there
            graph.freeze(outputs[name], "--prune-skip")
    return ChannelPlan(graph, inputs, outputs, consumers, layers)


def channel_wise(layer: Any, kind: str, rank: int) -> bool:
    """Layers that act on each channel alone, so they carry their input's channel groups through."""
    if kind in DEPTHWISE:
        return layer.depth_multiplier == 1 and channels_last(layer)
    if kind == "BatchNormalization":
        return last_axis(layer, "axis", rank)
    if kind == "Activation" and "softmax" in str(getattr(layer.activation, "__name__", "")):
        return False  # softmax mixes the channels
    return kind in PASS_THROUGH and channels_last(layer)


def _alignable(graph: ChannelGraph, ins: list[Channels]) -> bool:
    first = ins[0]
    return all(
        c.positions == first.positions
        and len(c.segments) == len(first.segments)
        and all(graph.group(a).size == graph.group(b).size for a, b in zip(c.segments, first.segments))
        for c in ins[1:]
    )
