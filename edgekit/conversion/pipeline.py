"""`convert()`: the laptop-side workflow, top to bottom, over one recipe.

load → prune → (export once) quantize → verify → keep layers in float → select → refuse what fails →
compare pruned with unpruned → bundle. Each step takes the conversion's `State` and the recipe and
returns the state with its result added (as an Olive pass takes a model and its config); the work
itself lives in the modules named after it (plan, load, prune/, quantize, verify, keep_float,
selection, bundling), which know nothing of each other's state.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator, Mapping

from edgekit import defaults
from edgekit.bundle import pack_archive
from edgekit.conversion.bundling import BundleResult, write_bundle
from edgekit.conversion.debug import DebugReport
from edgekit.conversion.inputs import sample
from edgekit.conversion.keep_float import (
    FloatOutputs,
    KeepFloatResult,
    MixedModel,
    keep_layers_float,
    keep_outputs_float,
    mixed_conversion,
    nothing_kept,
)
from edgekit.conversion.layer_errors import QuantizationDebug, debug_samples
from edgekit.conversion.load import Loaded, SourceModel, load_inputs
from edgekit.conversion.plan import Plan, plan_conversion
from edgekit.conversion.prune import PruneSettings
from edgekit.conversion.prune.compare import compare_with_unpruned
from edgekit.conversion.prune.model import PruningReport, prune_source
from edgekit.conversion.quantize import Converted, convert_modes, saved_model_dir
from edgekit.conversion.quiet import quiet_warnings
from edgekit.conversion.recipe import ConvertOptions
from edgekit.conversion.report import ConversionReport, conversion_notes
from edgekit.conversion.selection import Candidate, choose_modes, machine_threads, refuse_failing
from edgekit.conversion.verify import (
    ModeConversion,
    Thresholds,
    VerificationSet,
    require_labels_for_accuracy_gate,
    verification_set,
    verify_conversion,
)
from edgekit.errors import ConversionError
from edgekit.progress import Progress, Steps
from edgekit.targets import QUANT_MODES


def convert(
    model: str | os.PathLike[str] | Any,
    recipe: Any = None,
    *,
    progress: Progress | None = None,
    example_inputs: Any = None,
    **options: Any,
) -> ConversionReport:
    """Convert a trained model into one bundle per target, as `recipe` says.

    `recipe` is a ConvertOptions, a dict, a JSON/TOML recipe file (or a bundle's edgekit.json), or None;
    `options` are ConvertOptions fields that override it (`convert("m.keras", targets=["rpi4"],
    quantization="int8", calibration="calib.npz")`). Every conversion is checked against its source; a
    bundle that would miss the thresholds is refused (exit 4) before anything is written, unless
    `allow_degraded`. Each bundle's manifest keeps the recipe, so `convert(model, recipe=<that>)`
    converts the same way again. A torch.nn.Module with `example_inputs=(tensor, ...)` is exported to ONNX
    first (torch.onnx.export) and converted as that `.onnx`."""
    if not isinstance(model, (str, os.PathLike)):
        from edgekit.conversion.onnx_torch import exported_onnx

        with exported_onnx(model, example_inputs) as path:
            return convert(path, recipe, progress=progress, **options)
    recipe = ConvertOptions.resolve(recipe, options)
    with quiet_warnings(recipe.verbose):
        state = load(model, recipe, progress)  # refusals first, then the model, its inputs and the data
        state = prune(state, recipe)  # --prune / --prune-channels (fine-tuned with --finetune-data)
        with export(state, recipe) as state:  # one SavedModel for every mode and the int8 debugger
            state = quantize(state, recipe)  # one .tflite per mode, however many targets share it
            state = verify(state, recipe)  # each run on the verification set and judged
            state = keep_float(state, recipe)  # --keep-float / --auto-keep-float / --explain
        state = select(state, recipe)  # a mode per target (auto: timed); nothing failing gets written
        state = compare_pruned(state, recipe)  # pruned beside unpruned, per bundled mode
        return bundle(state, recipe)  # one bundle per target (+ .tar.gz), and the report


@dataclass(frozen=True)
class State:
    """A conversion as it goes: each step reads what it needs and returns the state with its result."""

    plan: Plan
    loaded: Loaded
    steps: Steps
    unpruned: SourceModel | None = None  # the user's model, when pruning replaced it
    pruning: PruningReport | None = None
    export_dir: Path | None = None
    converted: Mapping[str, Converted] = field(default_factory=dict)
    float32_bytes: int | None = None  # the float32 model's size, what the report's size ratio is against
    checks: VerificationSet | None = None
    thresholds: Thresholds | None = None
    conversions: Mapping[str, ModeConversion] = field(default_factory=dict)  # verified
    failures: Mapping[str, str] = field(default_factory=dict)  # --quantize auto: modes with no model, and why
    explain: DebugReport | None = None
    keep_float: KeepFloatResult | None = None
    float_outputs: FloatOutputs | None = None  # --float-outputs / --auto-keep-float on a ruined output
    chosen: Mapping[str, str | None] = field(default_factory=dict)  # target name → mode
    candidates: Mapping[str, tuple[Candidate, ...]] = field(default_factory=dict)


def load(model: str | os.PathLike[str], recipe: ConvertOptions, progress: Progress | None) -> State:
    plan = plan_conversion(model, recipe)
    loaded = load_inputs(model, recipe)
    if loaded.source.kind == "tflite":
        plan = plan.for_existing_tflite(loaded.source, recipe)
    steps = Steps(progress, plan.steps(recipe))
    steps(f"loaded {loaded.source.path.name}")
    return State(plan, loaded, steps)


def prune(state: State, recipe: ConvertOptions) -> State:
    if not recipe.pruning:
        return state
    loaded = state.loaded
    source, report = prune_source(
        loaded.source,
        PruneSettings.from_recipe(recipe),
        loaded.inputs,
        recipe.finetune_data,
        loaded.evaluation,
        loaded.calibration,
        state.steps,
        recipe.verbose,
    )
    state.steps("pruned")
    return replace(state, loaded=replace(loaded, source=source), unpruned=loaded.source, pruning=report)


@contextlib.contextmanager
def export(state: State, recipe: ConvertOptions) -> Iterator[State]:
    if state.plan.existing_tflite:
        yield state
        return
    with saved_model_dir(state.loaded.source, recipe.verbose) as export_dir:
        yield replace(state, export_dir=export_dir)


def quantize(state: State, recipe: ConvertOptions) -> State:
    source, plan = state.loaded.source, state.plan
    if plan.existing_tflite:
        assert source.tflite_content is not None
        state.steps(f"read {plan.modes[0]}")
        content = source.tflite_content
        float32_bytes = len(content) if plan.modes[0] == "float32" else None
        return replace(
            state, converted={plan.modes[0]: Converted(plan.modes[0], content, 0.0)}, float32_bytes=float32_bytes
        )
    assert state.export_dir is not None
    calibration = state.loaded.calibration
    calibration = None if calibration is None else source.signature_batch(calibration)
    converted, failures, float32_bytes = convert_modes(
        state.export_dir, plan.modes, calibration, recipe.verbose, plan.auto, state.steps
    )
    return replace(state, converted=converted, failures=failures, float32_bytes=float32_bytes)


def verify(state: State, recipe: ConvertOptions) -> State:
    loaded, plan = state.loaded, state.plan
    checks = verification_set(loaded.source, loaded.inputs, loaded.calibration, loaded.evaluation, state.unpruned)
    thresholds = Thresholds(
        recipe.min_agreement,
        recipe.min_cosine,
        recipe.max_accuracy_drop,
        recipe.min_accuracy_by_output(),
        recipe.max_channel_error,
    )
    require_labels_for_accuracy_gate(thresholds, checks)
    if plan.auto and checks.labels is not None and thresholds.max_accuracy_drop is None:
        thresholds = replace(thresholds, max_accuracy_drop=defaults.AUTO_MAX_ACCURACY_DROP)
    conversions, failures = {}, dict(state.failures)
    for mode, converted in state.converted.items():
        try:
            conversions[mode] = verify_conversion(mode, converted.content, converted.seconds, checks, thresholds)
        except ConversionError as exc:  # the interpreter refuses it (int16x8 overflow): a reason under auto
            if not plan.auto:
                raise
            failures[mode] = str(exc)
    return replace(
        state, converted={}, checks=checks, thresholds=thresholds, conversions=conversions, failures=failures
    )


def keep_float(state: State, recipe: ConvertOptions) -> State:
    state = keep_outputs(state, recipe)
    int8 = state.conversions.get("int8")
    if int8 is None or not recipe.debugging:
        return state
    fails = not int8.verdict.passed
    if not (recipe.explain or recipe.keep_float or fails):  # --auto-keep-float, and int8 passes as it is
        return state if state.float_outputs else replace(state, keep_float=nothing_kept(int8))
    steps, checks, thresholds, loaded = state.steps, state.checks, state.thresholds, state.loaded
    if not (recipe.explain or recipe.keep_float):
        steps.add(2)  # the debugger runs after all: --auto-keep-float and int8 fails
    debugger = QuantizationDebug(
        state.export_dir, signature_calibration(state), loaded.source.keras_model, recipe.verbose
    )
    steps("calibrated the quantization debugger")
    probe = debug_samples(checks.x)
    layers = debugger.layer_errors(probe)
    steps("measured layer errors")
    explain = None
    if recipe.explain:
        plain = MixedModel((), int8.content, int8.verdict)
        explain = DebugReport(
            str(loaded.source.path),
            len(next(iter(probe.values()))),
            tuple(layers),
            plain,
            None,
            checks.to_dict(),
            thresholds,
        )
    mixed = None
    if recipe.keep_float or (recipe.auto_keep_float and fails):  # --explain alone never changes the bundle

        def found(label: str) -> None:  # --auto-keep-float's search: one step per attempt
            if not recipe.keep_float:
                steps.add(1)
            steps(label)

        mixed = keep_layers_float(debugger, layers, int8, recipe.keep_float, checks, thresholds, found)
    elif recipe.auto_keep_float:
        mixed = nothing_kept(int8)
    conversions = dict(state.conversions)
    if mixed is not None:
        conversions["int8"] = mixed_conversion(int8, mixed, checks, thresholds)
    return replace(state, conversions=conversions, explain=explain, keep_float=mixed)


def keep_outputs(state: State, recipe: ConvertOptions) -> State:
    """--float-outputs, or --auto-keep-float when int8 ruins an output: those outputs computed in float."""
    int8 = state.conversions.get("int8")
    if int8 is None:
        return state
    outputs = recipe.float_outputs
    if not outputs and recipe.auto_keep_float and not int8.verdict.passed:
        outputs = int8.verdict.failing_outputs(state.thresholds) if len(state.checks.outputs) > 1 else ()
    if not outputs:
        return state
    state.steps.add(1)
    source = state.loaded.source
    debugger = QuantizationDebug(
        state.export_dir, signature_calibration(state), source.keras_model, recipe.verbose, True
    )
    how = "requested" if recipe.float_outputs else "auto"
    kept, conversion = keep_outputs_float(debugger, outputs, int8, how, state.checks, state.thresholds)
    state.steps(f"kept output(s) {', '.join(outputs)} in float")
    if how == "auto" and not conversion.verdict.passed:  # it did not help: the layer search goes on from plain int8
        return replace(state, float_outputs=kept)
    return replace(state, conversions={**state.conversions, "int8": conversion}, float_outputs=kept)


def signature_calibration(state: State) -> dict:
    calibration = state.loaded.calibration
    return {} if calibration is None else state.loaded.source.signature_batch(calibration)


def select(state: State, recipe: ConvertOptions) -> State:
    plan, inputs = state.plan, state.loaded.inputs
    chosen: Mapping[str, str | None] = plan.by_target
    candidates: Mapping[str, tuple[Candidate, ...]] = {}
    if plan.auto:
        chosen, candidates = choose_modes(
            plan.targets,
            state.conversions,
            state.failures,
            sample(state.checks.x, 0),
            plan.name,
            inputs,
            recipe.allow_degraded,
            None
            if recipe.on is None
            else {"on": recipe.on, "ssh_config": recipe.ssh_config, "remote_python": recipe.remote_python},
        )
        state.steps("timed every mode" if recipe.on is None else f"timed every mode on {recipe.on}")
    refuse_failing(plan.targets, chosen, state.conversions, candidates, recipe.allow_degraded)
    return replace(state, chosen=chosen, candidates=candidates)


def compare_pruned(state: State, recipe: ConvertOptions) -> State:
    if state.pruning is None:
        return state
    bundled = sorted(set(state.chosen.values()), key=QUANT_MODES.index)
    threads = {state.chosen[t.name]: machine_threads(t) for t in reversed(state.plan.targets)}
    pruned = {mode: state.conversions[mode].content for mode in bundled}
    loaded = state.loaded
    pruning = compare_with_unpruned(
        state.pruning, state.unpruned, pruned, loaded.calibration, loaded.evaluation, threads, recipe.verbose
    )
    state.steps("measured pruned vs unpruned")
    return replace(state, pruning=pruning)


def bundle(state: State, recipe: ConvertOptions) -> ConversionReport:
    plan, inputs, source, conversions = state.plan, state.loaded.inputs, state.loaded.source, state.conversions
    float32_bytes = state.float32_bytes
    manifest_source = {**source.to_dict(), **({"pruning": state.pruning.summary()} if state.pruning else {})}
    results = []
    for target in plan.targets:
        mode = state.chosen[target.name]
        conversion = conversions[mode]
        path = plan.bundle_path(target)
        write_bundle(
            path,
            plan.name,
            target,
            conversion,
            inputs,
            manifest_source,
            recipe.force,
            recipe.recipe(),
        )
        archive = pack_archive(path, plan.archive_path(target), force=True) if recipe.archive else None
        results.append(
            BundleResult(
                target=target.name,
                arch=target.arch,
                mode=mode,
                path=str(path),
                archive=None if archive is None else str(archive),
                bytes=len(conversion.content),
                archive_bytes=None if archive is None else archive.stat().st_size,
                size_ratio=None if float32_bytes is None else len(conversion.content) / float32_bytes,
                conversion_seconds=conversion.seconds,
                fidelity=conversion.fidelity,
                accuracy=conversion.accuracy,
                problems=conversion.problems,
                keep_float=conversion.keep_float,
                float_layers=conversion.float_layers,
                fidelities=conversion.fidelities,
                accuracies=dict(conversion.accuracies),
                float_outputs=conversion.float_outputs,
                candidates=state.candidates.get(target.name) if plan.auto else None,
            )
        )
        state.steps(f"bundled {target.name}")
    return ConversionReport(
        plan.name,
        source.to_dict(),
        inputs.preprocess,
        float32_bytes,
        tuple(results),
        verification=state.checks.to_dict(),
        thresholds=state.thresholds,
        explain=state.explain,
        keep_float=state.keep_float,
        float_outputs=state.float_outputs,
        task=inputs.task,
        notes=conversion_notes(state, results),
        pruning=state.pruning,
        recipe=recipe,
    )
