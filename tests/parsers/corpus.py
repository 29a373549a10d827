"""The shared real-world corpus (../shared/corpus), read in place, never copied."""
from __future__ import annotations

from pathlib import Path

import pytest

CORPUS = (Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus").resolve()
NOT_MAIL = {"INDEX.tsv", "README.md"}


def corpus_files(folder: str = "", max_size: int | None = None) -> list[Path]:
    """Every mail file under CORPUS/folder (recursively), sorted; skips the test if absent."""
    root = CORPUS / folder
    if not root.is_dir():
        pytest.skip(f"corpus not found at {root}", allow_module_level=True)
    return [p for p in sorted(root.rglob("*"))
            if p.is_file() and p.name not in NOT_MAIL
            and (max_size is None or p.stat().st_size <= max_size)]


def read(relative: str) -> bytes:
    path = CORPUS / relative
    if not path.is_file():
        pytest.skip(f"corpus file not found: {path}")
    return path.read_bytes()
