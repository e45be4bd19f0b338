"""The short fine-tuning that lets a pruned model recover its accuracy, on labelled data loaded by
`inputs.load_samples` (a `.npz` with `x` and `y`, or a folder per class)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from edgekit import defaults
from edgekit.conversion.inputs import Samples, take
from edgekit.conversion.load import input_names, output_names
from edgekit.conversion.quiet import import_keras, quiet_native_output
from edgekit.errors import InputError

BATCH_SIZE = 32
SEED = 0


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


def keras_call(model: Any, batch: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The model's outputs (a list, model order) on inputs by name."""
    arrays = [batch[name] for name in input_names(model)]
    outputs = model(arrays[0] if len(arrays) == 1 else arrays, training=False)
    return [np.asarray(o) for o in (outputs if isinstance(outputs, (list, tuple)) else [outputs])]


def fine_tune(
    model: Any,
    data: Samples,
    epochs: int = defaults.FINETUNE_EPOCHS,
    learning_rate: float = defaults.FINETUNE_LEARNING_RATE,
    batch_size: int = BATCH_SIZE,
    callbacks: Sequence[Any] = (),
    progress: Callable[[str], None] | None = None,
    verbose: bool = False,
) -> FineTuning:
    """Train `model` in place for a few epochs with Adam (seeded); `callbacks` keep pruning masks;
    `progress` hears of every epoch."""
    assert data.y
    keras = import_keras()
    keras.utils.set_random_seed(SEED)
    names = [n for n in output_names(model) if n in data.y]  # the labelled outputs, model order
    if not names:
        raise InputError(f"{data.path}: no labels for any output of the model ({', '.join(output_names(model))})")
    trained = (
        model
        if len(names) == len(model.outputs)
        else keras.Model(model.inputs, [model.outputs[output_names(model).index(n)] for n in names])
    )
    probe = keras_call(trained, take(data.x, slice(0, min(len(data), 64))))
    losses, loss_names, metrics = [], [], []
    ys = []
    for name, outputs in zip(names, probe):
        y = data.y[name]
        y = y.astype(np.float32) if y.dtype.kind == "f" else y.astype(np.int64)
        where = data.path if len(names) == 1 else f"{data.path} (y_{name})"
        loss, loss_name, metric = choose_loss(keras, outputs, y, where)
        losses.append(loss)
        loss_names.append(loss_name if len(names) == 1 else f"{name}: {loss_name}")
        metrics.append(metric)
        ys.append(y)
    if len(names) == 1:
        losses, metrics, ys = losses[0], metrics[0], ys[0]
    trained.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=losses, metrics=metrics)
    model, y, loss_name = trained, ys, "; ".join(loss_names)
    x = [data.x[n] for n in input_names(model)]
    x = x[0] if len(x) == 1 else x
    steps_per_epoch = -(-len(data) // batch_size)

    class EpochProgress(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            if progress:
                progress(f"fine-tuned epoch {epoch + 1}/{epochs}")

    start = time.perf_counter()
    with quiet_native_output(verbose):
        history = model.fit(
            x,
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
