"""`edgekit keygen`, `edgekit sign` and `edgekit verify`: who built a bundle, and is it intact?"""

from pathlib import Path
from typing import Optional

import typer

from edgekit.cli.output import console, human_bytes, print_json, reports_errors


@reports_errors
def keygen(
    name: Path = typer.Argument(
        ..., help="Writes NAME.key (private, mode 0600) and NAME.pub (public).", show_default=False
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite existing key files."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Make an Ed25519 key pair for signing bundles. Keep NAME.key on the build machine; copy NAME.pub to devices."""
    from edgekit.signing import generate_keypair

    pair = generate_keypair(name, force=force)
    if as_json:
        print_json(pair.to_dict())
        return
    console().print(
        f"wrote {pair.private_key} (private: keep it secret, mode 600) and {pair.public_key} "
        f"(give it to devices: --trusted-key); key id {pair.key_id}"
    )


@reports_errors
def sign(
    bundle: Path = typer.Argument(..., help="A bundle folder or its .tar.gz (signed in place).", show_default=False),
    key: Path = typer.Option(..., "--key", help="The private key NAME.key from edgekit keygen.", show_default=False),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Sign a bundle: writes edgekit.sig, an Ed25519 signature over its manifest (which lists every file's SHA-256)."""
    from edgekit.signing import sign_bundle

    result = sign_bundle(bundle, key)
    if as_json:
        print_json(result.to_dict())
        return
    console().print(f"signed {result.bundle} with key {result.key_id} ({result.signature_file})")


@reports_errors
def verify(
    bundle: Path = typer.Argument(..., help="A bundle folder or its .tar.gz.", show_default=False),
    trusted_key: Optional[Path] = typer.Option(
        None, "--trusted-key", help="Public key NAME.pub: refuse (exit 4) a bundle it did not sign."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Check a bundle without running it: manifest, every file's SHA-256 and, with --trusted-key, the signature.

    Exit 4 when a file is missing, extra or changed, or the signature is missing or wrong.
    """
    from edgekit.signing import verify_bundle

    report = verify_bundle(bundle, trusted_key=trusted_key)
    if as_json:
        print_json(report.to_dict())
        return
    out = console()
    out.print(
        f"{report.bundle}: OK, {report.name} ({report.quantization}, target {report.target}), "
        f"manifest schema {report.schema}"
    )
    for entry in report.files:
        out.print(f"  {entry.name}  {human_bytes(entry.bytes)}  sha256 {entry.sha256[:16]}…  matches")
    if report.signature_verified:
        out.print(f"signature: good, by trusted key {report.key_id} ({report.trusted_key})")
    elif report.signed:
        out.print(f"signature: present (key {report.key_id}), not checked: pass --trusted-key NAME.pub")
    else:
        out.print("signature: none (unsigned bundle)")
