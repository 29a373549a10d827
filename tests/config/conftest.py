import textwrap
from pathlib import Path

import pytest


@pytest.fixture
def write(tmp_path):
    """write(text, name='maild.yaml') -> Path of a real file holding the dedented text."""
    def write(text: str, name: str = "maild.yaml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path
    return write
