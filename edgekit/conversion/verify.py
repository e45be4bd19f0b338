"""Verification, in one place: compare a converted model with its source on the same inputs, judge it
against the thresholds, and refuse to write bundles that miss them.

Every conversion (plain, mixed int8, an existing `.tflite`) is run with the device's interpreter on
one verification set; the comparison is a running sum over the outputs, one sample at a time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from edgekit import defaults
from edgekit.bundle import TensorSpec
from edgekit.conversion.accuracy import Accuracy, output_accuracy
from edgekit.conversion.inputs import ModelInputs, Samples, evenly_spaced, synthetic_samples
from edgekit.conversion.recipe import check_thresholds
from edgekit.conversion.tflite_model import TFLiteModel
from edgekit.errors import CheckFailed, FidelityError, InputError, UsageError

CHECK_SAMPLES = 200  # calibration inputs reused for the fidelity check
SYNTHETIC_SAMPLES = 32


@dataclass(frozen=True)
class Fidelity:
    """Agreement of converted outputs with source outputs over `samples` inputs, for one output.

    `reference` says what the converted model was compared with: its "source" model, or "self" for an
    existing `.tflite` that has nothing else to be compared with."""

    samples: int
    max_abs_error: float
    mean_abs_error: float
    cosine: float
    top1_agreement: float | None
    synthetic: bool = False
    output: str = ""
    reference: str = "source"

    @property
    def finite(self) -> bool:
        return bool(np.isfinite([self.max_abs_error, self.mean_abs_error, self.cosine]).all())

    def to_dict(self) -> dict[str, Any]:
        def number(value: float) -> float | None:  # NaN/inf (a broken model) as null: manifests stay valid JSON
            return round(value, 6) if np.isfinite(value) else None

        return {
            "output": self.output,
            "samples": self.samples,
            "max_abs_error": number(self.max_abs_error),
            "mean_abs_error": number(self.mean_abs_error),
            "cosine": number(self.cosine),
            "top1_agreement": None if self.top1_agreement is None else round(self.top1_agreement, 4),
            "synthetic": self.synthetic,
            "reference": self.reference,
        }


@dataclass(frozen=True)
class Thresholds:
    """What a conversion must reach to be shipped: fidelity always, accuracy when labels are given."""

    min_agreement: float = defaults.MIN_AGREEMENT
    min_cosine: float = defaults.MIN_COSINE
    max_accuracy_drop: float | None = None  # percentage points

    def __post_init__(self) -> None:
        check_thresholds(self.min_agreement, self.min_cosine, self.max_accuracy_drop)

    def to_dict(self) -> dict[str, Any]:
        return {
            "min_agreement": self.min_agreement,
            "min_cosine": self.min_cosine,
            "max_accuracy_drop": self.max_accuracy_drop,
        }


@dataclass(frozen=True)
class VerificationSet:
    """The inputs every conversion is checked on, with the reference outputs on them (and labels when
    the user gave labelled evaluation data)."""

    x: np.ndarray
    reference: np.ndarray
    labels: np.ndarray | None
    origin: str  # "calibration", "eval-data" or "synthetic"
    is_classifier: bool
    output: str = ""
    reference_kind: str = "source"
    # Outputs of the model the accuracy gate protects when it is not `reference`'s: the user's unpruned
    # model, so that pruning cannot lower the bar that --max-accuracy-drop measures from.
    accuracy_reference: np.ndarray | None = None

    @property
    def synthetic(self) -> bool:
        return self.origin == "synthetic"

    @property
    def source_accuracy(self) -> float | None:
        if self.labels is None or not self.is_classifier:
            return None
        outputs = self.reference if self.accuracy_reference is None else self.accuracy_reference
        return output_accuracy(outputs, self.labels)

    def to_dict(self) -> dict[str, Any]:
        accuracy = self.source_accuracy
        data = {
            "data": self.origin,
            "samples": int(len(self.x)),
            "labelled": self.labels is not None,
            "source_accuracy": None if accuracy is None else round(accuracy, 4),
            "reference": self.reference_kind,
        }
        if self.accuracy_reference is not None:
            data["accuracy_of"] = "unpruned source"  # fidelity compares with the pruned model, accuracy with this
        return data


@dataclass(frozen=True)
class Verdict:
    """Fidelity (and accuracy) of one converted model, and every threshold it misses."""

    fidelity: Fidelity
    accuracy: Accuracy | None
    problems: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return not self.problems


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

    @property
    def accuracy(self) -> Accuracy | None:
        return self.verdict.accuracy if self.verdict else None

    @property
    def problems(self) -> tuple[str, ...]:
        return self.verdict.problems if self.verdict else ()


def compare_outputs(
    reference: np.ndarray,
    converted: Iterable[np.ndarray],
    classifier: bool,
    synthetic: bool,
    output: str = "",
    reference_kind: str = "source",
    labels: np.ndarray | None = None,
) -> tuple[Fidelity, float | None]:
    """Fidelity of `converted` outputs (an array, or one output at a time) against `reference`, as
    running sums; with `labels`, also the converted outputs' top-1 accuracy."""
    ref = reference.reshape(len(reference), -1).astype(np.float64)
    max_error = error_sum = cosine_sum = 0.0
    agree = correct = count = 0
    finite = True
    for row, out in zip(ref, converted):
        out = np.asarray(out, dtype=np.float64).reshape(-1)
        error = np.abs(row - out)
        finite = finite and bool(np.isfinite(error).all())
        max_error = max(max_error, float(error.max()))
        error_sum += float(error.sum())
        norm = float(np.linalg.norm(row) * np.linalg.norm(out))
        with np.errstate(invalid="ignore"):  # NaN/inf outputs give a NaN cosine, which judge() refuses
            cosine_sum += float(row @ out) / max(norm, 1e-30) if norm > 0 else 1.0
        agree += int(row.argmax() == out.argmax())
        if labels is not None:
            correct += int(out.argmax() == labels[count])
        count += 1
    fidelity = Fidelity(
        count,
        max_error if finite else float("nan"),
        error_sum / max(count * ref.shape[1], 1),
        cosine_sum / max(count, 1),
        agree / count if classifier and count else None,
        synthetic,
        output,
        reference_kind,
    )
    return fidelity, (correct / count if labels is not None and count else None)


