"""What a model takes and answers, as a conversion sees it: its inputs (with the image preprocessing of
each image-shaped one), its outputs (which one is a classifier, with which labels), and its task.

Everything here comes from the source model's tensors and the user's --mean/--std/--labels/--task,
before any data is read: a contradiction is refused before the slow work starts.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from edgekit import defaults
from edgekit.bundle import Preprocess, TensorSpec
from edgekit.bundle.manifest import TASKS
from edgekit.errors import InputError, UsageError


@dataclass(frozen=True)
class TensorInfo:
    """One input or output of a source model, as the source names it (batch axis None when free)."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str = "float32"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


@dataclass(frozen=True)
class ModelInputs:
    """The model's contract: float input tensors (batch 1, source names), each image input's
    preprocessing (None for array inputs), its outputs, the classifier output (its index, class count
    and labels) and the task."""

    tensors: tuple[TensorSpec, ...]
    preprocesses: tuple[Preprocess | None, ...]
    outputs: tuple[TensorInfo, ...] = ()
    classifier: int | None = None  # index of the output that scores classes
    classes: int | None = None
    labels: tuple[str, ...] | None = None
    task: str = "raw"
    postprocess: dict[str, Any] | None = None
    labelled_output: int | None = None  # the output --labels names the classes of (a classifier's or a detector's)

    @property
    def labels_output(self) -> int | None:
        """The output the labels file belongs to: the detector's when --labels named one, else the classifier."""
        return self.classifier if self.labelled_output is None else self.labelled_output

    @property
    def tensor(self) -> TensorSpec:
        return self.tensors[0]

    @property
    def preprocess(self) -> Preprocess | None:
        """The first input's preprocessing (what single-input callers read)."""
        return self.preprocesses[0]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tensors)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.outputs)

    @property
    def is_classifier(self) -> bool:
        return self.classifier is not None and self.classes is not None and self.classes > 1

    def classifier_outputs(self) -> tuple[bool, ...]:
        """Per output: does it score classes (rank 2, more than one column)?"""
        return tuple(is_class_scores(o.shape) for o in self.outputs)

    def image_preprocess(self, name: str) -> Preprocess | None:
        return self.preprocesses[self.names.index(name)]


def image_layout(shape: Sequence[int | None]) -> tuple[str, tuple[int, int], int] | None:
    """(layout, (height, width), channels) of an image-shaped input: rank 4 with 1 or 3 channels."""
    if len(shape) != 4:
        return None
    _, a, b, c = shape
    if c in (1, 3) and a and b:
        return "NHWC", (int(a), int(b)), int(c)
    if a in (1, 3) and b and c:
        return "NCHW", (int(b), int(c)), int(a)
    return None


def is_class_scores(shape: Sequence[int | None]) -> bool:
    return len(shape) == 2 and bool(shape[-1]) and int(shape[-1]) > 1


def model_inputs(
    inputs: Sequence[TensorInfo],
    outputs: Sequence[TensorInfo],
    mean: Sequence[Any] | None = None,
    std: Sequence[Any] | None = None,
    labels: str | os.PathLike[str] | None = None,
    task: str | None = None,
) -> ModelInputs:
    """The contract of a model with these tensors and the user's --mean/--std/--labels/--task."""
    tensors = tuple(TensorSpec(t.name, (1, *[int(d or 1) for d in t.shape[1:]]), "float32") for t in inputs)
    images = [t.name for t in inputs if image_layout(t.shape) is not None]
    if len(images) > 1 and any(not isinstance(v, str) for v in (*(mean or ()), *(std or ()))):
        raise UsageError("this model has several image inputs: give --mean/--std as NAME=VALUES, one per input")
    means, stds = per_input(mean, inputs, "mean", images), per_input(std, inputs, "std", images)
    preprocesses = tuple(image_preprocess(tuple(t.shape), means[t.name], stds[t.name], t.name) for t in inputs)
    classifier = classifier_output(outputs)
    classes = int(outputs[classifier].shape[-1]) if classifier is not None else None  # type: ignore[arg-type]
    label_list = read_labels(labels, classes)
    labelled = classifier
    if label_list is not None and classifier is None:
        labelled = detector_labels_output(outputs, task, label_list, labels)
    chosen, postprocess = choose_task(task, outputs, classifier, label_list is not None)
    return ModelInputs(
        tensors, preprocesses, tuple(outputs), classifier, classes, label_list, chosen, postprocess, labelled
    )


