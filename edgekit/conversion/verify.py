"""Compare a converted model with its source on the same inputs, and judge it against thresholds:
how faithful is the conversion, and is it good enough to ship?"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgekit.bundle import Preprocess, TensorSpec
from edgekit.conversion.accuracy import Accuracy, EvalData, top1_accuracy
from edgekit.conversion.calibration import evenly_spaced
from edgekit.conversion.quiet import quiet_native_output
from edgekit.errors import ConversionError, EdgekitError, InputError, UsageError
from edgekit.runtime.inspect_model import tensor_spec
from edgekit.runtime.interpreter import check_tflite_header, find_runtime
from edgekit.runtime.preprocess import dequantize, quantize

# A classifier whose top-1 answer changes on more than 1 input in 10 is broken, not "slightly off";
# cosine below 0.98 means outputs that no longer point the same way. Both are flags (--min-agreement,
# --min-cosine) because some models legitimately sit closer to the edge.
DEFAULT_MIN_AGREEMENT = 0.90
DEFAULT_MIN_COSINE = 0.98
CHECK_SAMPLES = 200  # calibration inputs reused for the fidelity check
SYNTHETIC_SAMPLES = 32
INT16_OVERFLOW = "no_integer_overflow_from_quantization"


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

    min_agreement: float = DEFAULT_MIN_AGREEMENT
    min_cosine: float = DEFAULT_MIN_COSINE
    max_accuracy_drop: float | None = None  # percentage points

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_agreement <= 1.0:
            raise InputError(f"--min-agreement must be between 0 and 1, got {self.min_agreement}")
        if not -1.0 <= self.min_cosine <= 1.0:
            raise InputError(f"--min-cosine must be between -1 and 1, got {self.min_cosine}")
        if self.max_accuracy_drop is not None and not 0.0 <= self.max_accuracy_drop <= 100.0:
            raise InputError(f"--max-accuracy-drop is in percentage points (0-100), got {self.max_accuracy_drop}")

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
        return top1_accuracy(outputs, self.labels)

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


class TFLiteModel:
    """A `.tflite` model in memory, run with the same interpreter `edgekit run` uses."""

    def __init__(self, content: bytes, threads: int = 1, where: str | None = None, mode: str | None = None):
        check_tflite_header(content[:8], where or "converted model")
        runtime = find_runtime()
        try:
            with quiet_native_output():  # LiteRT announces its XNNPACK delegate on stderr
                self.interpreter = runtime.interpreter_class(model_content=content, num_threads=threads)
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise load_error(exc, f"{runtime.name} {runtime.version}", where, mode) from None
        self.input = tensor_spec(self.interpreter.get_input_details()[0])
        self.output = tensor_spec(self.interpreter.get_output_details()[0])
        self._in = self.interpreter.get_input_details()[0]["index"]
        self._out = self.interpreter.get_output_details()[0]["index"]

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        return tuple(tensor_spec(d) for d in self.interpreter.get_input_details())

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        return tuple(tensor_spec(d) for d in self.interpreter.get_output_details())

    def predict(self, samples: np.ndarray) -> np.ndarray:
        """Float outputs for a float32 batch, one invoke per sample (the model's batch is 1)."""
        results = []
        for sample in samples:
            self.interpreter.set_tensor(self._in, quantize(sample[None], self.input))
            self.interpreter.invoke()
            results.append(dequantize(self.interpreter.get_tensor(self._out), self.output)[0])
        return np.stack(results)


def load_error(exc: BaseException, runtime: str, where: str | None, mode: str | None) -> EdgekitError:
    """The interpreter's refusal as one line; int16x8's overflow refusal explained, not just quoted."""
    message = " ".join(str(exc).split())
    node = re.search(r"Node number (\d+) \((\w+)\)", message)
    at = f" at node {node.group(1)} ({node.group(2)})" if node else ""
    if INT16_OVERFLOW in message:
        return ConversionError(
            f"{mode or 'the model'}: {runtime} refuses the converted model when allocating it{at}: an activation "
            f"range is so close to zero that its quantization overflows ({INT16_OVERFLOW}). The model has vanishing "
            "activations (dead or untrained layers); use int8 or float16 for it"
        )
    if where is not None:
        return InputError(f"{where}: {runtime} cannot load this model: {message[:300]}")
    return ConversionError(f"{mode or 'converted'} model: {runtime} cannot load it: {message[:300]}")


def compare_outputs(
    reference: np.ndarray,
    converted: np.ndarray,
    classifier: bool,
    synthetic: bool,
    output: str = "",
    reference_kind: str = "source",
) -> Fidelity:
    ref = reference.reshape(len(reference), -1).astype(np.float64)
    out = converted.reshape(len(converted), -1).astype(np.float64)
    error = np.abs(ref - out)
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(out, axis=1)
    with np.errstate(invalid="ignore"):  # NaN/inf outputs give a NaN cosine, which judge() refuses
        cosine = np.where(norms > 0, (ref * out).sum(axis=1) / np.maximum(norms, 1e-30), 1.0)
    agreement = float((ref.argmax(axis=1) == out.argmax(axis=1)).mean()) if classifier else None
    return Fidelity(
        len(ref),
        float(error.max()),
        float(error.mean()),
        float(cosine.mean()),
        agreement,
        synthetic,
        output,
        reference_kind,
    )


def judge(outputs: np.ndarray, checks: VerificationSet, thresholds: Thresholds) -> Verdict:
    """Fidelity and accuracy of converted outputs on the verification set, and the thresholds they miss.

    Top-1 agreement is not judged on synthetic (random) inputs: their near-tied scores flip under
    harmless rounding, so only cosine similarity is."""
    fidelity = compare_outputs(
        checks.reference, outputs, checks.is_classifier, checks.synthetic, checks.output, checks.reference_kind
    )
    accuracy = None
    source_accuracy = checks.source_accuracy
    if source_accuracy is not None and checks.labels is not None:
        accuracy = Accuracy(source_accuracy, top1_accuracy(outputs, checks.labels), len(checks.labels))
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


def verification_set(
    source: Any,
    float_input: TensorSpec,
    preprocess: Preprocess | None,
    calibration: np.ndarray | None,
    evaluation: EvalData | None,
    classes: int | None,
) -> VerificationSet:
    """What every conversion is checked on: --eval-data when given, else the calibration inputs, else
    random inputs in the model's input range (fidelity only, and said so)."""
    if evaluation is not None:
        x, labels, origin = evaluation.x, evaluation.y, "eval-data"
        if labels is not None and classes is not None and len(labels) and int(labels.max()) >= classes:
            raise InputError(
                f"{evaluation.path}: label {int(labels.max())} is out of range for a model with {classes} outputs"
            )
    elif calibration is not None:
        x, labels, origin = calibration[evenly_spaced(len(calibration), CHECK_SAMPLES)], None, "calibration"
    else:
        from edgekit.conversion.pipeline import synthetic_samples

        x, labels, origin = synthetic_samples(float_input, preprocess, SYNTHETIC_SAMPLES), None, "synthetic"
    is_classifier = classes is not None and classes > 1
    return VerificationSet(
        x=x,
        reference=source.predict(x),
        labels=labels if is_classifier else None,
        origin=origin,
        is_classifier=is_classifier,
        output=source.output_name,
        reference_kind="self" if source.kind == "tflite" else "source",
    )


def require_labels_for_accuracy_gate(thresholds: Thresholds, checks: VerificationSet) -> None:
    """--max-accuracy-drop without labels would gate on nothing: refuse it as a usage error."""
    if thresholds.max_accuracy_drop is not None and checks.labels is None:
        raise UsageError(
            "--max-accuracy-drop needs labelled --eval-data (a folder per class, or a .npz with x and y) "
            "and a classifier"
        )


def judge_content(content: bytes, checks: VerificationSet, thresholds: Thresholds, mode: str) -> Verdict:
    """Load a converted model with the device's interpreter, run the verification set, judge it."""
    return judge(TFLiteModel(content, mode=mode).predict(checks.x), checks, thresholds)
