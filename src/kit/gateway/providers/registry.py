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

A version is loaded by src/kit/finetune/trusted.py, never by `mlflow.pyfunc.load_model`:
only a model `kit finetune` packaged, unchanged since (its files match the manifest whose
sha256 its run recorded), built by the kit's own classes. A refused version is logged
(`registry_model_refused`, with the reason) and not tried again by this process; the version
already loaded keeps answering, and with none loaded requests get a 503 that says why.

Why loading in the gateway's own process, next to its provider keys, is acceptable: nothing the
registry holds is executed. MLmodel is read with `yaml.safe_load`, the manifest and configs as
JSON, tensors from safetensors (a JSON header and raw bytes, parsed by Rust code), tokenizers by
the `tokenizers` library; transformers and peft are called with `trust_remote_code=False` and
safetensors only, so they instantiate their own classes and unpickle nothing. The models-from-code
script stored with a version is compared with the kit's, never run. What remains is a bug in
those parsers, not a designed-in way to run code; a loader process without the keys would add
an interprocess hop to every prediction to guard against that.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from kit.core.logging import get_logger
from kit.finetune.manifest import UntrustedModelError
from kit.finetune.trusted import ModelRef, load_version, resolve_version
from kit.gateway.config import ResolvedDeployment
from kit.gateway.providers.base import ChatAnswer, ChatCall, EmbedAnswer, ProviderError

if TYPE_CHECKING:
    from kit.finetune.evaluate import IntentModel

log = get_logger("gateway")


class RegistryProvider:
    def __init__(
        self, deployment: ResolvedDeployment, tracking_uri: str, refresh_s: float = 30.0
    ) -> None:
        # The models file validator checks the URI too; ModelRef.parse keeps the message clear.
        self.ref = ModelRef.parse(deployment.spec.model)
        self.uri = deployment.spec.model
        self.name = self.ref.name
        self.tracking_uri = tracking_uri
        self.refresh_s = refresh_s
        self._loaded: tuple[str, IntentModel] | None = None  # (version, model)
        self._refused: dict[str, str] = {}  # version -> why; a refusal is final for a version
        self._why: str | None = None  # why the alias's version is not the one answering
        self._checked = 0.0  # when the alias was last looked up (0: never)
        self._lock = threading.Lock()  # one load at a time; predictions share the model

    def _model(self) -> tuple[str, IntentModel]:
        """The model the URI points at now: reloaded when the alias has moved to a version the
        kit can verify; otherwise the one already loaded, or a 503 that says why."""
        with self._lock:
            now = time.monotonic()
            if self._checked and now - self._checked < self.refresh_s:
                return self._serving()
            from mlflow.exceptions import MlflowException

            try:
                version = resolve_version(self.ref, self.tracking_uri)
            except MlflowException as exc:
                if self._loaded is not None:  # the registry is down: keep serving what we have
                    log.warning("registry_unreachable", uri=self.uri, error=str(exc)[:200])
                    return self._loaded
                # The registry's address and MLflow's message (a server URL, a sqlite path) go to
                # the log; the caller learns what is missing and how to fix it.
                log.warning(
                    "registry_model_missing",
                    uri=self.uri,
                    tracking_uri=self.tracking_uri,
                    error=str(exc)[:300],
                )
                raise ProviderError(
                    "server_error",
                    f"{self.uri} is not in the model registry (the gateway's log says more: "
                    "registry_model_missing). Train and register one: kit finetune --config "
                    "pipelines/finetune/configs/default.yaml",
                    status=503,
                ) from None
            self._checked = now
            current = None if self._loaded is None else self._loaded[0]
            if version == current:  # e.g. the alias moved back after a refused version
                self._why = None
            elif version in self._refused:  # refused once: not downloaded and checked again
                self._why = self._refused[version]
            else:
                self._load(version)
            return self._serving()

    def _serving(self) -> tuple[str, IntentModel]:
        if self._loaded is None:
            raise ProviderError("server_error", self._why or f"{self.uri}: no model", status=503)
        return self._loaded

    def _load(self, version: str) -> None:
        """Load `version` in place of the current model. A refusal is final for that version; any
        other failure (the artifact store unreachable, a full disk) is tried again after
        `refresh_s`. Either way the model already loaded, if any, keeps answering."""
        serving = None if self._loaded is None else self._loaded[0]
        started = time.perf_counter()
        try:
            model = load_version(self.name, version, self.tracking_uri)
        except UntrustedModelError as exc:
            self._refused[version] = self._why = str(exc)
            log.error(
                "registry_model_refused",
                uri=self.uri,
                version=version,
                reason=str(exc),
                serving=serving,
            )
            return
        except Exception:
            self._why = f"{self.name} v{version} failed to load (see registry_model_load_failed)"
            log.exception("registry_model_load_failed", uri=self.uri, version=version)
            return
        self._loaded, self._why = (version, model), None
        log.info(
            "registry_model_loaded",
            uri=self.uri,
            version=version,
            replaced=serving,
            seconds=round(time.perf_counter() - started, 2),
        )

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
