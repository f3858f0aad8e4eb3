"""The shipped models, loaded for real from their packages with no network, and used."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from kit.core.settings import KitSettings
from kit.llm.local_client import LocalClient
from kit.llm.local_models import load_chat_model, load_embedder
from kit.llm.local_models.checkpoint import ensure_hf_checkpoint

REPO = Path(__file__).resolve().parents[2]
QUESTION = [
    {"role": "system", "content": "Answer with one word."},
    {"role": "user", "content": "What is the capital of France?"},
]


@pytest.fixture(scope="module")
def cached_settings(
    shared_cache_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> KitSettings:
    return KitSettings(
        _env_file=None,
        environment="test",
        cache_dir=shared_cache_dir,
        data_dir=tmp_path_factory.mktemp("data"),
    )


def test_embeddings_are_unit_vectors_that_rank_meaning(settings: KitSettings) -> None:
    embedder = load_embedder(settings)

    vectors = embedder.embed(
        [
            "A cat sat on the mat.",
            "A kitten rests on a rug.",
            "Quarterly tax returns are due in April.",
        ]
    )

    assert vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    similar, unrelated = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    assert similar > 0.5 > unrelated


@pytest.mark.parametrize("engine", ["llama_cpp", "transformers"])
def test_each_engine_answers_a_question(cached_settings: KitSettings, engine: str) -> None:
    model = load_chat_model(cached_settings.model_copy(update={"chat_engine": engine}))

    result = model.complete(QUESTION, max_tokens=16, temperature=0.0)

    assert model.engine == engine
    assert "Paris" in result.text
    assert result.usage.prompt_tokens > 10
    assert 0 < result.usage.completion_tokens <= 16
    assert result.finish_reason == "stop"


@pytest.mark.parametrize("engine", ["llama_cpp", "transformers"])
def test_streaming_yields_the_same_answer_then_usage(
    cached_settings: KitSettings, engine: str
) -> None:
    model = load_chat_model(cached_settings.model_copy(update={"chat_engine": engine}))
    whole = model.complete(QUESTION, max_tokens=24, temperature=0.0)

    deltas = list(model.stream(QUESTION, max_tokens=24, temperature=0.0))

    assert "".join(d.text for d in deltas).strip() == whole.text.strip()
    assert len([d for d in deltas if d.text]) > 1 or whole.usage.completion_tokens <= 2
    final = deltas[-1]
    assert final.usage is not None and final.finish_reason == whole.finish_reason
    assert final.usage.prompt_tokens == whole.usage.prompt_tokens


def test_a_length_limit_is_reported(cached_settings: KitSettings) -> None:
    model = load_chat_model(cached_settings.model_copy(update={"chat_engine": "llama_cpp"}))

    result = model.complete(
        [{"role": "user", "content": "Write a long story about a dragon."}],
        max_tokens=5,
        temperature=0.0,
    )

    assert result.usage.completion_tokens == 5
    assert result.finish_reason == "length"


def test_the_converted_checkpoint_lives_in_the_cache_dir_and_is_reused(
    cached_settings: KitSettings,
) -> None:
    first = ensure_hf_checkpoint(cached_settings)
    made_at = (first / "config.json").stat().st_mtime_ns

    second = ensure_hf_checkpoint(cached_settings)

    assert first == second
    assert first.is_relative_to(cached_settings.cache_dir)
    assert not first.is_relative_to(REPO)
    assert (first / "model.safetensors").stat().st_size > 400_000_000  # float32, 135M params
    assert (second / "config.json").stat().st_mtime_ns == made_at  # not converted again
    assert not list(first.parent.glob("*.partial-*"))


def test_the_local_client_serves_both_ports(settings: KitSettings) -> None:
    """Chat (whole, async and streamed) through `LocalClient`, embeddings through its embedder:
    the `ChatModel` and `Embedder` ports of kit.core.ports."""
    client = LocalClient(settings)

    answer = client.chat(QUESTION, max_tokens=16)
    awaited = asyncio.run(client.achat(QUESTION, max_tokens=16))
    streamed = "".join(client.stream_chat(QUESTION, max_tokens=16))
    [vector] = client.embedder.embed(["hello"])

    assert "Paris" in answer.text and answer.model == "smollm2-135m-instruct"
    assert awaited.text == answer.text  # greedy decoding: the same answer
    assert streamed.strip() == answer.text.strip()
    assert vector.shape == (384,) and client.embedder.name == "all-minilm-l6-v2"
