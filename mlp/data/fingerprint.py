"""A data source's identity by content, for result lineage: the same bytes under any path give
the same fingerprint, a changed file at the same path another (mlp.result_schema.config_hash).

Hashing the 160 MB archive takes ~0.3 s, so the sweep driver asks once per data root; within a
process the answer is kept while the files' sizes and modification times stay the same."""

from __future__ import annotations

import hashlib
from pathlib import Path

_memo: dict[tuple, str] = {}


def _files(root: Path) -> list[Path]:
    return [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())


def content_fingerprint(path: str | Path) -> str | None:
    """'sha256:<hex>' over the file's bytes, or over every file below a folder (names relative
    to it, then bytes); None when nothing is there (a source still to be downloaded)."""
    root = Path(path).expanduser().resolve()
    if not root.exists():
        return None
    files = _files(root)
    stamp = (str(root), *((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files))
    if stamp in _memo:
        return _memo[stamp]
    h = hashlib.sha256()
    for f in files:
        if root.is_dir():
            h.update(f.relative_to(root).as_posix().encode() + b"\0")
        with open(f, "rb") as fh:
            h.update(hashlib.file_digest(fh, "sha256").digest())
    _memo[stamp] = digest = f"sha256:{h.hexdigest()[:32]}"
    return digest
