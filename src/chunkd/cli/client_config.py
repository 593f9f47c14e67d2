"""Where the client commands find the server and the token: flag, environment, config file.

Environment: ``CHUNKD_SERVER`` (a URL; the server's own ``CHUNKD_SERVER=granian|uvicorn`` is
ignored here), ``CHUNKD_TOKEN``. Config file: ``$CHUNKD_CLIENT_CONFIG`` or ``client.toml`` in the
user's config directory, with ``server = "..."`` and ``token = "..."``.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

import typer

DEFAULT_SERVER = "http://127.0.0.1:8080"


def config_path() -> Path:
    configured = os.environ.get("CHUNKD_CLIENT_CONFIG")
    if configured:
        return Path(configured)
    import platformdirs

    return Path(platformdirs.user_config_dir("chunkd", appauthor=False)) / "client.toml"


@dataclass(frozen=True)
class Target:
    server: str
    token: str | None


def resolve(server: str | None, token: str | None) -> Target:
    file: dict[str, object] = {}
    path = config_path()
    if path.is_file():
        try:
            file = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as error:
            typer.echo(f"chunkd: cannot read {path}: {error}", err=True)
            raise typer.Exit(2) from None
    env_server = os.environ.get("CHUNKD_SERVER", "")
    if not env_server.startswith(("http://", "https://")):
        env_server = ""
    chosen = server or env_server or str(file.get("server") or DEFAULT_SERVER)
    chosen_token = token or os.environ.get("CHUNKD_TOKEN") or file.get("token")
    return Target(chosen.rstrip("/"), str(chosen_token) if chosen_token else None)


def parse_meta(items: list[str] | None) -> dict[str, str]:
    metadata = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            typer.echo(f"chunkd: --meta takes key=value, not {item!r}", err=True)
            raise typer.Exit(2)
        metadata[key] = value
    return metadata


def parse_size(text: str | None) -> int | None:
    if text is None:
        return None
    from pydantic import ByteSize, TypeAdapter, ValidationError

    try:
        return int(TypeAdapter(ByteSize).validate_python(text))
    except ValidationError:
        typer.echo(f"chunkd: not a size: {text!r} (e.g. 8MiB)", err=True)
        raise typer.Exit(2) from None
