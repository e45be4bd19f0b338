"""Small ONNX models built with `onnx.helper` (no PyTorch, no download): the sample classifier, the
models the tests convert, and the MobileNet-sized and YOLO-style models the benchmark times.

Weights are random (seeded) with He scaling and batch norm folded in, so activations keep a sane range
through depth, as in a trained network; what the models compute is meaningless, what they exercise
(layouts, ops, shapes, several outputs) is not."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

OPSET = 17


class Graph:
    """An ONNX graph under construction: nodes, weights and a seeded generator for them."""

    def __init__(self, seed: int = 0):
        import onnx.helper

        self.helper = onnx.helper
        self.rng = np.random.default_rng(seed)
        self.nodes: list = []
        self.weights: list = []
        self.count = 0

    def name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}_{self.count}"

    def constant(self, array: np.ndarray, prefix: str = "w") -> str:
        import onnx.numpy_helper

        name = self.name(prefix)
        self.weights.append(onnx.numpy_helper.from_array(np.asarray(array), name))
        return name

    def op(self, op_type: str, inputs: Sequence[str], outputs: int = 1, domain: str = "", **attrs) -> str | list[str]:
        node = self.name(op_type.lower())
        names = [f"{node}_out{i}" if outputs > 1 else node for i in range(outputs)]
        self.nodes.append(self.helper.make_node(op_type, list(inputs), names, name=node, domain=domain, **attrs))
        return names if outputs > 1 else names[0]

    def conv(
        self, x: str, cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, act: str | None = "relu"
    ) -> str:
        fan_in = cin // groups * k * k
        w = self.rng.normal(0, math.sqrt(2.0 / fan_in), (cout, cin // groups, k, k)).astype(np.float32)
        b = self.rng.normal(0, 0.05, cout).astype(np.float32)
        y = self.op(
            "Conv",
            [x, self.constant(w), self.constant(b, "b")],
            kernel_shape=[k, k],
            strides=[stride, stride],
            pads=[k // 2] * 4,
            group=groups,
        )
        if act == "relu":
            return self.op("Relu", [y])
        if act == "relu6":
            return self.op("Clip", [y, self.constant(np.float32(0), "lo"), self.constant(np.float32(6), "hi")])
        if act == "silu":
            return self.op("Mul", [y, self.op("Sigmoid", [y])])
        return y

    def dense(self, x: str, cin: int, cout: int) -> str:
        w = self.rng.normal(0, math.sqrt(1.0 / cin), (cin, cout)).astype(np.float32)
        return self.op("Gemm", [x, self.constant(w), self.constant(np.zeros(cout, np.float32), "b")])

    def head(self, x: str, cin: int, classes: int) -> str:
        """Global average pool, flatten, a dense layer: class scores."""
        pooled = self.op("Flatten", [self.op("GlobalAveragePool", [x])])
        return self.dense(pooled, cin, classes)

    def model(
        self,
        inputs: dict[str, Sequence],
        outputs: dict[str, tuple[str, Sequence]],
        opset: int = OPSET,
        domains: dict[str, int] | None = None,
    ):
        """The ModelProto: graph inputs (name → shape, str for a dynamic dim), outputs (name → (tensor, shape))."""
        import onnx

        h = self.helper
        nodes = list(self.nodes)
        graph_outputs = []
        for name, (tensor, shape) in outputs.items():
            nodes.append(h.make_node("Identity", [tensor], [name], name=f"{name}_identity"))
            graph_outputs.append(h.make_tensor_value_info(name, onnx.TensorProto.FLOAT, list(shape)))
        graph = h.make_graph(
            nodes,
            "edgekit_sample",
            [h.make_tensor_value_info(n, onnx.TensorProto.FLOAT, list(s)) for n, s in inputs.items()],
            graph_outputs,
            self.weights,
        )
        opsets = [h.make_opsetid("", opset), *(h.make_opsetid(d, v) for d, v in (domains or {}).items())]
        model = h.make_model(graph, opset_imports=opsets, producer_name="edgekit-samples")
        model.ir_version = 8
        if not domains:  # the checker knows no custom domain
            onnx.checker.check_model(model)
        return model


def classifier(classes: int = 4, seed: int = 0, shape: Sequence = (1, 3, 32, 32)):
    """A CNN classifier: NCHW image in ("images"), softmax scores out ("probs"); `shape` may name
    dynamic dimensions ("N", 3, "H", "W")."""
    g = Graph(seed)
    x = g.conv("images", 3, 16, stride=2)
    x = g.conv(x, 16, 32, stride=2)
    x = g.conv(x, 32, 32)
    scores = g.op("Softmax", [g.head(x, 32, classes)], axis=1)
    return g.model({"images": shape}, {"probs": (scores, (shape[0], classes))})


def dynamic_classifier(classes: int = 4, seed: int = 1):
    """The classifier with a dynamic batch and spatial size: ("N", 3, "H", "W")."""
    return classifier(classes, seed, ("N", 3, "H", "W"))


def two_outputs(size: int = 32, classes: int = 5, seed: int = 2):
    """One trunk, two heads of different shapes: class logits ("logits", [1, 5]) and an NCHW feature
    map ("features", [1, 8, 8, 8])."""
    g = Graph(seed)
    x = g.conv("images", 3, 16, stride=2)
    x = g.conv(x, 16, 16, stride=2)
    logits = g.head(x, 16, classes)
    features = g.conv(x, 16, 8, k=1, act=None)
    side = size // 4
    return g.model(
        {"images": (1, 3, size, size)},
        {"logits": (logits, (1, classes)), "features": (features, (1, 8, side, side))},
    )


def segmenter(size: int = 64, classes: int = 4, seed: int = 3):
    """An encoder-decoder with an NCHW per-pixel output: ("mask", [1, 4, 64, 64])."""
    g = Graph(seed)
    x = g.conv("images", 3, 16, stride=2)
    x = g.conv(x, 16, 32, stride=2)
    x = g.conv(x, 32, 32)
    scales = g.constant(np.array([1, 1, 4, 4], np.float32), "scales")
    up = g.op("Resize", [x, "", scales], mode="linear")
    logits = g.conv(up, 32, classes, k=1, act=None)
    return g.model({"images": (1, 3, size, size)}, {"mask": (logits, (1, classes, size, size))})


def many_ops(size: int = 32, seed: int = 6):
    """Ops whose NCHW semantics onnx2tf must translate: batch norm, max pool, a channel Concat, a
    transposed convolution, a nearest 2x Resize, and a Flatten straight after a convolution (element order
    matters) feeding a Gemm; outputs a vector ("embedding") and an NCHW map ("heat")."""
    g = Graph(seed)
    x = g.conv("images", 3, 8, act=None)
    c = 8
    bn = [
        g.constant(v.astype(np.float32), "bn")
        for v in (
            g.rng.uniform(0.5, 1.5, c),
            g.rng.normal(0, 0.1, c),
            g.rng.normal(0, 0.1, c),
            g.rng.uniform(0.5, 1.5, c),
        )
    ]
    x = g.op("Relu", [g.op("BatchNormalization", [x, *bn])])
    x = g.op("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
    x = g.op("Concat", [x, g.conv(x, 8, 8)], axis=1)
    w = g.rng.normal(0, 0.2, (16, 4, 2, 2)).astype(np.float32)
    up = g.op("ConvTranspose", [x, g.constant(w)], kernel_shape=[2, 2], strides=[2, 2])
    heat = g.op("Sigmoid", [g.op("Resize", [up, "", g.constant(np.array([1, 1, 2, 2], np.float32))], mode="nearest")])
    small = g.conv(x, 16, 4, stride=2, act=None)
    embedding = g.dense(g.op("Flatten", [small]), 4 * (size // 4) ** 2, 6)
    side = size * 2  # max pool halves, the transposed convolution and the resize double
    return g.model(
        {"images": (1, 3, size, size)}, {"embedding": (embedding, (1, 6)), "heat": (heat, (1, 4, side, side))}
    )


def custom_op(size: int = 32, seed: int = 4):
    """A model with an op of a custom domain, which no converter knows (nor onnxruntime)."""
    g = Graph(seed)
    x = g.conv("images", 3, 8, stride=2)
    y = g.op("FancyActivation", [x], domain="com.example")
    out = g.op("Flatten", [g.op("GlobalAveragePool", [y])])
    return g.model({"images": (1, 3, size, size)}, {"out": (out, (1, 8))}, domains={"com.example": 1})


def unsupported_op(size: int = 32, seed: int = 5):
    """A standard ONNX op that onnxruntime runs but onnx2tf cannot convert (CastLike)."""
    g = Graph(seed)
    x = g.conv("images", 3, 8, stride=2)
    like = g.constant(np.zeros(1, np.float32), "like")
    y = g.op("CastLike", [x, like])
    out = g.op("Flatten", [g.op("GlobalAveragePool", [y])])
    return g.model({"images": (1, 3, size, size)}, {"out": (out, (1, 8))})


def mobilenet_v2(size: int = 224, classes: int = 1000, seed: int = 10):
    """MobileNetV2's architecture (1.0x: inverted residuals, depthwise 3x3, ReLU6; 3.5 M parameters,
    ~300 M MACs at 224), NCHW input "images", softmax "probs": a MobileNet-sized ONNX CNN."""
    g = Graph(seed)
    x, channels = g.conv("images", 3, 32, stride=2, act="relu6"), 32
    for expand, out, repeat, first_stride in MOBILENET_V2_BLOCKS:
        for i in range(repeat):
            stride, hidden = (first_stride if i == 0 else 1), channels * expand
            y = g.conv(x, channels, hidden, k=1, act="relu6") if expand != 1 else x
            y = g.conv(y, hidden, hidden, stride=stride, groups=hidden, act="relu6")
            y = g.conv(y, hidden, out, k=1, act=None)
            x = g.op("Add", [x, y]) if stride == 1 and channels == out else y  # the inverted residual
            channels = out
    x = g.conv(x, channels, 1280, k=1, act="relu6")
    scores = g.op("Softmax", [g.head(x, 1280, classes)], axis=1)
    return g.model({"images": (1, 3, size, size)}, {"probs": (scores, (1, classes))})


MOBILENET_V2_BLOCKS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def yolo_detector(size: int = 320, classes: int = 80, seed: int = 11, strides: Sequence[int] = (8, 16, 32)):
    """A YOLO-style detector (YOLOv8's output format): a strided backbone, heads at strides 8, 16 and 32,
    boxes decoded in the graph to pixels (cx, cy, w, h) and class scores (sigmoid) sharing one output
    "output0" of shape [1, 4 + classes, anchors] (2100 anchors at 320)."""
    g = Graph(seed)
    x = g.conv("images", 3, 16, stride=2, act="silu")
    x = g.conv(x, 16, 32, stride=2, act="silu")
    levels, channels = [], 32
    for stride, width in ((s, 8 * s) for s in strides):
        x = g.conv(x, channels, width, stride=2, act="silu")
        x = g.op("Add", [x, g.conv(g.conv(x, width, width, act="silu"), width, width, act="silu")])
        levels.append((x, width, stride))
        channels = width
    boxes, scores = [], []
    for feature, width, stride in levels:
        side = size // stride
        raw = g.conv(g.conv(feature, width, 64, act="silu"), 64, 4, k=1, act=None)
        logits = g.conv(g.conv(feature, width, 64, act="silu"), 64, classes, k=1, act=None)
        xy, wh = g.op("Split", [raw, g.constant(np.array([2, 2], np.int64), "split")], outputs=2, axis=1)
        gy, gx = np.mgrid[0:side, 0:side].astype(np.float32)
        grid = g.constant(np.stack([gx, gy])[None] + 0.5, "grid")
        centre = g.op("Mul", [g.op("Add", [g.op("Tanh", [xy]), grid]), g.constant(np.float32(stride), "stride")])
        size_ = g.op("Mul", [g.op("Sigmoid", [wh]), g.constant(np.float32(4 * stride), "scale")])
        flat = g.constant(np.array([1, -1, side * side], np.int64), "shape")
        boxes.append(g.op("Reshape", [g.op("Concat", [centre, size_], axis=1), flat]))
        scores.append(g.op("Reshape", [g.op("Sigmoid", [logits]), flat]))
    output = g.op("Concat", [g.op("Concat", boxes, axis=2), g.op("Concat", scores, axis=2)], axis=1)
    anchors = sum((size // s) ** 2 for s in strides)
    return g.model({"images": (1, 3, size, size)}, {"output0": (output, (1, 4 + classes, anchors))})


def patterns(count: int, size: int = 32, classes: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic labelled images, raw uint8 pixels in NCHW: stripes (horizontal, vertical, diagonal)
    and checkerboards with random period, phase, tint and noise; class = pattern."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    labels = np.arange(count) % classes
    images = np.empty((count, 3, size, size), np.uint8)
    for i, label in enumerate(labels):
        period, phase = rng.uniform(4, 9), rng.uniform(0, 2 * np.pi)
        wave = [
            np.sin(2 * np.pi * yy / period + phase),
            np.sin(2 * np.pi * xx / period + phase),
            np.sin(2 * np.pi * (xx + yy) / period + phase),
            np.sign(np.sin(2 * np.pi * xx / period + phase) * np.sin(2 * np.pi * yy / period)),
        ][label % 4]
        tint = rng.uniform(0.5, 1.0, (3, 1, 1))
        pixels = 127.5 + 100 * wave[None] * tint + rng.normal(0, 12, (3, size, size))
        images[i] = np.clip(pixels, 0, 255).astype(np.uint8)
    return images, labels


def fit_head(model, x: np.ndarray, y: np.ndarray, classes: int, scale: float = 8.0):
    """The last Gemm's weights fitted by least squares on the features the (random) trunk gives for
    `x` (float inputs): a classifier that separates the synthetic classes, with decisive scores."""
    import onnx
    import onnx.numpy_helper
    import onnxruntime

    gemm = next(n for n in reversed(model.graph.node) if n.op_type == "Gemm")
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.append(onnx.helper.make_tensor_value_info(gemm.input[0], onnx.TensorProto.FLOAT, None))
    session = onnxruntime.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    features = np.concatenate([session.run([gemm.input[0]], {name: x[i : i + 1]})[0] for i in range(len(x))])
    design = np.hstack([features, np.ones((len(features), 1), np.float32)])
    targets = np.eye(classes, dtype=np.float32)[y] * scale
    solution = np.linalg.solve(design.T @ design + 1e-2 * np.eye(design.shape[1]), design.T @ targets)
    weights = {t.name: t for t in model.graph.initializer}
    weights[gemm.input[1]].CopyFrom(onnx.numpy_helper.from_array(solution[:-1].astype(np.float32), gemm.input[1]))
    weights[gemm.input[2]].CopyFrom(onnx.numpy_helper.from_array(solution[-1].astype(np.float32), gemm.input[2]))
    return model


def save(model, path: str | Path) -> Path:
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