def judge(outputs: Iterable[np.ndarray], checks: VerificationSet, thresholds: Thresholds) -> Verdict:
    """Fidelity and accuracy of converted outputs on the verification set, and the thresholds they miss.

    Top-1 agreement is not judged on synthetic (random) inputs: their near-tied scores flip under
    harmless rounding, so only cosine similarity is."""
    source_accuracy = checks.source_accuracy
    labels = checks.labels if source_accuracy is not None else None
    fidelity, converted_accuracy = compare_outputs(
        checks.reference, outputs, checks.is_classifier, checks.synthetic, checks.output, checks.reference_kind, labels
    )
    accuracy = None
    if source_accuracy is not None and converted_accuracy is not None:
        accuracy = Accuracy(source_accuracy, converted_accuracy, len(checks.labels))
    problems = []
    if not fidelity.finite:
        problems.append("the converted model's outputs hold NaN or infinity")
    elif not fidelity.cosine >= thresholds.min_cosine:
        problems.append(f"cosine similarity {fidelity.cosine:.4f} < {thresholds.min_cosine:g} (--min-cosine)")
    agreement = fidelity.top1_agreement
    if agreement is not None and not fidelity.synthetic and agreement < thresholds.min_agreement:
        problems.append(f"top-1 agreement {agreement:.3f} < {thresholds.min_agreement:g} (--min-agreement)")
    limit = thresholds.max_accuracy_drop
    if accuracy is not None and limit is not None and accuracy.drop_pts > limit:
        problems.append(
            f"accuracy {accuracy.converted:.2%} vs {accuracy.source:.2%}: drop {accuracy.drop_pts:.2f} pts "
            f"> {limit:g} (--max-accuracy-drop)"
        )
    return Verdict(fidelity, accuracy, tuple(problems))


def judge_content(content: bytes, checks: VerificationSet, thresholds: Thresholds, mode: str) -> Verdict:
    """Load a converted model with the device's interpreter, run the verification set, judge it."""
    return judge(TFLiteModel(content, mode=mode).each_output(checks.x), checks, thresholds)


