"""``chunkd admin ls|show|cancel|storage|activity|cleanup``: a client of the admin API.

The server and the token are found as for ``chunkd upload`` (``--server``/``--token``, then
``CHUNKD_SERVER``/``CHUNKD_TOKEN``, then the client config file); the token needs the
``admin`` scope (a server without authentication grants it to everyone). Tables are for
people; ``--json`` prints the server's answer for scripts.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from chunkd.cli.client_config import Target, resolve
from chunkd.uploads.models import UploadState

if TYPE_CHECKING:  # httpx and rich load when a command runs: every `chunkd` command, `chunkd
    # serve` included, imports this module
    import httpx
    from rich.console import Console
    from rich.table import Table

admin_app = typer.Typer(
    no_args_is_help=True, help="Inspect and operate a server (needs the admin scope)."
)

ServerOption = Annotated[str | None, typer.Option(help="Server URL [CHUNKD_SERVER].")]
TokenOption = Annotated[str | None, typer.Option(help="Bearer token [CHUNKD_TOKEN].")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the server's JSON.")]
TimeoutOption = Annotated[float, typer.Option(help="Network timeout, seconds.")]
UploadIdArgument = Annotated[str, typer.Argument(metavar="ID", help="The upload's id.")]


class AdminError(Exception):
    """A request the server (or the network) refused, as one line for the operator."""


class AdminClient:
    def __init__(self, target: Target, timeout: float = 30.0) -> None:
        import httpx

        headers = {"Authorization": f"Bearer {target.token}"} if target.token else {}
        self.server = target.server
        self.authenticated = target.token is not None
        self._http = httpx.Client(
            base_url=f"{target.server}/admin", headers=headers, timeout=timeout
        )

    def close(self) -> None:
        self._http.close()

    def call(self, method: str, path: str, params: Any = None) -> Any:
        import httpx

        try:
            answer = self._http.request(method, path, params=params)
        except httpx.TransportError as error:
            raise AdminError(
                f"cannot reach {self.server}: {error or type(error).__name__}"
            ) from None
        if answer.is_success:
            return answer.json()
        raise AdminError(self._explain(answer))

    def _explain(self, answer: httpx.Response) -> str:
        error: dict[str, Any] = {}
        try:
            error = answer.json()["error"]
            code, message = str(error["code"]), str(error["message"])
        except (ValueError, KeyError, TypeError):
            code, message = "", answer.text.strip()[:200] or answer.reason_phrase
        if answer.status_code == 401:
            if not self.authenticated:
                return "the server wants a token with the admin scope (--token or CHUNKD_TOKEN)"
            return f"the server refused the token: {message}"
        if answer.status_code == 403 and code == "INSUFFICIENT_SCOPE":
            return "this token lacks the admin scope"
        if answer.status_code == 404 and code in ("NOT_FOUND", ""):
            return f"{self.server} has no admin API (is it chunkd, and is --server right?)"
        if code == "VALIDATION_FAILED":
            problems = (error.get("details") or {}).get("problems") or []
            detail = "; ".join(f"{'.'.join(p['loc'][1:])}: {p['msg']}" for p in problems)
            return f"{message}: {detail}" if detail else message
        return f"{message} ({answer.status_code} {code})" if code else message


def _run(server: str | None, token: str | None, timeout: float, method: str, path: str,
         params: Any = None) -> Any:  # fmt: skip
    client = AdminClient(resolve(server, token), timeout)
    try:
        return client.call(method, path, params)
    except AdminError as error:
        typer.echo(f"chunkd: {error}", err=True)
        raise typer.Exit(1) from None
    finally:
        client.close()


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2))


def _console() -> Console:
    from rich.console import Console

    return Console(highlight=False)


def size(value: int | None) -> str:
    if value is None:
        return "?"
    if value < 1024:
        return f"{value} B"
    amount = float(value)
    for unit in ("KiB", "MiB", "GiB"):
        amount /= 1024
        if amount < 1024:
            return f"{amount:.1f} {unit}"
    return f"{amount / 1024:.1f} TiB"


def rate(value: float | None) -> str:
    return "-" if value is None else f"{size(round(value))}/s"


def age(stamp: str | None, now: float | None = None) -> str:
    if stamp is None:
        return "-"
    seconds = max(0.0, (now or time.time()) - datetime.fromisoformat(stamp).timestamp())
    for unit, length in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= length:
            return f"{int(seconds // length)}{unit} ago"
    return f"{int(seconds)}s ago"


def _duration(text: str | None) -> float | None:
    if text is None:
        return None
    from chunkd.settings import parse_duration

    try:
        return parse_duration(text)
    except ValueError as error:
        typer.echo(f"chunkd: --older-than: {error}", err=True)
        raise typer.Exit(2) from None


_STATE_STYLE = {
    "receiving": "cyan",
    "verifying": "yellow",
    "complete": "green",
    "failed": "red",
    "aborted": "dim",
    "expired": "dim",
}


def _state(value: str) -> str:
    style = _STATE_STYLE.get(value)
    return f"[{style}]{value}[/]" if style else value


def _plain(*, header: bool = True, title: str | None = None) -> Table:
    """An empty table without edges: a rule under the header, if it has one."""
    from rich import box
    from rich.table import Table

    return Table(box=box.SIMPLE_HEAD if header else box.SIMPLE, show_header=header,
                 pad_edge=False, show_edge=False, title=title, title_justify="left",
                 title_style="bold")  # fmt: skip


def _table(*headers: str, title: str | None = None) -> Table:
    """A plain table: a rule under the header, numbers (every column but the first) right."""
    table = _plain(title=title)
    for index, header in enumerate(headers):
        table.add_column(header, justify="left" if index == 0 else "right", no_wrap=True)
    return table


@admin_app.command("ls")
def ls(
    state: Annotated[
        list[UploadState] | None, typer.Option(help="Only uploads in this state (repeat).")
    ] = None,
    owner: Annotated[str | None, typer.Option(help="Only this owner's uploads.")] = None,
    older_than: Annotated[
        str | None, typer.Option(help="Not updated for at least this long, e.g. 1h, 7d.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Uploads per page.")] = 100,
    after: Annotated[str | None, typer.Option(help="Start after this id (paging).")] = None,
    all_pages: Annotated[bool, typer.Option("--all", help="Follow every page.")] = False,
    json_output: JsonOption = False,
    server: ServerOption = None,
    token: TokenOption = None,
    timeout: TimeoutOption = 30.0,
) -> None:
    """List uploads of every owner, by id."""
    params: dict[str, Any] = {"limit": limit}
    if state:
        params["state"] = [str(s) for s in state]
    if owner is not None:
        params["owner"] = owner
    seconds = _duration(older_than)
    if seconds is not None:
        params["older_than"] = seconds
    uploads: list[dict[str, Any]] = []
    cursor = after
    while True:
        page = _run(server, token, timeout, "GET", "/uploads", {**params, "after": cursor})
        uploads += page["uploads"]
        cursor = page["next"]
        if cursor is None or not all_pages:
            break
    if json_output:
        _print_json({"uploads": uploads, "next": cursor})
        return
    console = _console()
    table = _plain()
    table.add_column("ID", no_wrap=True, min_width=32)
    table.add_column("OWNER", no_wrap=True, max_width=24)
    table.add_column("STATE", no_wrap=True)
    table.add_column("RECEIVED", justify="right", no_wrap=True)
    table.add_column("SIZE", justify="right", no_wrap=True)
    table.add_column("UPDATED", justify="right", no_wrap=True)
    table.add_column("FILE", overflow="ellipsis", no_wrap=True)
    now = time.time()
    for upload in uploads:
        total = upload["size"]
        done = f"{100 * upload['offset'] / total:.0f}%" if total else "-"
        table.add_row(
            upload["id"], upload["owner"] or "-", _state(upload["state"]), done,
            size(total), age(upload["updated_at"], now), upload["filename"] or "",
        )  # fmt: skip
    console.print(table)
    summary = f"{len(uploads)} upload{'' if len(uploads) == 1 else 's'}"
    if cursor is not None:
        summary += f"; more after: --after {cursor} (or --all)"
    console.print(summary)


@admin_app.command("show")
def show(
    upload_id: UploadIdArgument,
    json_output: JsonOption = False,
    server: ServerOption = None,
    token: TokenOption = None,
    timeout: TimeoutOption = 30.0,
) -> None:
    """Everything about one upload."""
    upload = _run(server, token, timeout, "GET", f"/uploads/{upload_id}")
    if json_output:
        _print_json(upload)
        return
    _console().print(_detail(upload))


def _detail(upload: dict[str, Any]) -> Table:
    table = _plain(header=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")

    def row(name: str, value: Any) -> None:
        if value is None or value in ("", [], {}):
            return
        table.add_row(name, str(value))

    received = upload["bytes_received"]
    total = upload["size"]
    progress = f"{size(received)} of {size(total)}"
    if total:
        progress += f" ({100 * received / total:.1f}%)"
    row("id", upload["id"])
    row("state", _state(upload["state"]))
    row("owner", upload["owner"] or "- (anonymous)")
    row("protocol", upload["protocol"])
    row("filename", upload["filename"])
    row("content type", upload["content_type"])
    row("sniffed type", upload["sniffed_type"])
    row("received", progress)
    if upload["part_count"] is not None:
        row("parts", f"{upload['parts_received']} of {upload['part_count']} "
                     f"({size(upload['part_size'])} each)")  # fmt: skip
        row("missing parts", ", ".join(
            str(a) if a == b else f"{a}-{b}" for a, b in upload["missing_parts"] or []
        ))  # fmt: skip
    row("error", upload["error"] and f"[red]{upload['error']}[/]")
    row("created", f"{upload['created_at']} ({age(upload['created_at'])})")
    row("updated", f"{upload['updated_at']} ({age(upload['updated_at'])})")
    row("expires", upload["expires_at"])
    for name, values in (
        ("metadata", upload["metadata"]),
        ("digests", upload["digests"]),
        ("expected", upload["expected_digests"]),
    ):
        row(name, "\n".join(f"{k}={v}" for k, v in sorted(values.items()) if v is not None))
    handoff = upload["handoff"]
    if handoff is not None:
        tries = f"{handoff['attempts']} tr{'y' if handoff['attempts'] == 1 else 'ies'}"
        text = f"{handoff['state']} ({tries})"
        if handoff["last_error"]:
            text += f", last error: {handoff['last_error']}"
        row("hand-off", text)
    row("location", upload["location"])
    row("partial", "yes" if upload["partial"] else None)
    row("joins", "\n".join(upload["concat_parts"] or []))
    row("storage keys", ", ".join(upload["storage_keys"]))
    return table


@admin_app.command("cancel")
def cancel(
    upload_id: UploadIdArgument,
    json_output: JsonOption = False,
    server: ServerOption = None,
    token: TokenOption = None,
    timeout: TimeoutOption = 30.0,
) -> None:
    """Abort an upload (of any owner) and remove its bytes."""
    upload = _run(server, token, timeout, "POST", f"/uploads/{upload_id}/cancel")
    if json_output:
        _print_json(upload)
        return
    _console().print(f"cancelled {upload['id']} (now {_state(upload['state'])})")


@admin_app.command("storage")
def storage(
    json_output: JsonOption = False,
    server: ServerOption = None,
    token: TokenOption = None,
    timeout: TimeoutOption = 30.0,
) -> None:
    """Bytes and uploads by state and by owner, and free disk."""
    report = _run(server, token, timeout, "GET", "/storage")
    if json_output:
        _print_json(report)
        return
    console = _console()
    states = _table("STATE", "UPLOADS", "BYTES", title="By state")
    for name, amount in report["by_state"].items():
        states.add_row(_state(name), str(amount["uploads"]), size(amount["bytes"]))
    total = report["total"]
    states.add_row("[bold]total", str(total["uploads"]), size(total["bytes"]))
    console.print(states)
    owners = _table("OWNER", "UPLOADS", "BYTES", "BY STATE", title="By owner")
    owners.columns[3].justify = "left"
    owners.columns[3].no_wrap = False
    for usage in report["by_owner"]:
        detail = ", ".join(
            f"{name} {amount['uploads']}/{size(amount['bytes'])}"
            for name, amount in usage["by_state"].items()
        )
        owners.add_row(usage["owner"] or "- (anonymous)", str(usage["uploads"]),
                       size(usage["bytes"]), detail)  # fmt: skip
    console.print(owners)
    disk = report["disk"]
    if disk is None:
        console.print("disk: not local storage")
    else:
        used = 100 * disk["used"] / disk["total"] if disk["total"] else 0.0
        console.print(
            f"disk {disk['path']}: {size(disk['free'])} free of {size(disk['total'])} "
            f"({used:.0f}% used)"
        )


@admin_app.command("activity")
def activity(
    json_output: JsonOption = False,
    server: ServerOption = None,
    token: TokenOption = None,
    timeout: TimeoutOption = 30.0,
) -> None:
    """Uploads started, completed and failed, bytes and rates, over the last hour and day."""
    report = _run(server, token, timeout, "GET", "/activity")
    if json_output:
        _print_json(report)
        return
    table = _table("", "STARTED", "COMPLETED", "FAILED", "ABORTED", "EXPIRED", "BYTES",
                   "MEAN RATE", "THROUGHPUT")  # fmt: skip
    for name, key in (("last hour", "last_hour"), ("last day", "last_day")):
        window = report[key]
        table.add_row(
            name, *(str(window[field]) for field in
                    ("started", "completed", "failed", "aborted", "expired")),
            size(window["bytes"]), rate(window["mean_rate"]), rate(window["throughput"]),
        )  # fmt: skip
    _console().print(table)


@admin_app.command("cleanup")
def cleanup(
    json_output: JsonOption = False,
    server: ServerOption = None,
    token: TokenOption = None,
    timeout: Annotated[float, typer.Option(help="Network timeout, seconds.")] = 300.0,
) -> None:
    """Run the server's expiry sweep now."""
    report = _run(server, token, timeout, "POST", "/cleanup")
    if json_output:
        _print_json(report)
        return
    _console().print(
        f"expired {report['expired']} uploads, purged {report['purged']} records, "
        f"reclaimed {size(report['bytes_reclaimed'])}"
    )
