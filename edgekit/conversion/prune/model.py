"""Pruning a Keras model as `convert` does it: channels first (a narrower model), then magnitude;
fine-tuned with labelled data, else one-shot; and the report of what it did."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from edgekit.conversion.accuracy import model_accuracy
from edgekit.conversion.inputs import TRAINING, ModelInputs, Samples, load_samples, take
from edgekit.conversion.load import input_names, output_names, with_keras_model
from edgekit.conversion.prune import PruneSettings
from edgekit.conversion.prune.channels import ChannelPruning, prune_channels
from edgekit.conversion.prune.compare import PrunedVsUnpruned
from edgekit.conversion.prune.finetune import BATCH_SIZE, FineTuning, fine_tune
from edgekit.conversion.prune.magnitude import (
    FINETUNED_BLOCK,
    MagnitudePruning,
    apply_sparsity,
    measured_sparsity,
    plan_magnitude,
    pruning_callback,
)
from edgekit.conversion.quiet import import_keras
from edgekit.errors import InputError

StepDone = Callable[[str], None]  # one finished step, by label (an edgekit.progress.Steps)
COMPENSATION_SAMPLES = 256  # inputs to average the activations of removed channels over


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


def keras_predictor(model: Any) -> Callable[[Any], Any]:
    """A Keras model called on inputs by name: one array for one output, else a list (model order)."""
    names = input_names(model)

    def predict(batch: Any) -> Any:
        arrays = [batch[name] for name in names] if isinstance(batch, dict) else [batch]
        outputs = model(arrays[0] if len(arrays) == 1 else arrays, training=False)
        if isinstance(outputs, (list, tuple)):
            return [np.asarray(o) for o in outputs]
        return np.asarray(outputs)

    return predict


def copy_model(model: Any) -> Any:
    keras = import_keras()
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def prune_model(
    model: Any,
    settings: PruneSettings,
    train: Samples | None = None,
    evaluation: Samples | None = None,
    progress: StepDone | None = None,
    verbose: bool = False,
    samples: dict[str, np.ndarray] | None = None,
) -> tuple[Any, PruningReport]:
    """Prune a Keras model: channels first (a narrower model), then magnitude; fine-tune when
    `train` is given, else one-shot. The input model is left untouched. `samples` (model inputs, the
    calibration data in `convert`) let channel pruning keep each layer's mean output."""
    accuracy: dict[str, float] = {}
    if evaluation is not None:
        accuracy["unpruned"] = model_accuracy(keras_predictor(model), evaluation, output_names(model))
    channels = None
    if settings.channels is not None:
        if len(model.inputs) > 1:
            raise InputError(
                f"--prune-channels rebuilds models with one input; this one has {len(model.inputs)} "
                "(use --prune, which keeps the topology)"
            )
        if samples is None and train is not None:
            samples = take(train.x, slice(0, len(train), max(1, len(train) // COMPENSATION_SAMPLES)))
        samples = None if samples is None else take(samples, slice(0, COMPENSATION_SAMPLES))
        samples = None if samples is None else next(iter(samples.values()))
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
            accuracy["one_shot"] = model_accuracy(keras_predictor(model), evaluation, output_names(model))
    else:
        if evaluation is not None:
            one_shot = copy_model(model)
            if plan:
                apply_sparsity(plan_magnitude(one_shot, settings.skip, settings.include), settings.sparsity, block)
            accuracy["one_shot"] = model_accuracy(keras_predictor(one_shot), evaluation, output_names(one_shot))
            del one_shot
        callbacks = []
        if plan:
            steps = -(-len(train) // BATCH_SIZE) * settings.epochs
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
            accuracy["fine_tuned"] = model_accuracy(keras_predictor(model), evaluation, output_names(model))
    magnitude = measured_sparsity(plan, settings.sparsity, block) if plan else None
    report = PruningReport(settings, magnitude, channels, tuning, accuracy or None)
    return model, report


def prune_source(
    source: Any,
    settings: PruneSettings,
    inputs: ModelInputs,
    finetune_data: str | None = None,
    evaluation: Samples | None = None,
    calibration: dict[str, np.ndarray] | None = None,
    progress: StepDone | None = None,
    verbose: bool = False,
) -> tuple[Any, PruningReport]:
    """A loaded Keras source model → a pruned one, ready to convert, and the report."""
    if source.kind not in ("keras", "h5"):
        raise InputError(
            f"{source.path}: pruning rewrites Keras models; give the .keras (or .h5) file, not a {source.kind}"
        )
    train = None
    if finetune_data is not None:
        train = load_samples(finetune_data, inputs, option=TRAINING)
    labelled = evaluation if evaluation is not None and evaluation.labelled else None
    model, report = prune_model(source.keras_model, settings, train, labelled, progress, verbose, calibration)
    return with_keras_model(source, model), report
