from __future__ import annotations

import pytest

from chunkd.settings import SettingsError, load_settings, parse_duration


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert settings.expiry == 24 * 3600
    assert settings.fsync is True
    assert settings.digests == ["sha256"]
    assert settings.files_path == "/files/"


def test_flags_beat_environment_beat_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHUNKD_PORT", "9000")
    monkeypatch.setenv("CHUNKD_MAX_SIZE", "2GiB")
    monkeypatch.setenv("CHUNKD_CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("CHUNKD_FSYNC", "false")
    settings = load_settings(port=9100, max_size=None)
    assert settings.port == 9100
    assert int(settings.max_size) == 2 * 1024**3
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.fsync is False


@pytest.mark.parametrize(
    ("flags", "env", "message"),
    [
        ({"port": 70000}, {}, "invalid setting --port"),
        ({}, {"CHUNKD_PORT": "http"}, "invalid setting CHUNKD_PORT"),
        ({"max_size": "lots"}, {}, "invalid setting --max-size"),
        ({"expiry": "soon"}, {}, "invalid setting --expiry: 'soon' is not a duration"),
        ({"expiry": "0s"}, {}, "invalid setting --expiry: a duration must be positive"),
        ({"base_path": "api"}, {}, "invalid setting --base-path"),
        ({"digests": "sha256,whirlpool"}, {}, "invalid setting --digests: unknown digest"),
        ({"asgi_server": "gunicorn"}, {}, "invalid setting --server"),
        ({}, {"CHUNKD_ASGI_SERVER": "gunicorn"}, "invalid setting CHUNKD_ASGI_SERVER"),
        ({"workers": 0}, {}, "invalid setting --workers"),
        ({}, {"CHUNKD_WORKERS": "many"}, "invalid setting CHUNKD_WORKERS"),
        ({"workers": 2, "asgi_server": "granian"}, {}, "invalid setting"),
    ],
)
def test_bad_settings_say_which_and_why(
    monkeypatch: pytest.MonkeyPatch, flags: dict[str, object], env: dict[str, str], message: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as error:
        load_settings(**flags)
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(90, 90.0), ("90", 90.0), ("90s", 90.0), ("15m", 900.0), ("24h", 86400.0), ("1.5d", 129600.0)],
)
def test_durations(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


def test_digests_none_and_base_path() -> None:
    settings = load_settings(digests="none", base_path="/api/")
    assert settings.digests == []
    assert settings.files_path == "/api/files/"


def test_postgres_catalog_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().catalog == "sqlite"
    monkeypatch.setenv("CHUNKD_CATALOG", "postgres")
    with pytest.raises(SettingsError, match="catalog postgres needs postgres_dsn"):
        load_settings()
    monkeypatch.setenv("CHUNKD_POSTGRES_DSN", "postgresql://u:pw-k7q2@db:5432/chunkd")
    monkeypatch.setenv("CHUNKD_POSTGRES_POOL_SIZE", "20")
    settings = load_settings()
    assert settings.postgres_dsn is not None
    assert settings.postgres_dsn.get_secret_value().endswith("@db:5432/chunkd")
    assert "pw-k7q2" not in repr(settings)  # the password never reaches a log line
    assert (settings.postgres_pool_size, settings.postgres_lock_connections) == (20, 100)
    with pytest.raises(SettingsError, match="invalid setting --catalog"):
        load_settings(catalog="mysql")


def test_the_write_budget_follows_the_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().write_budget == 8 << 20  # uvicorn
    assert load_settings(asgi_server="granian").write_budget == 2 << 20
    monkeypatch.setenv("CHUNKD_WRITE_BUDGET", "4MiB")
    assert load_settings(asgi_server="granian").write_budget == 4 << 20  # set: kept
