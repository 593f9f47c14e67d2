"""Server settings: command-line flags, then ``CHUNKD_*`` environment variables, then defaults.

Sizes accept units (``10GiB``, ``500MB``), durations accept ``90s``, ``15m``, ``24h``, ``7d`` or
plain seconds, lists accept commas (``CHUNKD_CORS_ORIGINS=https://a.example,https://b.example``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import ByteSize, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from chunkd.protocol.checksums import ALGORITHMS

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = _DURATION.fullmatch(str(value).strip())
        if not match:
            raise ValueError(f"{value!r} is not a duration (use e.g. 90s, 15m, 24h, 7d)")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError("a duration must be positive")
    return seconds


def _split(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


Duration = Annotated[float, Field(gt=0)]
CommaList = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CHUNKD_", extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    data_dir: Path = Path("chunkd-data")
    max_size: ByteSize = Field(ByteSize(100 * 1024**3), gt=0)
    expiry: Duration = 24 * 3600.0
    sweep_interval: Duration = 60.0
    idle_timeout: Duration = 60.0
    lock_wait: Duration = 10.0
    cors_origins: CommaList = []
    base_path: str = ""
    behind_proxy: bool = False
    fsync: bool = True
    # local disk: write upload bytes with O_DIRECT, past the page cache (storage/direct.py)
    direct_io: bool = True
    digests: CommaList = ["sha256"]
    # CHUNKD_SERVER is the client's server URL; the server's own HTTP engine is asgi_server
    asgi_server: Literal["uvicorn", "granian"] = "uvicorn"
    # Worker processes sharing the listening socket (uvicorn): one event loop receives at
    # about one core's worth; workers of one data directory lock uploads and relay events
    # between themselves (uploads/peers.py), or through PostgreSQL and Redis when set.
    workers: int = Field(1, ge=1, le=64)
    # Memory per upload in flight: the server's socket read buffer (granian) and the batch
    # a writer collects before handing it to a disk thread (two per upload at most): up to
    # write_batch each, but all writers together share write_budget. Unset, it follows the
    # engine: under uvicorn 8 MiB (32 uploads at once: 750-830 MB/s against 630-680 at 2 MiB,
    # peak RSS 90-91 MiB); granian keeps more per connection itself (8 MiB: 109-117 MiB
    # peak), so 2 MiB there (98 MiB). A few uploads at once take 4 MiB batches: each batch
    # costs a disk-thread hand-off, a hashing hand-off and a direct write, and one 1 GiB
    # PATCH took 1.6-1.7 CPU-seconds of the server at 4 MiB against 2.0-2.1 at 1 MiB;
    # 8 MiB batches outgrow the aligned-buffer pool (storage/direct.py) and were slower.
    read_buffer: ByteSize = Field(ByteSize(128 * 1024), ge=16 * 1024, le=16 * 1024 * 1024)
    write_batch: ByteSize = Field(ByteSize(4 * 1024 * 1024), ge=64 * 1024, le=64 * 1024 * 1024)
    write_budget: ByteSize | None = Field(None, ge=1024 * 1024)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "text"] = "json"

    # Identity. Exactly one JWT key kind, or none at all (anonymous, loopback only).
    jwt_secret: SecretStr | None = None
    jwt_public_key: Path | None = None
    jwks_file: Path | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_tenant_claim: str | None = None
    url_signing_secret: SecretStr | None = None
    signed_url_ttl: Duration = 24 * 3600.0
    insecure: bool = False

    # Content: types allowed (presets "audio", "mrc", or MIME types; none: all) and clamd.
    allowed_types: CommaList = []
    clamd: str | None = None
    scan_timeout: Duration = 120.0

    # Redis: fans events out across instances (a subscriber on one sees uploads on others).
    redis_url: SecretStr | None = None  # redis://host:6379/0

    # Hooks: http(s):// webhooks or python:module:function, told/asked about these events.
    hooks: CommaList = []
    hook_events: CommaList = []  # none: all of them
    hook_secret: SecretStr | None = None  # signs webhook bodies (X-Chunkd-Signature)
    hook_timeout: Duration = 10.0
    hook_retry_base: Duration = 2.0
    hook_max_attempts: int = Field(10, ge=1, le=1000)

    # Limits, per owner unless said otherwise; 0 turns a limit off.
    max_open_uploads: int = Field(1000, ge=0)
    max_bytes_in_flight: ByteSize = ByteSize(0)
    max_bytes_stored: ByteSize = ByteSize(0)
    rate_limit: str = "6000/minute"  # parts of a 10 GiB upload arrive at ~20 a second
    rate_limit_per_address: str = "12000/minute"
    min_rate: ByteSize = ByteSize(1024)
    min_rate_window: Duration = 60.0

    # The catalog: SQLite in data_dir (one instance), or PostgreSQL shared by many instances,
    # which then also lock uploads there (advisory locks) instead of in process memory.
    catalog: Literal["sqlite", "postgres"] = "sqlite"
    postgres_dsn: SecretStr | None = None  # postgresql://user:password@host:5432/database
    postgres_pool_size: int = Field(10, ge=1, le=1000)  # catalog connections per instance
    # Per-upload locks hold one connection each while held (a tus PATCH, a REST completion):
    # at most this many per instance, beyond which a request waits, then answers 423.
    postgres_lock_connections: int = Field(100, ge=1, le=10000)

    # Bytes: local disk in data_dir (one instance), or an S3-compatible store (AWS, MinIO, Ceph
    # RGW, R2) shared by many instances. Without keys, boto3's own chain (environment, profile,
    # instance role) is used.
    storage: Literal["local", "s3"] = "local"
    s3_endpoint: str | None = None  # e.g. http://127.0.0.1:9000 (MinIO); unset: AWS itself
    s3_region: str | None = None
    s3_bucket: str | None = None
    s3_prefix: str = ""  # keys are <prefix><upload id>; tails go under <prefix>.tails/
    s3_access_key: str | None = None
    s3_secret_key: SecretStr | None = None

    @field_validator(
        "expiry",
        "sweep_interval",
        "idle_timeout",
        "lock_wait",
        "signed_url_ttl",
        "min_rate_window",
        "scan_timeout",
        "hook_timeout",
        "hook_retry_base",
        mode="before",
    )
    @classmethod
    def _duration(cls, value: Any) -> float:
        return parse_duration(value)

    @field_validator(
        "cors_origins", "digests", "allowed_types", "hooks", "hook_events", mode="before"
    )
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        return _split(value)

    @field_validator("digests")
    @classmethod
    def _known_digests(cls, value: list[str]) -> list[str]:
        if value == ["none"]:
            return []
        unknown = [name for name in value if name not in ALGORITHMS]
        if unknown:
            raise ValueError(f"unknown digest {unknown[0]!r}; choose from {sorted(ALGORITHMS)}")
        return value

    @field_validator("base_path")
    @classmethod
    def _base_path(cls, value: str) -> str:
        value = value.rstrip("/")
        if value and (not value.startswith("/") or not re.fullmatch(r"(/[\w.~-]+)+", value)):
            raise ValueError("must be a URL path like /api (letters, digits, . _ ~ -)")
        return value

    @field_validator("hooks")
    @classmethod
    def _hook_targets(cls, value: list[str]) -> list[str]:
        for target in value:
            if not target.startswith(("http://", "https://", "python:")):
                raise ValueError(
                    f"hook {target!r}: give an http(s):// URL or python:module:function"
                )
        return value

    @field_validator("hook_events")
    @classmethod
    def _hook_names(cls, value: list[str]) -> list[str]:
        from chunkd.hooks.base import ALL

        unknown = [name for name in value if name not in ALL]
        if unknown:
            raise ValueError(f"unknown hook event {unknown[0]!r}; choose from {', '.join(ALL)}")
        return value

    @field_validator("allowed_types")
    @classmethod
    def _types(cls, value: list[str]) -> list[str]:
        from chunkd.validation.sniff import allowed_types

        allowed_types(value)  # raises ValueError naming an unknown preset
        return value

    @field_validator("rate_limit", "rate_limit_per_address")
    @classmethod
    def _rate(cls, value: str) -> str:
        from limits import parse_many

        if value not in ("", "0"):
            try:
                parse_many(value)
            except ValueError:
                raise ValueError(f"{value!r} is not a rate like 600/minute") from None
        return value

    @model_validator(mode="after")
    def _one_key_kind(self) -> Settings:
        kinds = [self.jwt_secret, self.jwt_public_key, self.jwks_file]
        if sum(kind is not None for kind in kinds) > 1:
            raise ValueError("set only one of jwt_secret, jwt_public_key, jwks_file")
        for path in (self.jwt_public_key, self.jwks_file):
            if path is not None and not path.is_file():
                raise ValueError(f"{path} is not a readable file")
        for secret in (self.jwt_secret, self.url_signing_secret):
            if secret is not None and len(secret.get_secret_value()) < 32:
                raise ValueError("secrets must be at least 32 characters")
        return self

    @model_validator(mode="after")
    def _budget_for_the_engine(self) -> Settings:
        if self.write_budget is None:
            mib = 8 if self.asgi_server == "uvicorn" else 2
            self.write_budget = ByteSize(mib * 1024 * 1024)
        return self

    @model_validator(mode="after")
    def _workers_under_uvicorn(self) -> Settings:
        if self.workers > 1 and self.asgi_server != "uvicorn":
            raise ValueError("workers above 1 need asgi_server uvicorn")
        return self

    @model_validator(mode="after")
    def _postgres_needs_a_dsn(self) -> Settings:
        if self.catalog == "postgres" and self.postgres_dsn is None:
            raise ValueError("catalog postgres needs postgres_dsn (CHUNKD_POSTGRES_DSN)")
        return self

    @model_validator(mode="after")
    def _s3_needs_a_bucket(self) -> Settings:
        if self.storage == "s3" and not self.s3_bucket:
            raise ValueError("storage s3 needs s3_bucket (CHUNKD_S3_BUCKET)")
        return self

    @property
    def auth_enabled(self) -> bool:
        return any(k is not None for k in (self.jwt_secret, self.jwt_public_key, self.jwks_file))

    @property
    def loopback_only(self) -> bool:
        return self.host in ("localhost", "::1") or self.host.startswith("127.")

    @property
    def run_dir(self) -> Path:
        """Where the workers of one data directory find each other (``--workers``)."""
        return self.data_dir.resolve() / "run"

    @property
    def peers_dir(self) -> Path:
        """One file per running worker, named by its pid (removed by the supervisor when a
        worker dies without removing it itself)."""
        return self.run_dir / "peers"

    @property
    def files_path(self) -> str:
        """Path of the tus collection, with its trailing slash."""
        return f"{self.base_path}/files/"


_FLAGS = {"asgi_server": "server"}  # settings whose serve flag has another name


class SettingsError(Exception):
    """A setting is invalid; ``str()`` is one line naming it and why."""


def check_exposure(settings: Settings) -> None:
    """Without authentication the server only listens on loopback, unless told --insecure."""
    if not settings.auth_enabled and not settings.loopback_only and not settings.insecure:
        raise SettingsError(
            f"refusing to listen on {settings.host} without authentication: set "
            "CHUNKD_JWT_SECRET (or --jwt-public-key / --jwks-file), or pass --insecure"
        )


def load_settings(**overrides: Any) -> Settings:
    """Settings from ``overrides`` (flags; ``None`` means not given), environment, defaults."""
    given = {name: value for name, value in overrides.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as error:
        first = error.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else "settings"
        if not first["loc"]:  # a rule across settings
            message = str(first["msg"]).removeprefix("Value error, ")
            raise SettingsError(f"invalid settings: {message}") from None
        flag = _FLAGS.get(name, name.replace("_", "-"))
        source = f"--{flag}" if name in given else f"CHUNKD_{name.upper()}"
        message = str(first["msg"]).removeprefix("Value error, ")
        raise SettingsError(f"invalid setting {source}: {message}") from None
