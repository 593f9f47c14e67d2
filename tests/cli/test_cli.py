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


def test_client_commands_start_without_the_servers_or_asyncs_imports() -> None:
    # every `chunkd upload` pays for what the command line imports: the server's settings,
    # asyncio (for AsyncClient) and httpx's own command line are left out
    script = (
        "import sys, chunkd.cli.main, chunkd.client, httpx; "
        "print(sorted(m for m in ('asyncio', 'pydantic_settings', 'pygments', 'fastapi') "
        "if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True
    )
    assert result.stdout.strip() == "[]"
