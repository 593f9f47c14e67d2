from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from chunkd.testing.server import ServerProcess


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """The real ``chunkd serve`` process on a free port, with its own data directory."""
    with ServerProcess(tmp_path / "data") as process:
        yield process
