"""Verification, in one place: compare a converted model with its source on the same inputs, judge it
against the thresholds, and refuse to write bundles that miss them.

Every conversion (plain, mixed int8, an existing `.tflite`) is run with the device's interpreter on
one verification set; the comparison is a running sum over the outputs, one sample at a time."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from edgekit import defaults
from edgekit.bundle import TensorSpec
from edgekit.conversion.accuracy import Accuracy, output_accuracy
from edgekit.conversion.contract import ModelInputs, is_class_scores
from edgekit.conversion.fidelity import Fidelity, box_match, compare_outputs, worst
from edgekit.conversion.inputs import Samples, batch_size, evenly_spaced, synthetic_samples, take
from edgekit.conversion.recipe import MAX_CHANNEL_ERROR, check_thresholds
from edgekit.conversion.tflite_model import TFLiteModel, in_source_order
from edgekit.errors import ConversionError, InputError, UsageError

CHECK_SAMPLES = 200  # calibration inputs reused for the fidelity check
SYNTHETIC_SAMPLES = 32


@dataclass(frozen=True)
class Thresholds:
    """What a conversion must reach to be shipped: fidelity always (every output), accuracy when labels
    are given. `min_accuracy`: output name → minimum top-1 accuracy in percent ("" = every labelled
    classifier output)."""

    min_agreement: float = defaults.MIN_AGREEMENT
    min_cosine: float = defaults.MIN_COSINE
    max_accuracy_drop: float | None = None  # percentage points
    min_accuracy: Mapping[str, float] = field(default_factory=dict)
    max_channel_error: float = MAX_CHANNEL_ERROR

    def __post_init__(self) -> None:
        check_thresholds(self.min_agreement, self.min_cosine, self.max_accuracy_drop)
        if not self.max_channel_error >= 0:
            raise UsageError(f"--max-channel-error must be 0 or more, got {self.max_channel_error}")
        object.__setattr__(self, "min_accuracy", dict(self.min_accuracy))

    def to_dict(self) -> dict[str, Any]:
        return {
            "min_agreement": self.min_agreement,
            "min_cosine": self.min_cosine,
            "max_accuracy_drop": self.max_accuracy_drop,
            "min_accuracy": dict(self.min_accuracy) or None,
            "max_channel_error": self.max_channel_error,
        }


@dataclass(frozen=True)
class VerificationSet:
    """The inputs every conversion is checked on (by input name), the reference outputs on them (one
    array per output, model order), and labels per output name when the user gave labelled data."""

    x: Mapping[str, np.ndarray] | np.ndarray
    reference: Sequence[np.ndarray] | np.ndarray
    labels: Mapping[str, np.ndarray] | np.ndarray | None
    origin: str  # "calibration", "eval-data" or "synthetic"
    is_classifier: bool | Sequence[bool]
    output: str | Sequence[str] = ""
    reference_kind: str = "source"
    # Outputs of the model the accuracy gate protects when it is not `reference`'s: the user's unpruned
    # model, so that pruning cannot lower the bar that --max-accuracy-drop measures from.
    accuracy_reference: Sequence[np.ndarray] | None = None
    postprocess: Mapping[str, Any] | None = None  # detect: how to read boxes (box agreement)
    # The exported signature's input and output keys in source order: converted models are put in it.
    signature: tuple[tuple[str, ...], tuple[str, ...]] | None = None

    def __post_init__(self) -> None:  # one-output callers may pass bare arrays and names
        names = (self.output,) if isinstance(self.output, str) else tuple(self.output)
        reference = [self.reference] if isinstance(self.reference, np.ndarray) else list(self.reference)
        flags = self.is_classifier
        flags = (bool(flags),) * len(names) if isinstance(flags, bool) else tuple(flags)
        labels = self.labels
        if isinstance(labels, np.ndarray):
            labels = {names[0]: labels}
        x = {"input": self.x} if isinstance(self.x, np.ndarray) else dict(self.x)
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "reference", reference)
        object.__setattr__(self, "output", names)
        object.__setattr__(self, "is_classifier", flags)
        object.__setattr__(self, "labels", dict(labels) if labels else None)

    @property
    def outputs(self) -> tuple[str, ...]:
        return self.output  # type: ignore[return-value]

    @property
    def classifiers(self) -> tuple[bool, ...]:
        return self.is_classifier  # type: ignore[return-value]

    @property
    def synthetic(self) -> bool:
        return self.origin == "synthetic"

    @property
    def samples(self) -> int:
        return batch_size(self.x)  # type: ignore[arg-type]

    def source_accuracies(self) -> dict[str, float]:
        """Top-1 accuracy of the source per labelled classifier output."""
        outputs = self.reference if self.accuracy_reference is None else self.accuracy_reference
        return {
            name: output_accuracy(outputs[k], self.labels[name])
            for k, name in enumerate(self.outputs)
            if self.labels and name in self.labels and self.classifiers[k]
        }

    @property
    def source_accuracy(self) -> float | None:
        accuracies = self.source_accuracies()
        return next(iter(accuracies.values())) if len(accuracies) == 1 else (min(accuracies.values(), default=None))

    def to_dict(self) -> dict[str, Any]:
        accuracy = self.source_accuracy
        data = {
            "data": self.origin,
            "samples": self.samples,
            "labelled": self.labels is not None,
            "source_accuracy": None if accuracy is None else round(accuracy, 4),
            "reference": self.reference_kind,
        }
        if len(self.outputs) > 1 and self.labels:
            data["source_accuracy_by_output"] = {k: round(v, 4) for k, v in self.source_accuracies().items()}
        if self.accuracy_reference is not None:
            data["accuracy_of"] = "unpruned source"  # fidelity compares with the pruned model, accuracy with this
        return data


@dataclass(frozen=True)
class Verdict:
    """Fidelity (and accuracy) of one converted model, output by output, and every threshold it misses."""

    fidelities: tuple[Fidelity, ...]
    accuracies: Mapping[str, Accuracy] = field(default_factory=dict)
    problems: tuple[str, ...] = ()

    def __post_init__(self) -> None:  # one-output callers may pass a Fidelity and an Accuracy (or None)
        if isinstance(self.fidelities, Fidelity):
            object.__setattr__(self, "fidelities", (self.fidelities,))
        if self.accuracies is None or isinstance(self.accuracies, Accuracy):
            output = self.fidelities[0].output
            object.__setattr__(self, "accuracies", {} if self.accuracies is None else {output: self.accuracies})

    @property
    def passed(self) -> bool:
        return not self.problems

    @property
    def fidelity(self) -> Fidelity:
        """The worst output's figures (the only output's for a one-output model)."""
        return worst(self.fidelities)

    @property
    def accuracy(self) -> Accuracy | None:
        """The labelled output that lost the most accuracy."""
        return max(self.accuracies.values(), key=lambda a: a.drop_pts, default=None)

    def failing_outputs(self, thresholds: Thresholds) -> tuple[str, ...]:
        """Outputs that miss a fidelity threshold (what --auto-keep-float may keep in float)."""
        return tuple(f.output for f in self.fidelities if fidelity_problems(f, thresholds))


@dataclass(frozen=True)
class ModeConversion:
    """One `.tflite` conversion and its verdict, shared by every target that wants this mode."""

    mode: str
    content: bytes
    seconds: float
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    fidelity: Fidelity
    verdict: Verdict | None = None
    keep_float: tuple[str, ...] = ()  # int8 with these layers (and their readers) in float
    float_layers: tuple[str, ...] = ()
    float_outputs: tuple[str, ...] = ()  # int8 with these outputs computed and returned in float

    @property
    def fidelities(self) -> tuple[Fidelity, ...]:
        return self.verdict.fidelities if self.verdict else (self.fidelity,)

    @property
    def accuracies(self) -> Mapping[str, Accuracy]:
        return self.verdict.accuracies if self.verdict else {}

    @property
    def accuracy(self) -> Accuracy | None:
        return self.verdict.accuracy if self.verdict else None

    @property
    def problems(self) -> tuple[str, ...]:
        return self.verdict.problems if self.verdict else ()


def fidelity_problems(fidelity: Fidelity, thresholds: Thresholds) -> list[str]:
    """The fidelity thresholds one output misses. Top-1 agreement is not judged on synthetic (random)
    inputs: their near-tied scores flip under harmless rounding, so only cosine similarity is."""
    problems = []
    if not fidelity.finite:
        problems.append("the converted model's outputs hold NaN or infinity")
    elif not fidelity.cosine >= thresholds.min_cosine:
        problems.append(f"cosine similarity {fidelity.cosine:.4f} < {thresholds.min_cosine:g} (--min-cosine)")
    agreement = fidelity.top1_agreement
    if agreement is not None and not fidelity.synthetic and agreement < thresholds.min_agreement:
        problems.append(f"top-1 agreement {agreement:.3f} < {thresholds.min_agreement:g} (--min-agreement)")
    channel = fidelity.channel_error
    if fidelity.finite and channel is not None and not channel <= thresholds.max_channel_error:
        problems.append(
            f"channel {fidelity.worst_channel} error {channel:.3f} of its values > {thresholds.max_channel_error:g} "
            "(--max-channel-error)"
        )
    if fidelity.box_match is not None and not fidelity.synthetic and fidelity.box_match < thresholds.min_agreement:
        problems.append(f"box agreement {fidelity.box_match:.3f} < {thresholds.min_agreement:g} (--min-agreement)")
    return problems


def judge(outputs: Iterable[Any], checks: VerificationSet, thresholds: Thresholds) -> Verdict:
    """Fidelity and accuracy of converted outputs (per sample: a list with one array per output, or a
    bare array for a one-output model) on the verification set, and the thresholds they miss."""
    rows = [row if isinstance(row, (list, tuple)) else [row] for row in outputs]
    source_accuracies = checks.source_accuracies()
    several = len(checks.outputs) > 1
    fidelities, accuracies, problems = [], {}, []
    for k, name in enumerate(checks.outputs):
        labels = checks.labels[name] if name in source_accuracies else None  # type: ignore[index]
        fidelity, converted = compare_outputs(
            checks.reference[k],
            (row[k] for row in rows),
            checks.classifiers[k],
            checks.synthetic,
            name,
            checks.reference_kind,
            labels,
            channels=not checks.classifiers[k] and not checks.postprocess,
        )
        if checks.postprocess and k == 0:
            reference = [[ref[i] for ref in checks.reference] for i in range(checks.samples)]
            matched = box_match(reference, rows, dict(checks.postprocess))
            fidelity = replace(fidelity, box_match=matched)
        fidelities.append(fidelity)
        prefix = f"output {name}: " if several else ""
        problems += [prefix + p for p in fidelity_problems(fidelity, thresholds)]
        if converted is not None:
            accuracy = Accuracy(source_accuracies[name], converted, len(labels))  # type: ignore[arg-type]
            accuracies[name] = accuracy
            problems += [prefix + p for p in accuracy_problems(accuracy, name, thresholds)]
    return Verdict(tuple(fidelities), accuracies, tuple(problems))


def accuracy_problems(accuracy: Accuracy, output: str, thresholds: Thresholds) -> list[str]:
    problems = []
    limit = thresholds.max_accuracy_drop
    if limit is not None and accuracy.drop_pts > limit:
        problems.append(
            f"accuracy {accuracy.converted:.2%} vs {accuracy.source:.2%}: drop {accuracy.drop_pts:.2f} pts "
            f"> {limit:g} (--max-accuracy-drop)"
        )
    minimum = thresholds.min_accuracy.get(output, thresholds.min_accuracy.get(""))
    if minimum is not None and accuracy.converted * 100 < minimum:
        problems.append(f"accuracy {accuracy.converted:.2%} < {minimum:g}% (--min-accuracy)")
    return problems


def judge_content(content: bytes, checks: VerificationSet, thresholds: Thresholds, mode: str) -> Verdict:
    """Load a converted model with the device's interpreter, run the verification set, judge it."""
    content = in_source_order(content, checks.signature)
    return judge(TFLiteModel(content, mode=mode).each_output(checks.x), checks, thresholds)


