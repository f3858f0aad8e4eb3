"""REDIS_URL carries Redis's password (redis://kit:PASSWORD@redis:6379/0), so the kit treats it
as a secret: masked in repr and logs, readable from REDIS_URL_FILE, never repeated in an error,
and refused in production while its password is a placeholder copied from an example. DATABASE_URL
(KIT_STORE=pgvector) is treated alike."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from kit.core.errors import ConfigError
from kit.core.logging import configure_logging, get_logger
from kit.core.settings import KitSettings, load_settings

PASSWORD = "s3cret-redis-password-7f2c"
URL = f"redis://kit:{PASSWORD}@redis:6379/0"


def test_the_url_is_masked_in_repr_and_scrubbed_from_log_lines(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REDIS_URL", URL)
    settings = load_settings(KitSettings, _env_file=None, log_format="json")

    configure_logging(settings)
    get_logger("test").warning("redis_unreachable", url=URL)  # as a careless log line would
    logging.getLogger("redis").error("cannot connect to %s", URL)  # or a library's message
    logs = capsys.readouterr().err

    assert PASSWORD not in repr(settings) and PASSWORD not in str(settings.model_dump())
    assert settings.redis_url is not None and settings.redis_url.get_secret_value() == URL
    assert PASSWORD not in logs
    assert logs.count("[REDACTED]") == 2


def test_the_url_can_come_from_a_file_and_not_from_both_places(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "redis_url"
    secret.write_text(URL + "\n")  # as `echo` writes it
    monkeypatch.setenv("REDIS_URL_FILE", str(secret))

    settings = load_settings(KitSettings, _env_file=None)
    monkeypatch.setenv("REDIS_URL", URL)
    with pytest.raises(ConfigError, match="Both REDIS_URL and REDIS_URL_FILE are set"):
        load_settings(KitSettings, _env_file=None)

    assert settings.redis_url is not None and settings.redis_url.get_secret_value() == URL


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        (f"redis://kit:{PASSWORD}@redis:99999/0", "invalid port number"),
        (f"http://kit:{PASSWORD}@redis:6379/0", "URL scheme should be 'redis' or 'rediss'"),
    ],
)
def test_a_malformed_url_is_reported_without_its_password(
    monkeypatch: pytest.MonkeyPatch, url: str, rule: str
) -> None:
    monkeypatch.setenv("REDIS_URL", url)

    with pytest.raises(ConfigError) as caught:
        load_settings(KitSettings, _env_file=None)

    message = str(caught.value)
    assert "REDIS_URL" in message and rule in message
    assert "redis://[USER:PASSWORD@]HOST:PORT/DB" in message  # says what is expected
    assert PASSWORD not in message


def test_production_refuses_a_placeholder_password_and_accepts_a_real_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KIT_ENV", "production")
    monkeypatch.setenv("REDIS_URL", "redis://default:changeme@redis:6379/0")
    with pytest.raises(ConfigError, match=r"REDIS_URL.*password is a placeholder"):
        load_settings(KitSettings, _env_file=None)

    monkeypatch.setenv("REDIS_URL", URL)
    assert load_settings(KitSettings, _env_file=None).redis_url is not None
    # A Redis without a password (a managed one on a private network, say) is the operator's call.
    monkeypatch.setenv("REDIS_URL", "rediss://redis.internal:6380/0")
    assert load_settings(KitSettings, _env_file=None).redis_url is not None
    # Outside production the copied example works, so a dev cluster starts as it is.
    monkeypatch.setenv("KIT_ENV", "development")
    monkeypatch.setenv("REDIS_URL", "redis://default:changeme@redis:6379/0")
    assert load_settings(KitSettings, _env_file=None).redis_url is not None


# DATABASE_URL (KIT_STORE=pgvector) carries Postgres's password the same way.
PG_URL = f"postgresql://kit:{PASSWORD}@postgres:5432/kit"


def test_the_database_url_is_a_secret_refused_in_production_with_a_placeholder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", PG_URL)
    settings = load_settings(KitSettings, _env_file=None)
    assert PASSWORD not in repr(settings) and PASSWORD not in str(settings.model_dump())

    monkeypatch.setenv("KIT_ENV", "production")
    for placeholder in (
        "postgresql://kit:changeme@postgres:5432/kit",
        "host=postgres dbname=kit user=kit password=changeme",
    ):
        monkeypatch.setenv("DATABASE_URL", placeholder)
        with pytest.raises(ConfigError, match=r"DATABASE_URL.*password is a placeholder"):
            load_settings(KitSettings, _env_file=None)
    monkeypatch.setenv("DATABASE_URL", PG_URL)
    assert load_settings(KitSettings, _env_file=None).database_url is not None
    # A socket and no password (peer authentication on the same host) is the operator's call.
    monkeypatch.setenv("DATABASE_URL", "host=/run/postgresql dbname=kit")
    assert load_settings(KitSettings, _env_file=None).database_url is not None


def test_a_database_url_of_another_scheme_says_what_is_expected(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"mysql://kit:{PASSWORD}@db:3306/kit")

    with pytest.raises(ConfigError) as caught:
        load_settings(KitSettings, _env_file=None)

    message = str(caught.value)
    assert "postgresql://USER:PASSWORD@HOST:5432/DB" in message and PASSWORD not in message
