from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from chunkd.cli.main import app


def test_bad_setting_stops_start_up_with_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "chunkd", "serve", "--port", "99999", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "chunkd: invalid setting --port: Input should be less than or equal to 65535"
    )


def test_cleanup_runs_once(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["cleanup", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "expired 0 uploads" in result.output
    assert (tmp_path / "catalog.sqlite3").exists()


def _loaded_after(code: str, modules: tuple[str, ...]) -> list[str]:
    script = f"import sys; {code}; print(','.join(m for m in {modules!r} if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True
    )
    return [name for name in result.stdout.strip().split(",") if name]


def test_the_command_line_loads_what_a_command_needs_when_it_runs() -> None:
    # every command imports the command line: `chunkd serve` (whose memory counts) needs
    # neither the client (httpx) nor rich, nor a client command the server's settings
    heavy = ("asyncio", "httpx", "rich", "pydantic_settings", "fastapi", "pygments")
    assert _loaded_after("import chunkd.cli.main", heavy) == []
    # a client command: httpx, but neither asyncio (AsyncClient) nor httpx's own command line
    assert (
        _loaded_after(
            "import chunkd.cli.main; from chunkd.client import Client", ("asyncio", "pygments")
        )
        == []
    )