def verify_conversion(
    mode: str, content: bytes, seconds: float, checks: VerificationSet, thresholds: Thresholds
) -> ModeConversion:
    """A converted model with its verdict: run on the verification set with the interpreter `edgekit run`
    uses. Its inputs and outputs are put in the source's order and take the source's names."""
    content = in_source_order(content, checks.signature)
    converted = TFLiteModel(content, mode=mode)
    names_in, names_out = list(checks.x), list(checks.outputs)
    if len(converted.inputs) != len(names_in) or len(converted.outputs) != len(names_out):
        raise ConversionError(
            f"{mode}: the converted model has {len(converted.inputs)} inputs and {len(converted.outputs)} outputs, "
            f"the source {len(names_in)} and {len(names_out)}"
        )
    verdict = judge(converted.each_output(checks.x), checks, thresholds)
    inputs = tuple(replace(t, name=n) for t, n in zip(converted.inputs, names_in))
    outputs = tuple(replace(t, name=n) for t, n in zip(converted.outputs, names_out))
    return ModeConversion(mode, content, seconds, inputs, outputs, verdict.fidelity, verdict)


def verification_set(
    source: Any,
    inputs: ModelInputs,
    calibration: Mapping[str, np.ndarray] | None,
    evaluation: Samples | None,
    unpruned: Any = None,
) -> VerificationSet:
    """What every conversion is checked on: --eval-data when given, else the calibration inputs, else
    random inputs in the model's input range (fidelity only, and said so). With `unpruned` (the user's
    model before pruning) accuracy is measured against it, fidelity against `source`."""
    names = tuple(o.name for o in source.outputs)
    if evaluation is not None:
        x, labels, origin = evaluation.x, evaluation.y, "eval-data"
    elif calibration is not None:
        x, labels, origin = (
            take(calibration, evenly_spaced(batch_size(calibration), CHECK_SAMPLES)),
            None,
            "calibration",
        )
    else:
        x, labels, origin = synthetic_samples(inputs, SYNTHETIC_SAMPLES), None, "synthetic"
    reference = source.predict(x)
    classifiers = classifier_flags(inputs, reference, labels)
    if evaluation is not None:
        for name, y in (labels or {}).items():
            k = names.index(name)
            classes = source.outputs[k].shape[-1]
            if classifiers[k] and len(y) and int(y.max()) >= int(classes):
                raise InputError(
                    f"{evaluation.path}: label {int(y.max())} is out of range for output {name} with {classes} classes"
                )
    labelled = labels is not None and any(classifiers[names.index(n)] for n in labels)
    return VerificationSet(
        x=x,
        reference=reference,
        labels=labels if labelled else None,
        origin=origin,
        is_classifier=classifiers,
        output=names,
        reference_kind="self" if source.kind == "tflite" else str(source.details.get("reference", "source")),
        accuracy_reference=None if unpruned is None or not labelled else unpruned.predict(x),
        postprocess=inputs.postprocess if inputs.task == "detect" else None,
        signature=None if source.kind == "tflite" else (tuple(source.signature_keys), tuple(source.output_keys)),
    )


