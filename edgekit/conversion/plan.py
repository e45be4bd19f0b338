"""What a conversion will make, decided before any work: the targets, the mode each one gets, the modes
to convert (each once, however many targets share it), the bundles' names and how many steps it takes.
Everything that can be refused from the recipe and the target profiles is refused here, so a mistake
costs no model loading and leaves nothing behind."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

from edgekit import defaults
from edgekit.bundle import ARCHIVE_SUFFIX
from edgekit.conversion.load import check_model_file
from edgekit.conversion.quantize import CALIBRATED_MODES
from edgekit.conversion.recipe import AUTO, ConvertOptions
from edgekit.errors import InputError, UsageError
from edgekit.targets import QUANT_MODES, Target, get_target, list_targets


@dataclass(frozen=True)
class Plan:
    """The targets, the mode each target gets (empty with --quantize auto: chosen after timing), the
    modes to convert, and where the bundles go."""

    name: str
    out: Path
    targets: tuple[Target, ...]
    modes: tuple[str, ...]
    by_target: dict[str, str] = field(default_factory=dict)
    auto: bool = False  # --quantize auto
    existing_tflite: bool = False  # an existing .tflite, bundled as it is

    def bundle_path(self, target: Target) -> Path:
        return self.out / f"{self.name}-{target.name}"

    def archive_path(self, target: Target) -> Path:
        return self.out / f"{self.name}-{target.name}{ARCHIVE_SUFFIX}"

    def steps(self, recipe: ConvertOptions) -> int:
        """Progress steps: loading, pruning (and each fine-tuning epoch), each conversion, the int8
        debugger when it is sure to run, auto's timing, the pruned-vs-unpruned comparison, each bundle."""
        convertible = [m for m in self.modes if m not in CALIBRATED_MODES or recipe.calibration is not None]
        count = 1 + len(convertible) + len(self.targets)
        if recipe.pruning:
            epochs = recipe.finetune_epochs or defaults.FINETUNE_EPOCHS
            count += 2 + (epochs if recipe.finetune_data is not None else 0)
        if recipe.explain or recipe.keep_float:
            count += 2 + (1 if recipe.keep_float else 0)
        return count + (1 if self.auto else 0)

    def for_existing_tflite(self, source: Any, recipe: ConvertOptions) -> Plan:
        """An existing `.tflite` is bundled as it is, in the mode it was converted with: re-quantizing an
        already-converted model is out of scope (convert from the Keras or SavedModel source instead)."""
        mode = str(source.quantization)
        if recipe.quantization not in (None, mode):
            raise InputError(
                f"{source.path}: is already a {mode} .tflite; edgekit bundles an existing .tflite as it is and "
                "does not re-quantize one (out of scope): convert the Keras or SavedModel source with "
                f"-q {recipe.quantization}"
            )
        return replace(self, modes=(mode,), by_target=modes_by_target(self.targets, mode), existing_tflite=True)


def plan_conversion(model: str | os.PathLike[str], recipe: ConvertOptions) -> Plan:
    """The plan for converting `model` with `recipe`; refuses what cannot work before anything is loaded,
    in this order: targets, modes they cannot run, the model file, the bundle name, bundles already
    there, missing calibration data, int8 debugging options that cannot apply."""
    path = Path(model)
    targets = tuple(resolve_targets(recipe.targets, recipe.targets_dir))
    existing = path.suffix.lower() == ".tflite" and path.is_file()
    auto = recipe.quantization == AUTO
    by_target = {} if auto or existing else modes_by_target(targets, recipe.quantization)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    check_model_file(path)
    name = recipe.name or path.stem
    if not name or "/" in name or name.startswith("."):
        raise InputError(f"--name {name!r}: must be a plain file name")
    wanted = {m for t in targets for m in t.modes} if auto else set(by_target.values())
    # float32 only when a target may want it: a calibrated conversion reports the float model's size
    # on its way (the report's size against float32), so it costs no conversion of its own.
    size_reference = set() if wanted & set(CALIBRATED_MODES) and recipe.calibration is not None else {"float32"}
    modes = () if existing else tuple(sorted(wanted | size_reference, key=QUANT_MODES.index))
    plan = Plan(name, Path(recipe.out), targets, modes, by_target, auto and not existing, existing)
    for target in targets:
        for existing_path in (plan.bundle_path(target), *([plan.archive_path(target)] if recipe.archive else [])):
            if existing_path.exists() and not recipe.force:
                raise InputError(f"{existing_path}: already exists (use --force to overwrite)")
    if not auto and recipe.calibration is None:
        needing = next((m for m in modes if m in CALIBRATED_MODES), None)
        if needing is not None:
            raise InputError(
                f"{needing} needs calibration data: pass --calibration (a folder of images, .npy or .npz); "
                "edgekit never calibrates on random data"
            )
    if recipe.float_outputs and existing:
        raise InputError(f"{path}: --float-outputs needs the source model (an existing .tflite is bundled as it is)")
    if recipe.float_outputs and "int8" not in modes:
        raise UsageError("--float-outputs applies to int8: choose -q int8 or auto (or a target whose mode is int8)")
    if recipe.debugging and existing:
        raise InputError(f"{path}: --keep-float, --auto-keep-float and --explain need the source model")
    if recipe.debugging:
        if "int8" not in modes:
            raise UsageError("--keep-float, --auto-keep-float and --explain apply to int8: choose -q int8 or auto")
        if recipe.calibration is None:
            raise InputError("--keep-float, --auto-keep-float and --explain need --calibration data for int8")
    return plan


def resolve_targets(names: Sequence[str] | None, targets_dir: str | os.PathLike[str] | None) -> list[Target]:
    if not names:
        return list_targets(targets_dir)
    return [get_target(n, targets_dir) for n in dict.fromkeys(names)]


def modes_by_target(targets: Sequence[Target], mode: str | None) -> dict[str, str]:
    """target name → mode (`mode`, else the target's own); refuses a mode the target's runtime cannot load."""
    plan = {}
    for target in targets:
        chosen = mode or target.quantization
        if chosen not in target.modes:
            raise InputError(
                f"target {target.name} ({target.runtime_requirement}) cannot run {chosen} models "
                f"(it takes: {', '.join(target.modes)}); choose another -q or leave that target out"
            )
        plan[target.name] = chosen
    return plan
