"""int8 models that keep their worst layers in float: the layers named by --keep-float, or the fewest
of the worst ones (--auto-keep-float) that bring the model back within the thresholds.

Keeping a layer in float keeps its *output* in float, so the ops that read it run in float too (see
layer_errors.py); every attempt is judged on the verification set, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

from edgekit.conversion.layer_errors import LayerError, QuantizationDebug
from edgekit.conversion.verify import (
    ModeConversion,
    Thresholds,
    Verdict,
    VerificationSet,
    faithfulness,
    judge_content,
    verify_conversion,
)
from edgekit.errors import InputError

MAX_KEEP_FLOAT_STEPS = 8  # --auto-keep-float tries at most this many worst layers
NEGLIGIBLE_ERROR = 1e-3  # layers below this (pooling, reshapes) are never worth keeping in float

StepDone = Callable[[str], None]  # one finished step, by label (an edgekit.progress.Steps)


@dataclass(frozen=True)
class MixedModel:
    """An int8 model with `layers` kept in float, and how it fares on the verification set."""

    layers: tuple[str, ...]
    content: bytes = field(repr=False)
    verdict: Verdict
    float_layers: tuple[str, ...] = ()  # `layers` and the layers reading their outputs

    @property
    def bytes(self) -> int:
        return len(self.content)

    def to_dict(self) -> dict[str, Any]:
        accuracy = self.verdict.accuracy
        return {
            "keep_float": list(self.layers),
            "float_layers": list(self.float_layers),
            "bytes": self.bytes,
            "agreement": self.verdict.fidelity.top1_agreement,
            "cosine": round(self.verdict.fidelity.cosine, 6),
            "accuracy": None if accuracy is None else accuracy.to_dict(),
            "passed": self.verdict.passed,
            "problems": list(self.verdict.problems),
        }


@dataclass(frozen=True)
class KeepFloatResult:
    """The outcome of --keep-float / --auto-keep-float: the model chosen, the plain int8 it replaces,
    and (for the automatic search) every attempt in order."""

    how: str  # "requested" or "auto"
    chosen: MixedModel
    int8: MixedModel
    steps: tuple[MixedModel, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "how": self.how,
            "layers": list(self.chosen.layers),
            "mixed": self.chosen.to_dict(),
            "int8": self.int8.to_dict(),
            "steps": [s.to_dict() for s in self.steps],
        }


def resolve_keep_float(names: Sequence[str], layers: Sequence[LayerError]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """--keep-float names (Keras layer names, or TFLite tensor names from the debug report) → (layer
    names, tensors to keep in float). An unknown name is an error that lists the known ones."""
    kept: list[str] = []
    tensors: list[str] = []
    for name in names:
        matches = [layer for layer in layers if name in (layer.layer, layer.tensor)]
        if not matches:
            known = list(dict.fromkeys(layer.name for layer in layers if layer.layer))
            raise InputError(
                f"--keep-float {name}: no quantized layer of that name "
                f"(layers, worst first: {', '.join(known[:12])}{' ...' if len(known) > 12 else ''})"
            )
        kept.append(name)
        tensors.extend(t for m in matches for t in (m.tensor, *m.readers))
    return tuple(dict.fromkeys(kept)), tuple(dict.fromkeys(tensors))


def worst_layers(layers: Sequence[LayerError]) -> list[tuple[str, tuple[str, ...]]]:
    """Layers worth keeping in float, worst first, each with the tensors that stay float with it (its
    ops' and their readers')."""
    groups: dict[str, list[LayerError]] = {}
    for layer in layers:
        groups.setdefault(layer.name, []).append(layer)
    ranked = sorted(groups.items(), key=lambda item: max(e.channel_error for e in item[1]), reverse=True)
    return [
        (name, tuple(dict.fromkeys(t for e in errors for t in (e.tensor, *e.readers))))
        for name, errors in ranked
        if max(e.channel_error for e in errors) > NEGLIGIBLE_ERROR
    ]


def search_keep_float(
    debug: QuantizationDebug,
    layers: Sequence[LayerError],
    judge_content: Callable[[bytes], Verdict],
    int8: MixedModel,
    max_steps: int = MAX_KEEP_FLOAT_STEPS,
    progress: StepDone | None = None,
) -> KeepFloatResult:
    """Keep the worst layer in float, then the two worst, ... until the model passes the thresholds
    (at most `max_steps` layers). Kept layers are measured, never guessed: a layer can rank high only
    because its input was already ruined upstream, and keeping both may be what it takes."""
    steps: list[MixedModel] = []
    candidates = worst_layers(layers)
    for k in range(1, min(max_steps, len(candidates)) + 1):
        names = tuple(name for name, _ in candidates[:k])
        tensors = tuple(dict.fromkeys(t for _, group in candidates[:k] for t in group))
        content = debug.quantize(tensors)
        steps.append(MixedModel(names, content, judge_content(content), float_layers(tensors, layers)))
        if progress:
            progress(f"kept {k} layer(s) in float")
        if steps[-1].verdict.passed:
            break
    passed = [s for s in steps if s.verdict.passed]
    chosen = passed[0] if passed else max(steps, key=lambda s: faithfulness(s.verdict), default=int8)
    return KeepFloatResult("auto", chosen, int8, tuple(steps))


def float_layers(tensors: Sequence[str], layers: Sequence[LayerError]) -> tuple[str, ...]:
    """The layer names of the tensors kept in float, for the report."""
    by_tensor = {layer.tensor: layer.name for layer in layers}
    return tuple(dict.fromkeys(by_tensor.get(t, t) for t in tensors))


def keep_layers_float(
    debugger: QuantizationDebug,
    layers: Sequence[LayerError],
    int8: ModeConversion,
    keep_float: Sequence[str],
    checks: VerificationSet,
    thresholds: Thresholds,
    progress: StepDone,
) -> KeepFloatResult:
    """--keep-float LAYER...: exactly those layers in float; --auto-keep-float: the search, worst first."""

    def judged(content: bytes) -> Verdict:
        return judge_content(content, checks, thresholds, "int8")

    baseline = MixedModel((), int8.content, int8.verdict)
    if not keep_float:
        return search_keep_float(debugger, layers, judged, baseline, progress=progress)
    names, tensors = resolve_keep_float(keep_float, layers)
    content = debugger.quantize(tensors)
    progress(f"kept {len(names)} layer(s) in float")
    chosen = MixedModel(names, content, judged(content), float_layers(tensors, layers))
    return KeepFloatResult("requested", chosen, baseline)


def nothing_kept(int8: ModeConversion) -> KeepFloatResult:
    """--auto-keep-float when plain int8 passes: nothing to keep in float."""
    baseline = MixedModel((), int8.content, int8.verdict)
    return KeepFloatResult("auto", baseline, baseline)


def mixed_conversion(
    int8: ModeConversion, mixed: KeepFloatResult, checks: VerificationSet, thresholds: Thresholds
) -> ModeConversion:
    """The int8 conversion with the mixed model in its place (unchanged when nothing is kept in float)."""
    if not mixed.chosen.layers:
        return int8
    checked = verify_conversion("int8", mixed.chosen.content, int8.seconds, checks, thresholds)
    return replace(checked, keep_float=mixed.chosen.layers, float_layers=mixed.chosen.float_layers)


@dataclass(frozen=True)
class FloatOutputs:
    """int8 with some outputs computed and returned in float (--float-outputs, or --auto-keep-float when
    an output fails its check): the model's inputs and outputs are float, dequantized inside."""

    how: str  # "requested" or "auto"
    outputs: tuple[str, ...]
    model: MixedModel
    int8: MixedModel

    def to_dict(self) -> dict[str, Any]:
        return {
            "how": self.how,
            "outputs": list(self.outputs),
            "mixed": self.model.to_dict(),
            "int8": self.int8.to_dict(),
        }


def keep_outputs_float(
    debugger: QuantizationDebug,
    outputs: Sequence[str],
    int8: ModeConversion,
    how: str,
    checks: VerificationSet,
    thresholds: Thresholds,
) -> tuple[FloatOutputs, ModeConversion]:
    """int8 with the ops producing `outputs` (source names) in float and float I/O: one output that
    packs values of very different ranges (boxes in pixels beside 0-1 scores) keeps them all."""
    names = list(checks.outputs)
    unknown = [o for o in outputs if o not in names]
    if unknown:
        raise InputError(
            f"--float-outputs {unknown[0]}: the model has no output of that name (outputs: {', '.join(names)})"
        )
    tensors = debugger.output_tensors()
    content = debugger.quantize(tuple(tensors[names.index(o)] for o in outputs))
    checked = verify_conversion("int8", content, int8.seconds, checks, thresholds)
    checked = replace(checked, float_outputs=tuple(outputs))
    model = MixedModel((), content, checked.verdict, tuple(outputs))
    baseline = MixedModel((), int8.content, int8.verdict)
    return FloatOutputs(how, tuple(outputs), model, baseline), checked
