"""The ``chunkd`` command."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:  # the server's settings load only for the commands that use them: a client
    from chunkd.settings import Settings  # command starts faster without pydantic-settings

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Resumable uploads of large files.",
)


def _settings(**flags: object) -> Settings:
    from chunkd.settings import SettingsError, load_settings

    try:
        return load_settings(**flags)
    except SettingsError as error:
        typer.echo(f"chunkd: {error}", err=True)
        raise typer.Exit(2) from None


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on [127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on [8080].")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Where bytes and records live.")] = None,
    max_size: Annotated[str | None, typer.Option(help="Largest upload, e.g. 10GiB.")] = None,
    expiry: Annotated[
        str | None, typer.Option(help="Idle unfinished uploads expire, e.g. 24h.")
    ] = None,
    cors_origins: Annotated[
        str | None, typer.Option(help="Allowed browser origins, comma-separated.")
    ] = None,
    base_path: Annotated[str | None, typer.Option(help="URL prefix, e.g. /api.")] = None,
    behind_proxy: Annotated[
        bool | None,
        typer.Option("--behind-proxy/--direct", help="Trust Forwarded / X-Forwarded-* headers."),
    ] = None,
    fsync: Annotated[
        bool | None,
        typer.Option("--fsync/--no-fsync", help="Sync bytes to disk before acknowledging them."),
    ] = None,
    digests: Annotated[
        str | None, typer.Option(help="Whole-file digests to compute, or 'none'.")
    ] = None,
    server: Annotated[
        str | None, typer.Option(help="ASGI server: uvicorn (default) or granian.")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Processes sharing the port (uvicorn) [1].")
    ] = None,
    log_level: Annotated[str | None, typer.Option(help="debug, info, warning or error.")] = None,
    log_format: Annotated[str | None, typer.Option(help="json or text.")] = None,
    jwt_public_key: Annotated[
        Path | None, typer.Option(help="PEM public key for RS256/ES256 tokens.")
    ] = None,
    jwks_file: Annotated[
        Path | None, typer.Option(help="JWKS file for RS256/ES256 tokens.")
    ] = None,
    jwt_issuer: Annotated[str | None, typer.Option(help="Required token issuer (iss).")] = None,
    jwt_audience: Annotated[str | None, typer.Option(help="Required token audience (aud).")] = None,
    jwt_tenant_claim: Annotated[
        str | None, typer.Option(help="Claim naming the owner's tenant.")
    ] = None,
    insecure: Annotated[
        bool | None, typer.Option("--insecure", help="Allow no authentication off loopback.")
    ] = None,
) -> None:
    """Start the server (settings: flags, then CHUNKD_* variables, then defaults).

    Secrets are read from the environment only: CHUNKD_JWT_SECRET (HS256) and
    CHUNKD_URL_SIGNING_SECRET (signed upload URLs; defaults to the JWT secret).
    """
    settings = _settings(
        host=host, port=port, data_dir=data_dir, max_size=max_size, expiry=expiry,
        cors_origins=cors_origins, base_path=base_path, behind_proxy=behind_proxy, fsync=fsync,
        digests=digests, asgi_server=server, workers=workers, log_level=log_level,
        log_format=log_format,
        jwt_public_key=jwt_public_key, jwks_file=jwks_file, jwt_issuer=jwt_issuer,
        jwt_audience=jwt_audience, jwt_tenant_claim=jwt_tenant_claim, insecure=insecure,
    )  # fmt: skip
    from chunkd.settings import SettingsError, check_exposure

    try:
        check_exposure(settings)
    except SettingsError as error:
        typer.echo(f"chunkd: {error}", err=True)
        raise typer.Exit(2) from None
    from chunkd.server.runner import run

    run(settings)


@app.command()
def cleanup(
    data_dir: Annotated[Path | None, typer.Option(help="Where bytes and records live.")] = None,
    expiry: Annotated[
        str | None, typer.Option(help="Idle time after which uploads expire.")
    ] = None,
) -> None:
    """Remove expired uploads' bytes and records once, then exit."""
    settings = _settings(data_dir=data_dir, expiry=expiry)
    from chunkd.server.app import build_service
    from chunkd.uploads.expiry import sweep_all

    async def clean() -> None:
        service = build_service(settings)
        async with service.catalog, service.storage, service.locker:
            report = await sweep_all(service)
        typer.echo(
            f"expired {report.expired} uploads, purged {report.purged} records, "
            f"reclaimed {report.bytes_reclaimed} bytes"
        )

    import asyncio

    asyncio.run(clean())


@app.command()
def sign(
    upload: Annotated[str | None, typer.Option(help="Sign this upload's URL.")] = None,
    create: Annotated[
        str | None,
        typer.Option(help="Sign a URL creating one upload of at most this size (e.g. 2GiB)."),
    ] = None,
    owner: Annotated[str | None, typer.Option(help="Owner of the upload to create.")] = None,
    ttl: Annotated[str, typer.Option(help="How long the URL is valid, e.g. 1h.")] = "1h",
    url: Annotated[str, typer.Option(help="The server's public URL.")] = "http://127.0.0.1:8080",
    data_dir: Annotated[
        Path | None, typer.Option(help="Where records live (to read the owner).")
    ] = None,
) -> None:
    """Print a signed, expiring URL for a client without a token.

    The key is CHUNKD_URL_SIGNING_SECRET (or CHUNKD_JWT_SECRET), as the server's.
    """
    import time

    from pydantic import ByteSize, TypeAdapter

    from chunkd.auth.signing import UrlSigner, with_signature
    from chunkd.settings import parse_duration

    settings = _settings(data_dir=data_dir)
    secret = settings.url_signing_secret or settings.jwt_secret
    if secret is None:
        typer.echo("chunkd: set CHUNKD_URL_SIGNING_SECRET (or CHUNKD_JWT_SECRET)", err=True)
        raise typer.Exit(2)
    if (upload is None) == (create is None):
        typer.echo("chunkd: give exactly one of --upload ID or --create SIZE", err=True)
        raise typer.Exit(2)
    signer = UrlSigner(secret.get_secret_value())
    expires_at = time.time() + parse_duration(ttl)
    base = url.rstrip("/") + settings.base_path
    if create is not None:
        size = int(TypeAdapter(ByteSize).validate_python(create))
        token = signer.for_creation(owner, size, expires_at)
        typer.echo(with_signature(f"{base}/files/", token))
        return
    assert upload is not None

    async def owner_of() -> str | None:
        from chunkd.catalog.sqlite import SqliteCatalog

        async with SqliteCatalog(settings.data_dir.resolve() / "catalog.sqlite3") as catalog:
            record = await catalog.get(upload)
        if record is None:
            typer.echo(f"chunkd: no upload {upload} in {settings.data_dir}", err=True)
            raise typer.Exit(1)
        return record.owner

    import asyncio

    token = signer.for_upload(upload, asyncio.run(owner_of()), expires_at)
    typer.echo(with_signature(f"{base}/files/{upload}", token))


# the client's commands live in their own modules
from chunkd.cli.admin import admin_app  # noqa: E402
from chunkd.cli.queue import queue_app, sync  # noqa: E402
from chunkd.cli.upload import upload  # noqa: E402

app.command()(upload)
app.command()(sync)
app.add_typer(queue_app, name="queue")
app.add_typer(admin_app, name="admin")


def main() -> None:
    app()
