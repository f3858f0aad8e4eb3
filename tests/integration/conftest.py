"""Fixtures for the integration tier: the fake upstream and the local models, shared per run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kit.core.settings import KitSettings
from kit.llm.local_client import LocalClient
from tests.support.fake_openai import FakeUpstream, running_fake_upstream
from tests.support.postgres import fresh_database, running_postgres


@pytest.fixture(scope="session")
def local_client(shared_cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> LocalClient:
    """The shipped models, loaded once for the whole run (they are read-only)."""
    settings = KitSettings(
        _env_file=None,  # type: ignore[call-arg]
        environment="test",
        cache_dir=shared_cache_dir,
        data_dir=tmp_path_factory.mktemp("local-data"),
    )
    return LocalClient(settings)


@pytest.fixture(scope="session")
def _upstream_server() -> Iterator[FakeUpstream]:
    with running_fake_upstream() as upstream:
        yield upstream


@pytest.fixture
def upstream(_upstream_server: FakeUpstream) -> FakeUpstream:
    """The fake OpenAI-compatible upstream, with an empty script and record for each test."""
    _upstream_server.reset()
    return _upstream_server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A real PostgreSQL 18 with pgvector for the run (one per xdist worker): its admin URL."""
    with running_postgres() as url:
        yield url


@pytest.fixture
def database_url(postgres_server: str) -> Iterator[str]:
    """An empty database of its own for one test, on the shared server."""
    with fresh_database(postgres_server) as url:
        yield url
