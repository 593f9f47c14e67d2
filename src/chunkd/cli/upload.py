"""``chunkd upload FILE...``: parallel, resumable uploads with progress bars per file and total."""

from __future__ import annotations

import json
import os
import shlex
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Self, cast

import typer

from chunkd.cli.client_config import parse_meta, parse_size, resolve

if TYPE_CHECKING:  # rich and the client (httpx) load when the command runs: every `chunkd`
    # command, `chunkd serve` included, imports this module
    from rich.console import Console
    from rich.progress import Progress, TaskID

    from chunkd.client import Progress as UploadProgress
    from chunkd.client import UploadResult


class _Quiet:
    """The progress bars' stand-in when nobody watches them (a script, a log)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_task(self, description: str, total: int) -> TaskID:
        return cast("TaskID", 0)

    def update(self, task: TaskID, **fields: Any) -> None:
        return None


class _Out:
    """Where the command's lines go: to a terminal, rich progress bars and coloured lines;
    otherwise (a script, ``--json``, a log) plain lines, and rich is not even loaded (a
    tenth of a short upload's start-up). ``FORCE_COLOR`` asks for rich anyway."""

    def __init__(self) -> None:
        self.console: Console | None = None
        if sys.stderr.isatty() or os.environ.get("FORCE_COLOR"):
            from rich.console import Console

            self.console = Console(stderr=True)

    def bars(self) -> Progress | _Quiet:
        return _Quiet() if self.console is None else progress_bars(self.console)

    def label(self, style: str, text: str) -> str:
        """A bar's description: ``text`` in ``style``."""
        if self.console is None:
            return text
        from rich.markup import escape

        return f"[{style}]{escape(text)}[/]" if style else escape(text)

    def say(self, style: str, lead: str, rest: str = "") -> None:
        """One line on stderr: ``lead`` in ``style``, then ``rest``."""
        if self.console is None:
            print(lead + rest, file=sys.stderr, flush=True)
        else:
            self.console.print(self.label(style, lead) + self.label("", rest))


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
    from chunkd.client import ChunkdError, Client, ResumeState, RetryPolicy

    target = resolve(server, token)
    metadata = parse_meta(meta)
    out = _Out()
    cancel = threading.Event()
    state = ResumeState()
    failed = 0
    client = Client(
        target.server, target.token, parallel=parallel, part_size=parse_size(part_size),
        protocol="tus" if tus else "rest", retry=RetryPolicy(attempts=retries), state=state,
        timeout=timeout,
    )  # fmt: skip
    bars = out.bars()
    sizes = [path.stat().st_size for path in files]
    try:
        with client, bars:
            total = bars.add_task(
                out.label("bold", f"total ({len(files)} files)"), total=sum(sizes)
            )
            done_before = 0
            for path, size in zip(files, sizes, strict=True):
                name = out.label("", path.name)
                task = bars.add_task(name, total=size)
                try:
                    result = client.upload(
                        path, metadata=metadata, cancel=cancel,
                        on_progress=_follow(bars, task, total, done_before, name),
                    )  # fmt: skip
                except ChunkdError as error:
                    failed += 1
                    bars.update(task, description=out.label("red", f"{path.name} failed"))
                    _report(out, json_output, path, None, str(error))
                else:
                    bars.update(task, completed=size, description=out.label("green", path.name))
                    _report(out, json_output, path, result, None)
                done_before += size
                bars.update(total, completed=done_before)
    except KeyboardInterrupt:
        cancel.set()
        again = shlex.join(["chunkd", *sys.argv[1:]])
        out.say("yellow", "interrupted", ": what the server acknowledged is kept; "
                f"run the same command again to resume:\n  {again}")  # fmt: skip
        raise typer.Exit(130) from None
    finally:
        state.close()
    if failed:
        raise typer.Exit(1)


def _follow(
    bars: Progress | _Quiet, task: TaskID, total: TaskID, before: int, name: str
) -> Callable[[UploadProgress], None]:
    def update(progress: UploadProgress) -> None:
        bars.update(task, completed=progress.bytes_sent, description=name)
        bars.update(total, completed=before + progress.bytes_sent)

    return update


def _report(
    out: _Out, as_json: bool, path: Path, result: UploadResult | None, error: str | None
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
        out.say("red", f"✗ {path}", f": {error}")
    else:
        assert result is not None
        how = "resumed" if result.resumed else "uploaded"
        digest = result.sha256[:16]
        out.say("green", f"✓ {path}", f" {how} → {result.location} (sha256 {digest}…)")
