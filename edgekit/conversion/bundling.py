"""One bundle per target: the converted model, its labels and its manifest, written atomically
(staged next to the final folder, then renamed), and what was written."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from edgekit import __version__
from edgekit.bundle import LABELS_NAME, MANIFEST_NAME, MODEL_NAME, Manifest, Preprocess, file_entry, staged_folder
from edgekit.conversion.accuracy import Accuracy
from edgekit.conversion.quantize import INT16X8_NOTE
from edgekit.conversion.verify import Fidelity, ModeConversion
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
            "accuracy": None if self.accuracy is None else self.accuracy.to_dict(),
            "agreement": self.fidelity.top1_agreement,
            "degraded": self.degraded,
            "problems": list(self.problems),
            "keep_float": list(self.keep_float),
            "float_layers": list(self.float_layers),
            "candidates": None if self.candidates is None else [c.to_dict() for c in self.candidates],
        }


def conversion_record(conversion: ModeConversion, recipe: dict[str, Any] | None = None) -> dict[str, Any]:
    """The manifest's `conversion` entry: how the model was made (the recipe) and how faithful it is."""
    record: dict[str, Any] = {"seconds": round(conversion.seconds, 3), "fidelity": conversion.fidelity.to_dict()}
    if conversion.accuracy is not None:
        record["accuracy"] = conversion.accuracy.to_dict()
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
    preprocess: Preprocess | None,
    labels: Sequence[str] | None,
    is_classifier: bool,
    source: dict[str, Any],
    force: bool,
    recipe: dict[str, Any] | None = None,
) -> None:
    """Write one bundle folder atomically: staged next to its final place, then renamed."""
    with staged_folder(path, force) as staging:
        (staging / MODEL_NAME).write_bytes(conversion.content)
        if labels:
            (staging / LABELS_NAME).write_text("\n".join(labels) + "\n", encoding="utf-8")
        files = {p.name: file_entry(p) for p in sorted(staging.iterdir())}
        manifest = Manifest(
            name=name,
            created_by=f"edgekit {__version__}",
            target=target.to_dict(),
            quantization=conversion.mode,
            inputs=conversion.inputs,
            outputs=conversion.outputs,
            files=files,
            preprocess=preprocess,
            task="classify" if is_classifier else "raw",
            labels=LABELS_NAME if labels else None,
            source=source,
            conversion=conversion_record(conversion, recipe),
        )
        (staging / MANIFEST_NAME).write_text(manifest.to_json(), encoding="utf-8")