def detector_labels_output(outputs: Sequence[TensorInfo], task: str | None, labels: Sequence[str], path: Any) -> int:
    """The output whose class indices --labels names when no output is a classifier: a detector's (the
    YOLO head, or the SSD classes output)."""
    detect = detection_format(outputs, told=task == "detect") if task in (None, "detect") else None
    if detect is None:
        candidates = [o.name for o in outputs if is_class_scores(o.shape)]
        which = (
            f"several outputs may be class scores ({', '.join(candidates)})"
            if candidates
            else "no output is one score per class (a detector needs --task detect)"
        )
        raise InputError(f"{path}: --labels names the classes of one class-score output, but {which}")
    if detect["format"] == "yolo":
        if len(labels) != detect["classes"]:
            raise InputError(f"{path}: {len(labels)} labels for a detector of {detect['classes']} classes")
        return 0
    return int(detect["classes"])


def per_input(
    values: Sequence[Any] | None, inputs: Sequence[TensorInfo], flag: str, images: Sequence[str]
) -> dict[str, tuple[float, ...]]:
    """--mean/--std as given (plain numbers: for the image input; or NAME=VALUES items) → input name → values."""
    names = [t.name for t in inputs]
    result: dict[str, tuple[float, ...]] = {name: () for name in names}
    plain = [v for v in values or () if not isinstance(v, str)]
    named = [v for v in values or () if isinstance(v, str)]
    for name in images if len(names) > 1 else names:
        result[name] = tuple(float(v) for v in plain)
    for item in named:
        name, _, text = item.partition("=")
        if name not in result:
            raise UsageError(f"--{flag} {item}: the model has no input {name!r} (inputs: {', '.join(names)})")
        try:
            result[name] = tuple(float(v) for v in text.split(",") if v.strip())
        except ValueError:
            raise UsageError(f"--{flag} {item}: expected NAME=NUMBER[,NUMBER...]") from None
    return result


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
    input_shape: tuple[int | None, ...],
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    name: str = "input",
) -> Preprocess | None:
    """The preprocessing contract from the input shape: NHWC (or NCHW) with 1 or 3 channels is an
    image; anything else takes arrays only."""
    image = image_layout(input_shape)
    if image is None:
        if mean or std:
            raise InputError(f"--mean/--std apply to image inputs; input {name!r} is not an image")
        return None
    layout, size, channels = image
    return Preprocess(
        size=size,
        color="L" if channels == 1 else "RGB",
        mean=parse_channels(mean, defaults.MEAN, channels, "mean"),
        std=parse_channels(std, defaults.STD, channels, "std"),
        layout=layout,
    )


def read_labels(path: str | os.PathLike[str] | None, classes: int | None) -> tuple[str, ...] | None:
    if path is None:
        return None
    source = Path(path)
    try:
        labels = [line.strip() for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{source}: cannot read labels ({exc})") from None
    if classes is not None and len(labels) != classes:
        raise InputError(f"{source}: {len(labels)} labels for a model with {classes} outputs")
    return tuple(labels)


def classifier_output(outputs: Sequence[TensorInfo]) -> int | None:
    """The output that scores classes: the only rank-2 one with several columns."""
    found = [i for i, o in enumerate(outputs) if is_class_scores(o.shape)]
    return found[0] if len(found) == 1 else None


def detection_format(outputs: Sequence[TensorInfo], told: bool) -> dict[str, Any] | None:
    """The detector layout of these outputs (`edgekit.runtime.detect`'s reading), or None. Without
    `--task detect` a YOLO-shaped output counts only when its candidates far outnumber its channels
    (rank-3 outputs with one small axis are common in models that detect nothing)."""
    from edgekit.runtime.detect import detection_format as runtime_format

    found = runtime_format(outputs)
    few = found is not None and found["format"] == "yolo" and found["candidates"] < 4 * (found["classes"] + 4)
    return None if few and not told else found


def choose_task(
    task: str | None, outputs: Sequence[TensorInfo], classifier: int | None, labelled: bool
) -> tuple[str, dict[str, Any] | None]:
    """--task, else inferred where unambiguous: a detector's outputs → detect, one class-score output
    with labels (or the only output) → classify, else raw."""
    if task is not None and task not in TASKS:
        raise UsageError(f"--task must be one of {', '.join(TASKS)}, got {task!r}")
    detect = detection_format(outputs, told=task == "detect")
    if task == "detect":
        if detect is None:
            shapes = ", ".join(str(list(o.shape)) for o in outputs)
            raise InputError(
                f"--task detect: the outputs ({shapes}) are neither TFLite_Detection_PostProcess's four "
                "(boxes, classes, scores, count) nor one YOLO-style head [1, 4+C, N] / [1, N, 4+C]"
            )
        return "detect", detect
    if task == "classify" and classifier is None:
        raise InputError("--task classify: no output of this model is one score per class (rank 2)")
    if task == "segment" and not any(len(o.shape) == 4 for o in outputs):
        raise InputError("--task segment: no output is a mask ([1, H, W, 1] or [1, H, W, C])")
    if task is not None:
        return task, None
    if detect is not None:
        return "detect", detect
    if classifier is not None and (labelled or len(outputs) == 1):
        return "classify", None
    return "raw", None
