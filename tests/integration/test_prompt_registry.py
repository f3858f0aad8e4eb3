"""The prompt files in MLflow's prompt registry (sqlite): pushed only when changed, aliases that
move, and a RAG service that answers with the version an alias names and says so in its trace."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from kit.cli.app import app as cli
from kit.core import prompt_registry
from kit.core.errors import ConfigError, KitError
from kit.core.settings import KitSettings
from kit.llm.local_client import LocalClient
from kit.llm.scripted import ScriptedModel
from kit.rag.answer import PROMPTS
from kit.rag_service.app import create_app
from kit.rag_service.settings import RagSettings
from tests.integration.rag_helpers import ADMIN, indexed_docs, rag_keys
from tests.support.tracing import memory_exporter, named

ANSWER_V2 = (PROMPTS / "answer-v2.yaml").read_text(encoding="utf-8")


@pytest.fixture
def store_settings(tmp_path: Path) -> KitSettings:
    return KitSettings(_env_file=None, environment="test", data_dir=tmp_path / "data")  # type: ignore[call-arg]


def test_push_registers_a_file_once_and_again_only_when_it_changes(
    store_settings: KitSettings,
) -> None:
    first, created = prompt_registry.push(
        store_settings,
        "answer-v2",
        ANSWER_V2,
        source="rag/prompts/answer-v2.yaml",
        alias="production",
    )
    again, created_again = prompt_registry.push(
        store_settings, "answer-v2", ANSWER_V2, source="rag/prompts/answer-v2.yaml"
    )
    edited, created_edit = prompt_registry.push(
        store_settings, "answer-v2", ANSWER_V2 + "\n# a comment\n", source="x", alias="staging"
    )

    assert (created, created_again, created_edit) == (True, False, True)
    assert first.version == again.version == 1 and edited.version == 2
    assert prompt_registry.load(store_settings, "prompts:/answer-v2@production").text == ANSWER_V2
    assert prompt_registry.load(store_settings, "prompts:/answer-v2@staging").version == 2
    prompt_registry.set_alias(store_settings, "answer-v2", "production", 2)  # promote
    assert prompt_registry.load(store_settings, "prompts:/answer-v2@production").version == 2
    assert prompt_registry.load(store_settings, "prompts:/answer-v2/1").digest == first.digest


def test_a_missing_version_or_a_malformed_uri_says_how_to_fix_it(
    store_settings: KitSettings,
) -> None:
    with pytest.raises(ConfigError, match="kit prompts push"):
        prompt_registry.load(store_settings, "prompts:/answer-v2@production")
    with pytest.raises(ConfigError, match="prompts:/NAME@ALIAS"):
        prompt_registry.load(store_settings, "prompts:answer-v2")
    with pytest.raises(ConfigError, match="no version 3"):
        prompt_registry.set_alias(store_settings, "answer-v2", "production", 3)


def test_kit_prompts_push_registers_every_prompt_file(tmp_path: Path) -> None:
    env = {"KIT_DATA_DIR": str(tmp_path / "data"), "KIT_ENV": "test"}
    runner = CliRunner()

    pushed = runner.invoke(cli, ["prompts", "push", "--alias", "production"], env=env)
    repeated = runner.invoke(cli, ["prompts", "push"], env=env)
    listed = runner.invoke(cli, ["prompts", "list"], env=env)

    assert pushed.exit_code == 0, pushed.output
    for name in ("answer-v1", "answer-v2", "faithfulness-v1"):
        assert f"registered prompts:/{name}/1 <- @production" in pushed.output
        assert f"unchanged  prompts:/{name}/1" in repeated.output
    assert "answer-v2" in listed.output and "production" in listed.output


@pytest.fixture
def rag_app(tmp_path: Path, local_client: LocalClient) -> Iterator[tuple[RagSettings, Path]]:
    root = tmp_path / "docs"
    root.mkdir()
    yield (
        RagSettings(
            _env_file=None,  # type: ignore[call-arg]
            environment="test",
            data_dir=tmp_path / "data",
            docs_root=root,
            prompt="prompts:/answer-v2@production",
        ),
        root,
    )


def test_the_rag_service_answers_with_the_version_an_alias_names_and_traces_it(
    rag_app: tuple[RagSettings, Path], local_client: LocalClient
) -> None:
    settings, root = rag_app
    prompt_registry.push(settings, "answer-v2", ANSWER_V2, source="test", alias="production")
    store = indexed_docs(root, local_client.embedder)
    model = ScriptedModel.repeating("Background tasks run after the response is sent [1].")
    app = create_app(
        settings, llm=model, store=store, embedder=local_client.embedder, keys=rag_keys()
    )

    with TestClient(app, headers=ADMIN) as client:
        spans = memory_exporter()
        answer = client.post("/ask", json={"question": "When do background tasks run?", "k": 1})

    assert answer.status_code == 200 and answer.json()["citations"]
    attributes = named(spans.get_finished_spans(), "rag ask").attributes or {}
    assert attributes["kit.prompt.uri"] == "prompts:/answer-v2/1"
    assert attributes["kit.prompt.version"] == 1
    assert attributes["gen_ai.prompt.name"] == "answer-v2"


def test_the_rag_service_will_not_start_on_a_version_that_is_not_there(
    rag_app: tuple[RagSettings, Path], local_client: LocalClient
) -> None:
    settings, _ = rag_app
    model = ScriptedModel.repeating("unused")
    with pytest.raises(KitError, match="kit prompts push"):
        create_app(settings, llm=model, embedder=local_client.embedder, keys=rag_keys())
