"""``chunkd queue add|ls|stats`` and ``chunkd sync [--watch]``: the offline-first queue."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from chunkd.cli.client_config import parse_meta, resolve
from chunkd.client.queue import STATUSES, Item, UploadQueue

# rich and the client (httpx) load in the commands that use them: every `chunkd` command,
# `chunkd serve` included, imports this module

queue_app = typer.Typer(no_args_is_help=True, help="Files waiting to be uploaded.")
_DIR = typer.Option(help="Queue directory [CHUNKD_CLIENT_DIR/queue].", envvar="CHUNKD_QUEUE_DIR")


@queue_app.command("add")
def add(
    files: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, readable=True)],
    meta: Annotated[list[str] | None, typer.Option(help="Metadata key=value (repeat).")] = None,
    copy: Annotated[bool, typer.Option("--copy/--reference", help="Copy into the queue.")] = False,
    queue_dir: Annotated[Path | None, _DIR] = None,
) -> None:
    """Record files to upload when the server is reachable."""
    metadata = parse_meta(meta)
    queue = UploadQueue(queue_dir)
    for path in files:
        item = queue.add(path, metadata, copy)
        typer.echo(f"{item.id}\trecorded\t{item.path}")
    queue.close()


@queue_app.command("ls")
def ls(
    status: Annotated[
        str | None, typer.Option(help=f"Only this status: {', '.join(STATUSES)}.")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="One JSON line per item.")] = False,
    queue_dir: Annotated[Path | None, _DIR] = None,
) -> None:
    """List queued items."""  # fmt: skip
    if status is not None and status not in STATUSES:
        typer.echo(f"chunkd: status must be one of {', '.join(STATUSES)}", err=True)
        raise typer.Exit(2)
    queue = UploadQueue(queue_dir)
    items = queue.items(status)
    queue.close()
    if json_output:
        for item in items:
            typer.echo(json.dumps(item.as_dict()))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "status", "size", "file", "upload / error")
    for item in items:
        table.add_row(str(item.id), item.status, str(item.size), item.path,
                      item.error if item.status == "failed" else item.upload_id or "")  # fmt: skip
    Console().print(table)


@queue_app.command("stats")
def stats(
    json_output: Annotated[bool, typer.Option("--json")] = False,
    queue_dir: Annotated[Path | None, _DIR] = None,
) -> None:
    """Items per status and the local disk they use."""
    queue = UploadQueue(queue_dir)
    numbers = queue.stats()
    queue.close()
    if json_output:
        typer.echo(json.dumps(numbers))
        return
    for status, count in numbers["items"].items():
        typer.echo(f"{status:<11} {count}")
    typer.echo(f"local files {numbers['local_bytes']} bytes ({numbers['copied_bytes']} copied "
               f"into {numbers['directory']})")  # fmt: skip


def sync(
    watch: Annotated[bool, typer.Option("--watch", help="Keep running; upload new items.")] = False,
    server: Annotated[str | None, typer.Option(help="Server URL [CHUNKD_SERVER].")] = None,
    token: Annotated[str | None, typer.Option(help="Bearer token [CHUNKD_TOKEN].")] = None,
    parallel: Annotated[int, typer.Option(min=1, max=64, help="Parts in flight.")] = 4,
    interval: Annotated[
        float, typer.Option(help="Seconds between rounds (and to follow events in one).")
    ] = 5.0,
    remove_after_upload: Annotated[bool, typer.Option("--remove-after-upload")] = False,
    keep_failed_days: Annotated[float, typer.Option(help="Forget failed items after.")] = 7.0,
    queue_dir: Annotated[Path | None, _DIR] = None,
) -> None:
    """Upload every pending item; wait and retry while the server is unreachable."""
    from rich.console import Console

    from chunkd.client import Client, ResumeState, RetryPolicy
    from chunkd.client.syncing import sync_round

    target = resolve(server, token)
    queue = UploadQueue(queue_dir)
    state = ResumeState()
    retry = RetryPolicy(attempts=4, base=0.2, cap=2.0)
    console = Console(stderr=True)
    failed = 0
    delay = interval

    def changed(item: Item) -> None:
        console.print(f"{item.id} {item.status:<10} {Path(item.path).name} {item.error or ''}")

    try:
        with Client(target.server, target.token, parallel=parallel, retry=retry, state=state) as c:
            while True:
                queue.clean_failed(keep_failed_days * 86400)
                report = sync_round(queue, c, remove_after_upload=remove_after_upload,
                                    on_change=changed, wait=interval)  # fmt: skip
                failed += report.failed
                if report.unreachable:
                    console.print(f"[yellow]server {target.server} unreachable; retrying in "
                                  f"{delay:.0f}s[/]")  # fmt: skip
                    time.sleep(delay)
                    delay = min(delay * 2, max(interval, 60.0))
                    continue
                delay = interval
                if not watch and not report.waiting:
                    break
                if not report.waited:  # (a round that followed events has waited already)
                    time.sleep(interval)
    except KeyboardInterrupt:
        console.print("stopped; `chunkd sync` resumes where this left off")
        raise typer.Exit(130) from None
    finally:
        state.close()
        queue.close()
    if failed:
        raise typer.Exit(1)
