"""Settings come from CHATSTORE_* variables; a value that cannot work stops start-up with its name."""

import pytest

from chatstore.core.db import resolve_url
from chatstore.core.settings import Settings, SettingsError


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.database_url == "sqlite:///data/app.db"
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)


def test_variables_are_read_and_typed() -> None:
    settings = Settings.from_env(
        {"CHATSTORE_PORT": "9001", "CHATSTORE_MOCK_DELAY_MS": "0", "CHATSTORE_WORKER_LEASE_S": "2.5"}
    )
    assert settings.port == 9001
    assert settings.mock_delay_ms == 0
    assert settings.worker_lease_s == 2.5


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CHATSTORE_PORT", "eighty"),
        ("CHATSTORE_PORT", "70000"),
        ("CHATSTORE_DB_POOL_SIZE", "0"),
        ("CHATSTORE_MAX_CONTENT_LENGTH", "-1"),
        ("CHATSTORE_WORKER_LEASE_S", "0"),
    ],
)
def test_unusable_values_name_their_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env({variable: value})


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("sqlite:///data/app.db", "sqlite+pysqlite"),
        ("sqlite+aiosqlite:///data/app.db", "sqlite+pysqlite"),
        ("postgresql://u@h/db", "postgresql+asyncpg"),
        ("postgresql+psycopg://u@h/db", "postgresql+asyncpg"),
        ("postgres://u@h/db", "postgresql+asyncpg"),
    ],
)
def test_database_urls_get_the_driver_chatstore_runs(url: str, driver: str) -> None:
    assert resolve_url(url).drivername == driver


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "mysql://u@h/db", "not a url"])
def test_unusable_database_urls_are_refused(url: str) -> None:
    with pytest.raises(SettingsError, match="CHATSTORE_DATABASE_URL"):
        resolve_url(url)