def verify_conversion(
    mode: str, content: bytes, seconds: float, checks: VerificationSet, thresholds: Thresholds
) -> ModeConversion:
    """A converted model with its verdict: run on the verification set with the interpreter `edgekit run` uses."""
    converted = TFLiteModel(content, mode=mode)
    verdict = judge(converted.each_output(checks.x), checks, thresholds)
    return ModeConversion(mode, content, seconds, converted.inputs, converted.outputs, verdict.fidelity, verdict)


def verification_set(
    source: Any,
    inputs: ModelInputs,
    calibration: np.ndarray | None,
    evaluation: Samples | None,
    unpruned: Any = None,
) -> VerificationSet:
    """What every conversion is checked on: --eval-data when given, else the calibration inputs, else
    random inputs in the model's input range (fidelity only, and said so). With `unpruned` (the user's
    model before pruning) accuracy is measured against it, fidelity against `source`."""
    classes = inputs.classes
    if evaluation is not None:
        x, labels, origin = evaluation.x, evaluation.y, "eval-data"
        if labels is not None and classes is not None and len(labels) and int(labels.max()) >= classes:
            raise InputError(
                f"{evaluation.path}: label {int(labels.max())} is out of range for a model with {classes} outputs"
            )
    elif calibration is not None:
        x, labels, origin = calibration[evenly_spaced(len(calibration), CHECK_SAMPLES)], None, "calibration"
    else:
        x, labels, origin = synthetic_samples(inputs.tensor, inputs.preprocess, SYNTHETIC_SAMPLES), None, "synthetic"
    labels = labels if inputs.is_classifier else None
    return VerificationSet(
        x=x,
        reference=source.predict(x),
        labels=labels,
        origin=origin,
        is_classifier=inputs.is_classifier,
        output=source.output_name,
        reference_kind="self" if source.kind == "tflite" else "source",
        accuracy_reference=None if unpruned is None or labels is None else unpruned.predict(x),
    )


def require_labels_for_accuracy_gate(thresholds: Thresholds, checks: VerificationSet) -> None:
    """--max-accuracy-drop without labels would gate on nothing: refuse it as a usage error."""
    if thresholds.max_accuracy_drop is not None and checks.labels is None:
        raise UsageError(
            "--max-accuracy-drop needs labelled --eval-data (a folder per class, or a .npz with x and y) "
            "and a classifier"
        )


def refuse_failing(
    targets: Sequence[Any],
    plan: Mapping[str, str | None],
    conversions: Mapping[str, ModeConversion],
    candidates: Mapping[str, Sequence[Any]],
    allow_degraded: bool,
) -> None:
    """Nothing is written when a bundle would miss the thresholds, unless --allow-degraded."""
    for target in targets:
        if plan.get(target.name) is None:
            reasons = "; ".join(f"{c.mode}: {c.reason}" for c in candidates.get(target.name, ()))
            raise CheckFailed(
                f"--quantize auto: no mode passes the checks for target {target.name} ({reasons}); nothing written "
                "(--allow-degraded writes the most faithful one anyway)"
            )
    if allow_degraded:
        return
    for mode in dict.fromkeys(plan[t.name] for t in targets):
        conversion = conversions[mode]
        if conversion.problems:
            users = ", ".join(t.name for t in targets if plan[t.name] == mode)
            kind = FidelityError if any("--max-accuracy-drop" not in p for p in conversion.problems) else CheckFailed
            raise kind(
                f"{mode} conversion for {users} fails the checks: {'; '.join(conversion.problems)}; nothing written "
                "(--allow-degraded writes it anyway; edgekit debug shows which layers lose the accuracy)"
            )


def faithfulness(verdict: Verdict | None) -> float:
    """How to rank models that all fail the checks: accuracy when labelled, else agreement, else cosine."""
    if verdict is None:
        return float("-inf")
    if verdict.accuracy is not None:
        return verdict.accuracy.converted
    if verdict.fidelity.top1_agreement is not None:
        return verdict.fidelity.top1_agreement
    return verdict.fidelity.cosine
