"""The result of `convert()`: every bundle written, what the checks found, and what a reader should know."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgekit.bundle import Preprocess
from edgekit.conversion.bundling import BundleResult
from edgekit.conversion.debug import DebugReport
from edgekit.conversion.keep_float import FloatOutputs, KeepFloatResult
from edgekit.conversion.prune.model import PruningReport
from edgekit.conversion.quantize import INT16X8_NOTE
from edgekit.conversion.recipe import ConvertOptions
from edgekit.conversion.verify import Thresholds


@dataclass(frozen=True)
class ConversionReport:
    """The result of `edgekit convert`."""

    name: str
    source: dict[str, Any]
    preprocess: Preprocess | None
    float32_bytes: int | None
    bundles: tuple[BundleResult, ...] = field(default_factory=tuple)
    verification: dict[str, Any] = field(default_factory=dict)
    thresholds: Thresholds | None = None
    explain: DebugReport | None = None  # --explain: the int8 layer report
    keep_float: KeepFloatResult | None = None  # --keep-float / --auto-keep-float: mixed vs plain int8
    float_outputs: FloatOutputs | None = None  # --float-outputs / --auto-keep-float: outputs kept in float
    task: str = "raw"
    notes: tuple[str, ...] = ()
    pruning: PruningReport | None = None  # --prune / --prune-channels: what it did and bought
    recipe: ConvertOptions | None = None  # the settings it was made with (its `recipe()` is in each manifest)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": dict(self.source),
            "preprocess": self.preprocess.to_dict() if self.preprocess else None,
            "float32_bytes": self.float32_bytes,
            "verification": dict(self.verification),
            "thresholds": None if self.thresholds is None else self.thresholds.to_dict(),
            "bundles": [b.to_dict() for b in self.bundles],
            "task": self.task,
            "keep_float": None if self.keep_float is None else self.keep_float.to_dict(),
            "float_outputs": None if self.float_outputs is None else self.float_outputs.to_dict(),
            "explain": None if self.explain is None else self.explain.to_dict(),
            "notes": list(self.notes),
            "pruning": None if self.pruning is None else self.pruning.to_dict(),
            "recipe": None if self.recipe is None else self.recipe.recipe(),
        }


def conversion_notes(state: Any, results: list[BundleResult]) -> tuple[str, ...]:
    """What a reader of the report should know that the numbers do not say."""
    notes = []
    if state.checks.synthetic:
        notes.append(
            "fidelity measured on random inputs (no --calibration or --eval-data): cosine only, top-1 agreement "
            "is reported but not judged"
        )
    source = state.loaded.source
    if source.kind == "tflite":
        notes.append(
            f"existing {source.quantization} .tflite bundled as it is; its fidelity is checked against itself "
            "(nothing else to compare with)"
        )
    modes = {b.mode for b in results} | {c.mode for group in state.candidates.values() for c in group}
    if "int16x8" in modes:
        notes.append(INT16X8_NOTE)
    kept = state.float_outputs
    if kept is not None and kept.model.verdict.passed:
        why = "--float-outputs" if kept.how == "requested" else "--auto-keep-float: plain int8 failed their check"
        notes.append(
            f"int8 keeps output(s) {', '.join(kept.outputs)} in float ({why}); the model's inputs and outputs are "
            "float, quantized and dequantized inside"
        )
    elif kept is not None:
        notes.append(f"keeping output(s) {', '.join(kept.outputs)} in float did not bring int8 within the thresholds")
    if any(b.degraded for b in results):
        notes.append("--allow-degraded: some bundles miss the thresholds (see 'problems'); their manifests say so")
    return tuple(notes)
