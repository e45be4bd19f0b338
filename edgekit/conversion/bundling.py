"""One bundle per target: the converted model, its labels and its manifest, written atomically
(staged next to the final folder, then renamed), and what was written."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from edgekit import __version__
from edgekit.bundle import LABELS_NAME, MANIFEST_NAME, MODEL_NAME, Manifest, file_entry, staged_folder
from edgekit.conversion.accuracy import Accuracy
from edgekit.conversion.contract import ModelInputs
from edgekit.conversion.fidelity import Fidelity
from edgekit.conversion.quantize import INT16X8_NOTE
from edgekit.conversion.verify import ModeConversion
from edgekit.targets import Target


@dataclass(frozen=True)
class BundleResult:
    """One bundle written for one target."""

    target: str
    arch: str
    mode: str
    path: str
    archive: str | None
    bytes: int
    archive_bytes: int | None
    size_ratio: float | None
    conversion_seconds: float
    fidelity: Fidelity
    accuracy: Accuracy | None = None
    problems: tuple[str, ...] = ()  # thresholds missed (written anyway only with --allow-degraded)
    keep_float: tuple[str, ...] = ()
    float_layers: tuple[str, ...] = ()
    fidelities: tuple[Fidelity, ...] = ()  # every output's, in model order (`fidelity` is the worst)
    accuracies: dict[str, Accuracy] = field(default_factory=dict)  # per labelled classifier output
    float_outputs: tuple[str, ...] = ()
    candidates: tuple[Any, ...] | None = None  # --quantize auto: every mode considered (selection.Candidate)

    @property
    def degraded(self) -> bool:
        return bool(self.problems)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "arch": self.arch,
            "mode": self.mode,
            "path": self.path,
            "archive": self.archive,
            "bytes": self.bytes,
            "archive_bytes": self.archive_bytes,
            "size_ratio": None if self.size_ratio is None else round(self.size_ratio, 4),
            "conversion_seconds": round(self.conversion_seconds, 3),
            "fidelity": self.fidelity.to_dict(),
            "outputs": [f.to_dict() for f in self.fidelities or (self.fidelity,)],
            "accuracy": None if self.accuracy is None else self.accuracy.to_dict(),
            "accuracy_by_output": {k: v.to_dict() for k, v in self.accuracies.items()},
            "float_outputs": list(self.float_outputs),
            "agreement": self.fidelity.top1_agreement,
            "degraded": self.degraded,
            "problems": list(self.problems),
            "keep_float": list(self.keep_float),
            "float_layers": list(self.float_layers),
            "candidates": None if self.candidates is None else [c.to_dict() for c in self.candidates],
        }


def conversion_record(conversion: ModeConversion, recipe: dict[str, Any] | None = None) -> dict[str, Any]:
    """The manifest's `conversion` entry: how the model was made (the recipe) and how faithful it is."""
    record: dict[str, Any] = {
        "seconds": round(conversion.seconds, 3),
        "fidelity": conversion.fidelity.to_dict(),  # the worst output's (it names the output)
        "outputs": {f.output: f.to_dict() for f in conversion.fidelities},
    }
    if conversion.accuracy is not None:
        record["accuracy"] = conversion.accuracy.to_dict()
        record["accuracy_by_output"] = {k: v.to_dict() for k, v in conversion.accuracies.items()}
    if conversion.float_outputs:
        record["float_outputs"] = list(conversion.float_outputs)
    if conversion.keep_float:
        record["keep_float"] = list(conversion.keep_float)
        record["float_layers"] = list(conversion.float_layers)
    if conversion.problems:
        record["degraded"] = True
        record["problems"] = list(conversion.problems)
    if conversion.mode == "int16x8":
        record["note"] = INT16X8_NOTE
    if recipe is not None:
        record["recipe"] = recipe
    return record


def write_bundle(
    path: Path,
    name: str,
    target: Target,
    conversion: ModeConversion,
    inputs: ModelInputs,
    source: dict[str, Any],
    force: bool,
    recipe: dict[str, Any] | None = None,
) -> None:
    """Write one bundle folder atomically: staged next to its final place, then renamed. Each input
    carries its preprocessing, the classifier output its labels."""
    labels = inputs.labels
    with staged_folder(path, force) as staging:
        (staging / MODEL_NAME).write_bytes(conversion.content)
        if labels:
            (staging / LABELS_NAME).write_text("\n".join(labels) + "\n", encoding="utf-8")
        files = {p.name: file_entry(p) for p in sorted(staging.iterdir())}
        tensors_in = tuple(
            replace(t, preprocess=inputs.image_preprocess(t.name) if t.name in inputs.names else None)
            for t in conversion.inputs
        )
        tensors_out = tuple(
            replace(t, labels=LABELS_NAME if labels and k == inputs.labels_output else None)
            for k, t in enumerate(conversion.outputs)
        )
        manifest = Manifest(
            name=name,
            created_by=f"edgekit {__version__}",
            target=target.to_dict(),
            quantization=conversion.mode,
            inputs=tensors_in,
            outputs=tensors_out,
            files=files,
            task=inputs.task,
            labels=LABELS_NAME if labels else None,
            source=source,
            conversion=conversion_record(conversion, recipe),
            postprocess=dict(inputs.postprocess or {}),
        )
        (staging / MANIFEST_NAME).write_text(manifest.to_json(), encoding="utf-8")
