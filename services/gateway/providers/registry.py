"""A model from the MLflow registry as a chat deployment: the user's text in, its label out.

    deployments:
      intent-router-champion: {provider: mlflow, model: "models:/intent-router@champion"}
    models:
      intent-router: [intent-router-champion]

`POST /v1/chat/completions {"model": "intent-router", "messages": [{"role": "user",
"content": "my card has not arrived"}]}` answers `card_arrival`. The deployment follows the
alias: every `refresh_s` seconds (at most) it asks the registry which version `champion` points
at and loads the new one when the gate has promoted a model, so promotion is deployment and
moving the alias back is a rollback, with no gateway restart. Loading and prediction run in a
worker thread; the tracking store is the kit's (sqlite under KIT_DATA_DIR, or
MLFLOW_TRACKING_URI).
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from pipelines.tracking import point_mlflow_at
from services.common.logging import get_logger
from services.gateway.config import ResolvedDeployment
from services.gateway.providers.base import ChatAnswer, ChatCall, EmbedAnswer, ProviderError

log = get_logger("gateway")
_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


class RegistryProvider:
    def __init__(
        self, deployment: ResolvedDeployment, tracking_uri: str, refresh_s: float = 30.0
    ) -> None:
        match = _URI.match(deployment.spec.model)
        if match is None:  # the models file validator checks this too; keep the message clear
            raise ValueError(f"{deployment.spec.model!r} is not models:/NAME@ALIAS or /VERSION")
        self.uri = deployment.spec.model
        self.name, self.alias = match["name"], match["alias"]
        self.pinned_version = match["version"]
        self.tracking_uri = tracking_uri
        self.refresh_s = refresh_s
        self._loaded: tuple[str, Any] | None = None  # (version, pyfunc model)
        self._checked = 0.0
        self._lock = threading.Lock()  # one load at a time; predictions share the model

    def _model(self) -> tuple[str, Any]:
        """The model the URI points at now: reloaded when the alias has moved."""
        with self._lock:
            now = time.monotonic()
            if self._loaded is not None and now - self._checked < self.refresh_s:
                return self._loaded
            import mlflow
            from mlflow import MlflowClient
            from mlflow.exceptions import MlflowException

            point_mlflow_at(self.tracking_uri)
            try:
                version = self.pinned_version or str(
                    MlflowClient(self.tracking_uri)
                    .get_model_version_by_alias(self.name, self.alias)
                    .version
                )
                if self._loaded is None or self._loaded[0] != version:
                    started = time.perf_counter()
                    model = mlflow.pyfunc.load_model(f"models:/{self.name}/{version}")
                    self._loaded = (version, model)
                    log.info(
                        "registry_model_loaded",
                        uri=self.uri,
                        version=version,
                        seconds=round(time.perf_counter() - started, 2),
                    )
            except MlflowException as exc:
                if self._loaded is not None:  # the registry is down: keep serving what we have
                    log.warning("registry_unreachable", uri=self.uri, error=str(exc)[:200])
                    return self._loaded
                raise ProviderError(
                    "server_error",
                    f"{self.uri} is not in the model registry at {self.tracking_uri} ({exc}). "
                    "Train and register one: kit finetune --config "
                    "pipelines/finetune/configs/default.yaml",
                    status=503,
                ) from None
            self._checked = now
            return self._loaded

    def _predict(self, text: str) -> tuple[str, str]:
        version, model = self._model()
        return version, str(model.predict([text])[0])

    async def _answer(self, call: ChatCall, timeout: float) -> tuple[str, str, int]:
        text = _last_user_text(call)
        try:
            version, label = await asyncio.wait_for(asyncio.to_thread(self._predict, text), timeout)
        except TimeoutError:
            raise ProviderError("timeout", f"{self.uri} took over {timeout}s") from None
        return version, label, len(text.split())

    def _envelope(self, kind: str, version: str) -> dict[str, Any]:
        """The fields every OpenAI chat object carries; `model` names the version that answered."""
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": kind,
            "created": int(time.time()),
            "model": f"{self.name}/{version}",
        }

    async def chat(self, call: ChatCall, timeout: float) -> ChatAnswer:
        version, label, words = await self._answer(call, timeout)
        body = self._envelope("chat.completion", version) | {
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": label},
                    "finish_reason": "stop",
                }
            ],
            "usage": _usage(words),
        }
        return ChatAnswer(body, words, 1)

    async def stream(self, call: ChatCall, timeout: float) -> AsyncIterator[dict[str, Any]]:
        version, label, words = await self._answer(call, timeout)
        base = self._envelope("chat.completion.chunk", version)
        yield base | {"choices": [{"index": 0, "delta": {"role": "assistant", "content": label}}]}
        yield base | {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        yield base | {"choices": [], "usage": _usage(words)}

    async def embed(self, texts: list[str], timeout: float) -> EmbedAnswer:
        raise ProviderError(
            "bad_request", f"{self.uri} is a classifier, not an embedder", status=400
        )

    async def aclose(self) -> None:
        """Nothing to close: the model is in-process memory."""


def _usage(words: int) -> dict[str, int]:
    """Words in, one label out: token counts a classifier can honestly report."""
    return {"prompt_tokens": words, "completion_tokens": 1, "total_tokens": words + 1}


def _last_user_text(call: ChatCall) -> str:
    for message in reversed(call.messages):
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            text: str = message["content"].strip()
            if text:
                return text
    raise ProviderError(
        "bad_request", "send the text to classify as a user message with text content", status=400
    )
