"""Labelled data and the short fine-tuning that lets a pruned model recover its accuracy.

Labelled data comes as a `.npz` with `x` and `y`, or as a folder with one subfolder of images per
class; inputs go through the same preprocessing as calibration and `edgekit run`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from edgekit.bundle import Preprocess, TensorSpec
from edgekit.conversion.accuracy import class_indices
from edgekit.conversion.calibration import load_array_file
from edgekit.conversion.quiet import import_keras, quiet_native_output
from edgekit.errors import InputError
from edgekit.runtime.preprocess import IMAGE_SUFFIXES, image_input, normalize

Progress = Callable[[str, int, int], None]
DEFAULT_EPOCHS = 4
DEFAULT_LEARNING_RATE = 2e-4  # gentle: the pruned model starts close to a good solution
DEFAULT_BATCH_SIZE = 32
SEED = 0


@dataclass(frozen=True)
class LabelledData:
    """Model inputs (float32, preprocessed) with their labels."""

    x: np.ndarray
    y: np.ndarray
    source: str

    def __len__(self) -> int:
        return int(self.x.shape[0])


@dataclass(frozen=True)
class FineTuning:
    """What fine-tuning did: how long, on what, and where the training loss ended."""

    epochs: int
    samples: int
    steps: int
    learning_rate: float
    loss: str
    final_loss: float
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "epochs": self.epochs,
            "samples": self.samples,
            "steps": self.steps,
            "learning_rate": self.learning_rate,
            "loss": self.loss,
            "final_loss": round(self.final_loss, 6),
            "seconds": round(self.seconds, 2),
        }


def load_labelled(
    path: str | Path,
    tensor: TensorSpec,
    preprocess: Preprocess | None,
    labels: Sequence[str] | None = None,
    option: str = "--finetune-data",
) -> LabelledData:
    """A `.npz` (keys `x`, `y`) or a folder of class subfolders → preprocessed inputs and labels."""
    source = Path(path)
    if source.is_dir():
        return _load_folder(source, preprocess, labels, option)
    if not source.is_file():
        raise InputError(f"{source}: no such file or folder")
    if source.suffix.lower() != ".npz":
        raise InputError(f"{source}: {option} needs labels: a .npz with x and y, or a folder per class")
    x, y = load_array_file(source)
    if y is None:
        raise InputError(f"{source}: {option} needs labels: the .npz holds no 'y'")
    if x.ndim != len(tensor.shape) or tuple(x.shape[1:]) != tuple(tensor.shape[1:]):
        expected = ", ".join(str(d) for d in tensor.shape[1:])
        raise InputError(f"{source}: samples have shape {tuple(x.shape)}, expected (N, {expected})")
    if len(x) == 0 or len(y) != len(x):
        raise InputError(f"{source}: {len(x)} samples and {len(y)} labels; need the same non-zero number")
    if y.dtype.kind not in "biuf":
        raise InputError(f"{source}: labels 'y' must be numbers, got dtype {y.dtype}")
    if y.dtype.kind == "f" and y.ndim == 1 and np.array_equal(y, np.round(y)):
        y = y.astype(np.int64)  # class indices stored as floats, as --eval-data accepts them
    if x.dtype == np.uint8 and preprocess is not None:  # raw pixels, as `as_model_input` treats them, in one pass
        inputs = normalize(x, preprocess, channel_axis=1 if preprocess.layout == "NCHW" else -1)
    elif x.dtype.kind == "f":
        inputs = x
    else:
        raise InputError(f"{source}: samples of dtype {x.dtype} do not fit a float model input")
    return LabelledData(inputs.astype(np.float32), np.asarray(y), str(source))


def _load_folder(
    source: Path, preprocess: Preprocess | None, labels: Sequence[str] | None, option: str
) -> LabelledData:
    if preprocess is None:
        raise InputError(f"{source}: this model's input is not an image; give {option} as a .npz with x and y")
    classes = sorted(p.name for p in source.iterdir() if p.is_dir())
    if not classes:
        raise InputError(f"{source}: {option} folder needs one subfolder of images per class")
    index = class_indices(classes, labels, source)
    images, targets = [], []
    for name in classes:
        files = sorted(p for p in (source / name).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        images.extend(files)
        targets.extend([index[name]] * len(files))
    if not images:
        raise InputError(f"{source}: class folders hold no images")
    x = np.concatenate([image_input(p, preprocess) for p in images]).astype(np.float32)
    return LabelledData(x, np.asarray(targets, dtype=np.int64), str(source))


def choose_loss(keras: Any, outputs: np.ndarray, y: np.ndarray, source: str) -> tuple[Any, str, list[str]]:
    """The training loss that fits the model's outputs and the labels given: class indices →
    (sparse) cross-entropy on probabilities or logits; targets shaped like the output → regression."""
    outputs = outputs.reshape(len(outputs), -1)
    width = outputs.shape[1]
    probabilities = bool(np.all(outputs >= -1e-6) and np.allclose(outputs.sum(axis=1), 1.0, atol=1e-3))
    if y.dtype.kind in "biu" and y.reshape(len(y), -1).shape[1] == 1:
        labels = y.reshape(-1)
        if width > 1:
            if labels.min() < 0 or labels.max() >= width:
                raise InputError(f"{source}: labels span {labels.min()}..{labels.max()}, the model has {width} classes")
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=not probabilities)
            return loss, "sparse_categorical_crossentropy", ["accuracy"]
        in_unit = bool(np.all((outputs >= 0) & (outputs <= 1)))
        return keras.losses.BinaryCrossentropy(from_logits=not in_unit), "binary_crossentropy", ["accuracy"]
    if y.reshape(len(y), -1).shape[1] != width:
        raise InputError(f"{source}: labels have shape {tuple(y.shape[1:])}, the model outputs {width} values")
    if probabilities and np.allclose(y.reshape(len(y), -1).sum(axis=1), 1.0, atol=1e-3):
        return keras.losses.CategoricalCrossentropy(), "categorical_crossentropy", ["accuracy"]
    return keras.losses.MeanSquaredError(), "mean_squared_error", []


def fine_tune(
    model: Any,
    data: LabelledData,
    epochs: int = DEFAULT_EPOCHS,
    learning_rate: float = DEFAULT_LEARNING_RATE,
    batch_size: int = DEFAULT_BATCH_SIZE,
    callbacks: Sequence[Any] = (),
    progress: Progress | None = None,
    verbose: bool = False,
) -> FineTuning:
    """Train `model` in place for a few epochs with Adam (seeded); `callbacks` keep pruning masks."""
    if epochs < 1:
        raise InputError(f"--finetune-epochs must be at least 1, got {epochs}")
    keras = import_keras()
    keras.utils.set_random_seed(SEED)
    y = data.y.astype(np.float32) if data.y.dtype.kind == "f" else data.y.astype(np.int64)
    outputs = np.asarray(model(data.x[: min(len(data), 64)], training=False))
    loss, loss_name, metrics = choose_loss(keras, outputs, y, data.source)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss, metrics=metrics)
    steps_per_epoch = -(-len(data) // batch_size)

    class EpochProgress(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            if progress:
                progress(f"fine-tuning epoch {epoch + 1}/{epochs}", epoch + 1, epochs)

    start = time.perf_counter()
    with quiet_native_output(verbose):
        history = model.fit(
            data.x,
            y,
            epochs=epochs,
            batch_size=batch_size,
            shuffle=True,
            verbose=0,
            callbacks=[*callbacks, EpochProgress()],
        )
    seconds = time.perf_counter() - start
    final_loss = float(history.history["loss"][-1])
    return FineTuning(epochs, len(data), steps_per_epoch * epochs, learning_rate, loss_name, final_loss, seconds)


def top1_accuracy(predict: Callable[[np.ndarray], np.ndarray], data: LabelledData, batch: int = 256) -> float:
    """Share of samples whose arg-max output is their label."""
    outputs = np.concatenate([np.asarray(predict(data.x[i : i + batch])) for i in range(0, len(data), batch)])
    labels = data.y.reshape(len(data), -1)
    labels = labels.argmax(axis=1) if labels.shape[1] > 1 else labels[:, 0]
    return float((outputs.reshape(len(data), -1).argmax(axis=1) == labels).mean())
