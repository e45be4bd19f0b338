"""Ed25519 signatures for bundles, the laptop side: make keys, sign bundles, and `edgekit verify`.

`edgekit keygen NAME` writes NAME.key (private, mode 0600, stays on the build machine) and NAME.pub
(copied to devices). `edgekit sign` writes `edgekit.sig` into the bundle: a signature over the exact
bytes of `edgekit.json`, which lists the SHA-256 of every other file, so one signature covers the
whole bundle. Checking a signature is all a device needs: that lives in edgekit/bundle/signature.py,
re-exported here.

The `cryptography` package (the `sign` extra) is imported only by the functions that touch keys, so
a device that never passes a key never needs it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.bundle import MODEL_NAME, SIGNATURE_NAME, Bundle, open_bundle, read_manifest_bytes
from edgekit.bundle.archive import pack_archive
from edgekit.bundle.files import write_bytes_atomically
from edgekit.bundle.model_file import check_tflite_header
from edgekit.bundle.signature import (
    ALGORITHM,
    MAX_KEY_FILE_BYTES,
    MAX_SIGNATURE_FILE_BYTES,
    PRIVATE_SUFFIX,
    PUBLIC_SUFFIX,
    SignatureCheck,
    SignatureFile,
    crypto_modules,
    first_line,
    key_id,
    load_public_key,
    public_key_id,
    read_key_file,
    verify_signature,
)
from edgekit.errors import InputError

__all__ = [
    "ALGORITHM",
    "MAX_KEY_FILE_BYTES",
    "MAX_SIGNATURE_FILE_BYTES",
    "PRIVATE_SUFFIX",
    "PUBLIC_SUFFIX",
    "KeyPair",
    "SignResult",
    "SignatureCheck",
    "SignatureFile",
    "VerifiedFile",
    "VerifyReport",
    "generate_keypair",
    "key_id",
    "load_private_key",
    "load_public_key",
    "sign_bundle",
    "verify_bundle",
    "verify_signature",
]


# --- keys ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyPair:
    """The result of `edgekit keygen`: where the two key files went and the key's fingerprint."""

    private_key: str
    public_key: str
    key_id: str
    algorithm: str = ALGORITHM

    def to_dict(self) -> dict[str, Any]:
        return {
            "private_key": self.private_key,
            "public_key": self.public_key,
            "key_id": self.key_id,
            "algorithm": self.algorithm,
        }


def generate_keypair(name: str | os.PathLike[str], force: bool = False) -> KeyPair:
    """Write NAME.key (PKCS#8 PEM, mode 0600) and NAME.pub (PEM, mode 0644)."""
    ed25519, serialization = crypto_modules()
    base = Path(name)
    if base.suffix in (PRIVATE_SUFFIX, PUBLIC_SUFFIX):
        base = base.with_suffix("")
    if not base.name or base.name.startswith("."):
        raise InputError(f"{name!s}: key name must be a plain file name")
    private_path = base.with_name(base.name + PRIVATE_SUFFIX)
    public_path = base.with_name(base.name + PUBLIC_SUFFIX)
    if not base.parent.is_dir():
        raise InputError(f"{base.parent}: no such folder for the key files")
    for path in (private_path, public_path):
        if path.exists() and not force:
            raise InputError(f"{path}: already exists (use --force to overwrite)")
    private_key = ed25519.Ed25519PrivateKey.generate()
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    write_bytes_atomically(private_path, private_pem, 0o600)
    write_bytes_atomically(public_path, public_pem, 0o644)
    return KeyPair(str(private_path), str(public_path), public_key_id(private_key.public_key()))


def load_private_key(path: str | os.PathLike[str]) -> Any:
    """An Ed25519 private key from a NAME.key file written by `edgekit keygen` (unencrypted PEM)."""
    ed25519, serialization = crypto_modules()
    source = Path(path)
    content = read_key_file(source, "private")
    if b"PUBLIC KEY-----" in content:
        raise InputError(f"{source}: is a public key; signing needs the private key (NAME{PRIVATE_SUFFIX})")
    try:
        key = serialization.load_pem_private_key(content, password=None)
    except (ValueError, TypeError) as exc:
        raise InputError(f"{source}: not a usable private key ({first_line(exc)})") from None
    except Exception as exc:  # cryptography's UnsupportedAlgorithm and friends
        raise InputError(f"{source}: not a usable private key ({type(exc).__name__})") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise InputError(f"{source}: not an Ed25519 key (edgekit signs with Ed25519; make one with edgekit keygen)")
    return key


