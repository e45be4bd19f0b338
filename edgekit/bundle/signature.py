"""Checking a bundle's Ed25519 signature: all a device needs (signing lives in edgekit/signing.py).

`edgekit.sig` is a signature over the exact bytes of `edgekit.json`, which lists the SHA-256 of every
other file, so one signature covers the whole bundle. Devices check it with `--trusted-key NAME.pub`
before loading anything.

The `cryptography` package (the `sign` extra) is imported only by the functions that touch keys, so a
device that never passes a key never needs it.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.bundle.manifest import MANIFEST_NAME, SIGNATURE_NAME
from edgekit.errors import InputError, IntegrityError

ALGORITHM = "ed25519"
PRIVATE_SUFFIX = ".key"
PUBLIC_SUFFIX = ".pub"
MAX_KEY_FILE_BYTES = 16 << 10
MAX_SIGNATURE_FILE_BYTES = 4 << 10


def crypto_modules() -> tuple[Any, Any]:
    """The Ed25519 and serialization modules of `cryptography`, with a clear error when missing."""
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise InputError("signatures need 'cryptography': pip install cryptography (the sign extra)") from None
    return ed25519, serialization


def key_id(public_raw: bytes) -> str:
    """A short fingerprint of a public key, to tell keys apart in messages."""
    return hashlib.sha256(public_raw).hexdigest()[:16]


def public_key_id(public_key: Any) -> str:
    """The fingerprint (`key_id`) of a loaded Ed25519 public key."""
    _, serialization = crypto_modules()
    return key_id(public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


def read_key_file(path: Path, kind: str) -> bytes:
    """The bytes of a key file (`kind` is "private" or "public", for messages), refusing what cannot be one."""
    if not path.exists():
        raise InputError(f"{path}: no such {kind} key file")
    if not path.is_file():
        raise InputError(f"{path}: not a {kind} key file")
    if path.stat().st_size > MAX_KEY_FILE_BYTES:
        raise InputError(f"{path}: too large to be a {kind} key file")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None


def load_public_key(path: str | os.PathLike[str]) -> Any:
    """An Ed25519 public key from a NAME.pub file."""
    ed25519, serialization = crypto_modules()
    source = Path(path)
    content = read_key_file(source, "public")
    if b"PRIVATE KEY-----" in content:
        raise InputError(
            f"{source}: is a private key; give devices the public key (NAME{PUBLIC_SUFFIX}) and keep this one secret"
        )
    try:
        key = serialization.load_pem_public_key(content)
    except (ValueError, TypeError) as exc:
        raise InputError(f"{source}: not a usable public key ({first_line(exc)})") from None
    except Exception as exc:  # cryptography's UnsupportedAlgorithm and friends
        raise InputError(f"{source}: not a usable public key ({type(exc).__name__})") from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise InputError(f"{source}: not an Ed25519 public key (make keys with edgekit keygen)")
    return key


def first_line(exc: BaseException) -> str:
    """The first sentence of an error, without cryptography's "See https://... for more details"."""
    text = str(exc).strip().splitlines()
    if not text:
        return type(exc).__name__
    first = text[0].split(" See http", 1)[0].rstrip(" .")
    return first[:160] or type(exc).__name__


@dataclass(frozen=True)
class SignatureFile:
    """`edgekit.sig`: which key signed the manifest, and the signature."""

    key_id: str
    signature: bytes
    algorithm: str = ALGORITHM
    signed_file: str = MANIFEST_NAME

    def to_json(self) -> str:
        import base64  # here and in read(): a device running unsigned bundles never needs it

        data = {
            "algorithm": self.algorithm,
            "key_id": self.key_id,
            "signed_file": self.signed_file,
            "signature": base64.b64encode(self.signature).decode("ascii"),
        }
        return json.dumps(data, indent=2) + "\n"

    @classmethod
    def read(cls, path: Path, shown: str) -> SignatureFile:
        """Parse a signature file; anything malformed is an integrity failure (exit 4)."""
        if path.is_symlink() or not path.is_file():
            raise IntegrityError(f"{shown}: not a regular file")
        if path.stat().st_size > MAX_SIGNATURE_FILE_BYTES:
            raise IntegrityError(f"{shown}: too large to be a signature file")
        try:
            data = json.loads(path.read_bytes().decode("utf-8"))
        except (OSError, ValueError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            raise IntegrityError(f"{shown}: not a valid signature file ({first_line(exc)})") from None
        if not isinstance(data, dict):
            raise IntegrityError(f"{shown}: not a valid signature file (expected a JSON object)")
        for key in ("algorithm", "key_id", "signed_file", "signature"):
            if not isinstance(data.get(key), str):
                raise IntegrityError(f"{shown}: not a valid signature file (field '{key}' missing or not a string)")
        if data["algorithm"] != ALGORITHM:
            raise IntegrityError(f"{shown}: algorithm {data['algorithm']!r:.40} is not {ALGORITHM}")
        if data["signed_file"] != MANIFEST_NAME:
            raise IntegrityError(f"{shown}: signs {data['signed_file']!r:.40}, expected {MANIFEST_NAME}")
        import base64
        import binascii

        try:
            signature = base64.b64decode(data["signature"], validate=True)
        except (binascii.Error, ValueError):
            raise IntegrityError(f"{shown}: field 'signature' is not base64") from None
        if len(signature) != 64:
            raise IntegrityError(f"{shown}: an Ed25519 signature has 64 bytes, this one has {len(signature)}")
        return cls(key_id=data["key_id"][:64], signature=signature)


@dataclass(frozen=True)
class SignatureCheck:
    """A signature that was checked against a trusted key and found good."""

    key_id: str
    trusted_key: str

    def to_dict(self) -> dict[str, Any]:
        return {"key_id": self.key_id, "trusted_key": self.trusted_key}


def verify_signature(
    folder: Path, manifest_bytes: bytes, trusted_key: str | os.PathLike[str], shown_as: str | None = None
) -> SignatureCheck:
    """Check that `manifest_bytes` carry a valid signature by `trusted_key` (exit 4 if not)."""
    shown = shown_as or str(folder)
    public_key = load_public_key(trusted_key)
    trusted_id = public_key_id(public_key)
    path = folder / SIGNATURE_NAME
    if not path.exists() and not path.is_symlink():
        raise IntegrityError(
            f"{shown}: not signed (no {SIGNATURE_NAME}), but --trusted-key {trusted_key} requires a signature"
        )
    signature = SignatureFile.read(path, f"{shown}/{SIGNATURE_NAME}")
    if signature.key_id != trusted_id:
        raise IntegrityError(
            f"{shown}/{SIGNATURE_NAME}: signed by key {signature.key_id}, not by the trusted key "
            f"{trusted_id} ({trusted_key})"
        )
    from cryptography.exceptions import InvalidSignature

    try:
        public_key.verify(signature.signature, manifest_bytes)
    except InvalidSignature:
        raise IntegrityError(
            f"{shown}/{MANIFEST_NAME}: signature by key {trusted_id} does not match "
            "(the manifest changed after signing, or the signature is forged)"
        ) from None
    return SignatureCheck(trusted_id, str(trusted_key))
