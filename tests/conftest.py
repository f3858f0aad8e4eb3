"""Fixtures shared by every tier, and the rule that a test's folder is its tier's marker.

Each test gets clean settings: none of the developer's KIT_*/server variables and no `.env`
file leak in, and state goes to a temporary folder. Helpers that start real servers live in
`tests/support/`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from kit.core.settings import KitSettings, env_names
from kit.core.tracing import stop_exporting
from tests.support.servers import KIT_VARIABLE_PREFIXES, subprocess_env

TIERS = ("unit", "integration", "e2e")


def pytest_configure(config: pytest.Config) -> None:
    """Spans are stored nowhere in tests unless a test of tracing asks (see the fixture below).
    Set for the whole run, so apps that module- and session-scoped fixtures build (before any
    test's own environment exists) do not each add an MLflow store that every later span of
    their worker is written to."""
    os.environ["KIT_TRACE_EXPORTER"] = "none"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        tier = Path(item.path).relative_to(Path(__file__).parent).parts[0]
        if tier in TIERS:
            item.add_marker(getattr(pytest.mark, tier))


# Starlette's TestClient sends `Host: testserver`; the services answer only to the hosts they are
# told to (localhost and 127.0.0.1 by default), so in-process tests add that one name.
# tests/integration/test_http_security.py checks the strict default itself.
TEST_CLIENT_HOSTS = "testserver,localhost,127.0.0.1"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(KIT_VARIABLE_PREFIXES) or name in env_names(KitSettings).values():
            monkeypatch.delenv(name)
    for service in ("GATEWAY", "RAG"):
        monkeypatch.setenv(f"{service}_TRUSTED_HOSTS", TEST_CLIENT_HOSTS)
    # Spans are made (ids on log lines) but stored nowhere, unless a test of tracing asks: a
    # test process makes many apps, and each would otherwise add its own MLflow store.
    monkeypatch.setenv("KIT_TRACE_EXPORTER", "none")


@pytest.fixture(autouse=True)
def _no_exporters_left_behind() -> Iterator[None]:
    """A test that sent spans somewhere (an MLflow store in its temporary folder) stops doing so
    when it ends, so later tests of the same worker neither write there nor wait on it."""
    yield
    stop_exporting()


@pytest.fixture
def settings(tmp_path: Path) -> KitSettings:
    """Settings for a test: its own data and cache folders, no .env file."""
    return KitSettings(
        _env_file=None,  # type: ignore[call-arg]
        environment="test",
        data_dir=tmp_path / "data",
        cache_dir=tmp_path / "cache",
    )


@pytest.fixture(scope="session")
def shared_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache folder kept for the whole run, so a model is converted once, not once per test."""
    return tmp_path_factory.mktemp("kit-cache")


@pytest.fixture
def kit_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Environment for running `kit` in a subprocess, with state in a temporary folder."""
    yield subprocess_env(tmp_path)
