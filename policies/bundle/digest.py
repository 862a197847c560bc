"""The digest that pins a bundle's content, for the records a reviewer files (review JSON, ML-BOM).

A ``.zip`` bundle: the sha256 of the zip file (``sha256sum bundle.zip``). A bundle directory: the sha256 of its
``checksums.sha256`` (``sha256sum BUNDLE/checksums.sha256``), which lists the sha256 of every other file of the
bundle, ``signature.json`` excepted (it signs that very file); loading checks every file against that list, so
the digest pins what loads. The two digests of the same bundle differ (one is of the zip's bytes).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from payroute.policies.bundle.card import CHECKSUM_FILE

ZIP_FILE = "the zip file"


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def bundle_digest(path: str | Path) -> dict[str, str]:
    """A bundle's name, its sha256, and what the sha256 is of (``the zip file`` or ``checksums.sha256``)."""
    path = Path(path)
    if path.is_dir():
        return {"name": path.name, "sha256": file_sha256(path / CHECKSUM_FILE), "of": CHECKSUM_FILE}
    return {"name": path.name, "sha256": file_sha256(path), "of": ZIP_FILE}


__all__ = ["bundle_digest", "file_sha256"]
