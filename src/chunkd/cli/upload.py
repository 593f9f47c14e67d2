"""``chunkd upload FILE...``: parallel, resumable uploads with progress bars per file and total."""

from __future__ import annotations

import json
import shlex
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from chunkd.cli.client_config import parse_meta, parse_size, resolve

if TYPE_CHECKING:  # rich and the client (httpx) load when the command runs: every `chunkd`
    # command, `chunkd serve` included, imports this module
    from rich.console import Console
    from rich.progress import Progress, TaskID

    from chunkd.client import Progress as UploadProgress
    from chunkd.client import UploadResult


def progress_bars(console: Console) -> Progress:
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    return Progress(
        TextColumn("{task.description}", table_column=None),
        BarColumn(bar_width=30),
        TextColumn("{task.percentage:>5.1f}%"),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        refresh_per_second=4,
    )


def upload(
    files: Annotated[
        list[Path],
        typer.Argument(help="Files to upload.", exists=True, dir_okay=False, readable=True),
    ],
    server: Annotated[str | None, typer.Option(help="Server URL [CHUNKD_SERVER].")] = None,
    token: Annotated[str | None, typer.Option(help="Bearer token [CHUNKD_TOKEN].")] = None,
    parallel: Annotated[int, typer.Option(min=1, max=64, help="Parts in flight.")] = 4,
    part_size: Annotated[
        str | None,
        typer.Option(
            help="Part size, e.g. 8MiB [default: 1-10 MiB by size; ~64 parts above 640 MiB]."
        ),
    ] = None,
    meta: Annotated[list[str] | None, typer.Option(help="Metadata key=value (repeat).")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="One JSON line per file.")] = False,
    tus: Annotated[bool, typer.Option("--tus", help="Use tus instead of REST parts.")] = False,
    retries: Annotated[int, typer.Option(min=1, help="Tries per request.")] = 10,
    timeout: Annotated[float, typer.Option(help="Network timeout, seconds.")] = 60.0,
) -> None:
    """Upload files; an interrupted upload resumes when the same command runs again."""  # fmt: skip
    from rich.console import Console

    from chunkd.client import ChunkdError, Client, ResumeState, RetryPolicy

    target = resolve(server, token)
    metadata = parse_meta(meta)
    console = Console(stderr=True)
    cancel = threading.Event()
    state = ResumeState()
    failed = 0
    client = Client(
        target.server, target.token, parallel=parallel, part_size=parse_size(part_size),
        protocol="tus" if tus else "rest", retry=RetryPolicy(attempts=retries), state=state,
        timeout=timeout,
    )  # fmt: skip
    bars = progress_bars(console)
    sizes = [path.stat().st_size for path in files]
    try:
        with client, bars:
            total = bars.add_task(f"[bold]total ({len(files)} files)", total=sum(sizes))
            done_before = 0
            for path, size in zip(files, sizes, strict=True):
                task = bars.add_task(path.name, total=size)
                try:
                    result = client.upload(
                        path, metadata=metadata, cancel=cancel,
                        on_progress=_follow(bars, task, total, done_before, path.name),
                    )  # fmt: skip
                except ChunkdError as error:
                    failed += 1
                    bars.update(task, description=f"[red]{path.name} failed")
                    _report(console, json_output, path, None, str(error))
                else:
                    bars.update(task, completed=size, description=f"[green]{path.name}")
                    _report(console, json_output, path, result, None)
                done_before += size
                bars.update(total, completed=done_before)
    except KeyboardInterrupt:
        cancel.set()
        again = shlex.join(["chunkd", *sys.argv[1:]])
        console.print(
            f"[yellow]interrupted[/]: what the server acknowledged is kept; "
            f"run the same command again to resume:\n  {again}"
        )
        raise typer.Exit(130) from None
    finally:
        state.close()
    if failed:
        raise typer.Exit(1)


def _follow(
    bars: Progress, task: TaskID, total: TaskID, before: int, name: str
) -> Callable[[UploadProgress], None]:
    def update(progress: UploadProgress) -> None:
        bars.update(task, completed=progress.bytes_sent, description=name)
        bars.update(total, completed=before + progress.bytes_sent)

    return update


def _report(
    console: Console, as_json: bool, path: Path, result: UploadResult | None, error: str | None
) -> None:
    if as_json:
        line = {"file": str(path), "ok": error is None, "error": error}
        if result is not None:
            line.update(
                id=result.id, location=result.location, size=result.size, sha256=result.sha256,
                resumed=result.resumed, parts_sent=result.parts_sent, protocol=result.protocol,
            )  # fmt: skip
        print(json.dumps(line), flush=True)
    elif error is not None:
        console.print(f"[red]✗ {path}[/]: {error}")
    else:
        assert result is not None
        how = "resumed" if result.resumed else "uploaded"
        digest = result.sha256[:16]
        console.print(f"[green]✓ {path}[/] {how} → {result.location} (sha256 {digest}…)")
