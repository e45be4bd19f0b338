"""The bundle: the contract between the convert half and the device half.

A bundle is a folder (or a `.tar.gz` of one) holding `model.tflite`, the manifest `edgekit.json`,
optionally `labels.txt` and optionally the signature `edgekit.sig`. The manifest describes every
tensor, the preprocessing, the target profile as used and the SHA-256 of every other file; the
signature covers the manifest's bytes, so it covers every file.

  manifest.py    the manifest's types, file names and schema, and its validation
  reader.py      open a bundle folder or archive: signature, manifest, then every file
  archive.py     pack a folder as a `.tar.gz`; unpack an untrusted one with caps
  signature.py   check a signature against a trusted key (signing itself: edgekit/signing.py)
  files.py       hashing and the one family of atomic writes
  model_file.py  recognise a TFLite model file by its header

This module re-exports their public names. The archive names load on first use, so that a device
running a bundle folder never imports tarfile.
"""

from __future__ import annotations

from typing import Any

from edgekit.bundle.files import NO_SPACE_ERRNOS, is_no_space, replace_path, sha256_file, staged_folder
from edgekit.bundle.manifest import (
    ARCHIVE_SUFFIX,
    COLOR_MODES,
    FLOAT_DTYPES,
    INTEGER_DTYPES,
    LABELS_NAME,
    LAYOUTS,
    MANIFEST_NAME,
    MAX_MANIFEST_BYTES,
    MAX_THREADS,
    MODEL_NAME,
    SCHEMA_VERSION,
    SIGNATURE_NAME,
    TASKS,
    TENSOR_DTYPES,
    FileEntry,
    Manifest,
    Preprocess,
    TensorSpec,
    file_entry,
    parse_manifest,
)
from edgekit.bundle.reader import Bundle, load_bundle, open_bundle, read_manifest, read_manifest_bytes, verify_files

_ARCHIVE_NAMES = ("MAX_ARCHIVE_BYTES", "MAX_ARCHIVE_MEMBERS", "MAX_ARCHIVE_READ", "pack_archive", "unpack_archive")

__all__ = [
    "ARCHIVE_SUFFIX",
    "COLOR_MODES",
    "FLOAT_DTYPES",
    "INTEGER_DTYPES",
    "LABELS_NAME",
    "LAYOUTS",
    "MANIFEST_NAME",
    "MAX_MANIFEST_BYTES",
    "MAX_THREADS",
    "MODEL_NAME",
    "NO_SPACE_ERRNOS",
    "SCHEMA_VERSION",
    "SIGNATURE_NAME",
    "TASKS",
    "TENSOR_DTYPES",
    "Bundle",
    "FileEntry",
    "Manifest",
    "Preprocess",
    "TensorSpec",
    "file_entry",
    "is_no_space",
    "load_bundle",
    "open_bundle",
    "parse_manifest",
    "read_manifest",
    "read_manifest_bytes",
    "replace_path",
    "sha256_file",
    "staged_folder",
    "verify_files",
    *_ARCHIVE_NAMES,
]


def __getattr__(name: str) -> Any:
    if name in _ARCHIVE_NAMES:
        from edgekit.bundle import archive

        return getattr(archive, name)
    raise AttributeError(f"module 'edgekit.bundle' has no attribute {name!r}")