def classifier_flags(
    inputs: ModelInputs, reference: Sequence[np.ndarray], labels: Mapping[str, np.ndarray] | None
) -> tuple[bool, ...]:
    """Which outputs score classes (top-1 agreement and accuracy are measured on them): a rank-2 output
    that is the model's only one, has labels, or gives probability rows (non-negative, summing to 1)."""
    flags = []
    for k, (info, values) in enumerate(zip(inputs.outputs, reference)):
        rows = values.reshape(len(values), -1)
        probabilities = bool(np.all(rows >= -1e-6) and np.allclose(rows.sum(axis=1), 1.0, atol=1e-3))
        flags.append(
            is_class_scores(info.shape) and (k == inputs.classifier or info.name in (labels or {}) or probabilities)
        )
    return tuple(flags)


def require_labels_for_accuracy_gate(thresholds: Thresholds, checks: VerificationSet) -> None:
    """An accuracy gate that cannot be checked would pass silently: refuse it as a usage error (exit 2)."""
    gates = (["--max-accuracy-drop"] if thresholds.max_accuracy_drop is not None else []) + (
        ["--min-accuracy"] if thresholds.min_accuracy else []
    )
    if gates and checks.labels is None:
        raise UsageError(
            f"{gates[0]} needs labelled --eval-data (a folder per class, or a .npz with x and y or y_<output>) "
            "for a classifier output"
        )
    if thresholds.max_accuracy_drop is not None and checks.reference_kind == "self":
        raise UsageError(
            "--max-accuracy-drop: a .tflite has no source model to measure a drop from; use --min-accuracy PCT"
        )
    labelled = set(checks.source_accuracies())
    for name in thresholds.min_accuracy:
        if name and name not in labelled:
            known = ", ".join(sorted(labelled)) or "none"
            raise UsageError(f"--min-accuracy {name}=...: no labelled classifier output {name!r} (labelled: {known})")


def faithfulness(verdict: Verdict | None) -> float:
    """How to rank models that all fail the checks: accuracy when labelled, else agreement, else cosine."""
    if verdict is None:
        return float("-inf")
    if verdict.accuracy is not None:
        return verdict.accuracy.converted
    if verdict.fidelity.top1_agreement is not None:
        return verdict.fidelity.top1_agreement
    return verdict.fidelity.cosine