# --- signing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignResult:
    """The result of `edgekit sign`."""

    bundle: str
    signature_file: str
    key_id: str

    def to_dict(self) -> dict[str, Any]:
        return {"bundle": self.bundle, "signature_file": self.signature_file, "key_id": self.key_id}


def _sign_folder(bundle: Bundle, private_key: Any) -> str:
    manifest_bytes = read_manifest_bytes(bundle.path, bundle.origin)
    signature = SignatureFile(public_key_id(private_key.public_key()), private_key.sign(manifest_bytes))
    write_bytes_atomically(bundle.path / SIGNATURE_NAME, signature.to_json().encode("utf-8"), 0o644)
    return signature.key_id


def sign_bundle(bundle: str | os.PathLike[str], key: str | os.PathLike[str]) -> SignResult:
    """Sign a bundle folder or `.tar.gz` in place. Its files are verified first: signing a bundle
    that no longer matches its manifest would vouch for something nobody built."""
    private_key = load_private_key(key)
    source = Path(bundle)
    if source.is_dir():
        with open_bundle(source) as opened:
            kid = _sign_folder(opened, private_key)
        return SignResult(str(source), str(source / SIGNATURE_NAME), kid)
    with open_bundle(source) as opened:
        kid = _sign_folder(opened, private_key)
        # Repacked next to the original and renamed over it: the archive is never half-written.
        pack_archive(opened.path, source, force=True)
    return SignResult(str(source), f"{opened.origin}/{SIGNATURE_NAME}", kid)


# --- verifying -------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifiedFile:
    name: str
    bytes: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "bytes": self.bytes, "sha256": self.sha256}


@dataclass(frozen=True)
class VerifyReport:
    """The result of `edgekit verify`: what was checked and found good.

    `signed` says a signature file is present; `signature_verified` is true only when it was checked
    against a trusted key (without one, the key id is reported but proves nothing)."""

    bundle: str
    name: str
    target: str
    quantization: str
    schema: int
    files: tuple[VerifiedFile, ...]
    signed: bool
    signature_verified: bool
    key_id: str | None
    trusted_key: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "bundle": self.bundle,
            "name": self.name,
            "target": self.target,
            "quantization": self.quantization,
            "schema": self.schema,
            "files": [f.to_dict() for f in self.files],
            "signed": self.signed,
            "signature_verified": self.signature_verified,
            "key_id": self.key_id,
            "trusted_key": self.trusted_key,
        }


def verify_bundle(bundle: str | os.PathLike[str], trusted_key: str | os.PathLike[str] | None = None) -> VerifyReport:
    """Check a bundle without running it: manifest schema, every file's size and SHA-256, that the
    model is a TFLite flatbuffer, and with `trusted_key` the signature. Raises on the first failure."""
    with open_bundle(bundle, trusted_key=trusted_key) as opened:
        manifest = opened.manifest
        with open(opened.model_path, "rb") as handle:
            check_tflite_header(handle.read(8), f"{opened.origin}/{MODEL_NAME}")
        signature_path = opened.path / SIGNATURE_NAME
        signed = signature_path.exists()
        kid = SignatureFile.read(signature_path, f"{opened.origin}/{SIGNATURE_NAME}").key_id if signed else None
        return VerifyReport(
            bundle=str(bundle),
            name=manifest.name,
            target=str(manifest.target.get("name", "")),
            quantization=manifest.quantization,
            schema=manifest.schema,
            files=tuple(VerifiedFile(n, e.bytes, e.sha256) for n, e in sorted(manifest.files.items())),
            signed=signed,
            signature_verified=trusted_key is not None,
            key_id=kid,
            trusted_key=None if trusted_key is None else str(trusted_key),
        )
