"""`edgekit debug`: where int8 quantization hurts a model, layer by layer, worst first, and which layers
to keep in float when the int8 model misses the thresholds."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Sequence

from edgekit import defaults
from edgekit.conversion.keep_float import MAX_KEEP_FLOAT_STEPS, KeepFloatResult, MixedModel, search_keep_float
from edgekit.conversion.layer_errors import DEBUG_SAMPLES, LayerError, QuantizationDebug, debug_samples
from edgekit.conversion.load import load_inputs
from edgekit.conversion.quantize import saved_model_dir
from edgekit.conversion.quiet import quiet_warnings
from edgekit.conversion.recipe import ConvertOptions
from edgekit.conversion.verify import (
    Thresholds,
    Verdict,
    judge_content,
    require_labels_for_accuracy_gate,
    verification_set,
)
from edgekit.errors import InputError
from edgekit.progress import Progress, Steps


@dataclass(frozen=True)
class DebugReport:
    """The result of `edgekit debug` (and of `convert --explain`): layers sorted worst first."""

    model: str
    samples: int
    layers: tuple[LayerError, ...]
    int8: MixedModel | None = None
    suggestion: KeepFloatResult | None = None
    verification: dict[str, Any] = field(default_factory=dict)
    thresholds: Thresholds | None = None

    @property
    def suspects(self) -> tuple[str, ...]:
        return tuple(
            dict.fromkeys(layer.name for layer in self.layers if layer.channel_error >= defaults.SUSPECT_ERROR)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "debug_samples": self.samples,
            "verification": dict(self.verification),
            "thresholds": None if self.thresholds is None else self.thresholds.to_dict(),
            "int8": None if self.int8 is None else self.int8.to_dict(),
            "suspects": list(self.suspects),
            "suggestion": None if self.suggestion is None else self.suggestion.to_dict(),
            "layers": [layer.to_dict() for layer in self.layers],
        }


def debug(
    model: str | os.PathLike[str],
    calibration: str | os.PathLike[str],
    calibration_size: int = defaults.CALIBRATION_SIZE,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    eval_data: str | os.PathLike[str] | None = None,
    eval_size: int = defaults.EVAL_SIZE,
    labels: str | os.PathLike[str] | None = None,
    thresholds: Thresholds | None = None,
    search: bool = True,
    unsafe_load: bool = False,
    verbose: bool = False,
    progress: Progress | None = None,
) -> DebugReport:
    """Where int8 quantization hurts a model, layer by layer, worst first; when the int8 model misses the
    thresholds, which layers to keep in float (the --auto-keep-float search). `progress` follows
    edgekit.progress: (label, steps done, total)."""
    thresholds = thresholds or Thresholds()
    recipe = ConvertOptions(
        quantization="int8",
        calibration=calibration,
        calibration_size=calibration_size,
        mean=mean,
        std=std,
        eval_data=eval_data,
        eval_size=eval_size,
        labels=labels,
        unsafe_load=unsafe_load,
        verbose=verbose,
        min_agreement=thresholds.min_agreement,
        min_cosine=thresholds.min_cosine,
        max_accuracy_drop=thresholds.max_accuracy_drop,
    )
    report = Steps(progress, 3)  # calibrated, layer errors, int8 judged; the search adds its own
    with quiet_warnings(verbose):
        loaded = load_inputs(model, recipe)  # the same opening as convert
        source = loaded.source
        if source.kind == "tflite":
            raise InputError(f"{source.path}: debugging quantization needs the float source model, not a .tflite")
        checks = verification_set(source, loaded.inputs, loaded.calibration, loaded.evaluation)
        require_labels_for_accuracy_gate(thresholds, checks)
        assert loaded.calibration is not None
        with saved_model_dir(source, verbose) as export_dir:
            debugger = QuantizationDebug(
                export_dir, source.signature_batch(loaded.calibration), source.keras_model, verbose
            )
        report("calibrated")
        layers = debugger.layer_errors(debug_samples(checks.x))
        report("measured layer errors")

        def judged(content: bytes) -> Verdict:
            return judge_content(content, checks, thresholds, "int8")

        int8_content = debugger.quantize(())
        int8 = MixedModel((), int8_content, judged(int8_content))
        report("judged int8")
        suggestion = None
        if search and not int8.verdict.passed:
            report.add(MAX_KEEP_FLOAT_STEPS)
            suggestion = search_keep_float(debugger, layers, judged, int8, progress=report)
    return DebugReport(
        model=str(model),
        samples=min(checks.samples, DEBUG_SAMPLES),
        layers=tuple(layers),
        int8=int8,
        suggestion=suggestion,
        verification=checks.to_dict(),
        thresholds=thresholds,
    )
