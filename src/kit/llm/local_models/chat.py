"""The shipped chat model, SmolLM2-135M-Instruct, run in-process on CPU by one of two engines.

- `llama_cpp` (llama-cpp-python): reads the 4-bit GGUF file directly. Loads in ~0.2 s and
  generates ~60 tokens/s on 2 cores (portable AVX2 build). It is compiled at install time.
- `transformers` (PyTorch): dequantizes the GGUF to float32 on first use (~20 s), saves the result
  under the cache directory, and loads that copy in ~1-2 s afterwards; ~20 tokens/s. It needs no
  compiler, and the same checkpoint is the starting point for fine-tuning.

`load_chat_model(settings)` picks the engine (`KIT_CHAT_ENGINE`, `auto` = llama.cpp when it is
installed). Both take OpenAI-style messages and report token usage. Nothing is loaded on import;
a model is loaded when `load_chat_model` is called. Engines know nothing about HTTP or providers.
"""

from __future__ import annotations

import importlib.util
import os
import threading
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from kit.core.errors import ModelUnavailableError
from kit.core.logging import get_logger
from kit.core.ports import ChatMessage, ChatResult, Usage
from kit.core.settings import KitSettings
from kit.llm.local_models.checkpoint import ensure_hf_checkpoint, offline_hub
from kit.llm.local_models.paths import SMOLLM2

log = get_logger(__name__)

EngineName = Literal["llama_cpp", "transformers"]


@dataclass(frozen=True, slots=True)
class ChatDelta:
    """A piece of a streamed answer; the last one carries `finish_reason` and `usage`."""

    text: str
    finish_reason: Literal["stop", "length"] | None = None
    usage: Usage | None = None


class ChatEngine(Protocol):
    engine: EngineName
    model_name: str
    load_seconds: float

    def complete(
        self, messages: Sequence[ChatMessage], *, max_tokens: int, temperature: float
    ) -> ChatResult: ...

    def stream(
        self, messages: Sequence[ChatMessage], *, max_tokens: int, temperature: float
    ) -> Generator[ChatDelta, None, None]: ...


def available_engines() -> list[EngineName]:
    """The engines whose libraries are installed, fastest first."""
    engines: list[EngineName] = []
    if importlib.util.find_spec("llama_cpp") is not None:
        engines.append("llama_cpp")
    if importlib.util.find_spec("transformers") and importlib.util.find_spec("torch"):
        engines.append("transformers")
    return engines


def load_chat_model(settings: KitSettings) -> ChatEngine:
    """Load SmolLM2 with the configured engine. Raises `ModelUnavailableError` with a fix."""
    installed = available_engines()
    wanted = settings.chat_engine
    if wanted == "auto":
        if not installed:
            raise ModelUnavailableError(
                "No engine for the local chat model is installed. Install one: "
                "pip install -e '.[llamacpp]' (fast, compiles llama.cpp) or "
                "pip install -e '.[local]' (PyTorch), or run `make setup`."
            )
        wanted = installed[0]
    elif wanted not in installed:
        extra = "llamacpp" if wanted == "llama_cpp" else "local"
        raise ModelUnavailableError(
            f"KIT_CHAT_ENGINE={wanted} but its library is not installed. "
            f"Install it with: pip install -e '.[{extra}]', or set KIT_CHAT_ENGINE=auto."
        )
    started = time.perf_counter()
    engine: ChatEngine = (
        LlamaCppChat(settings) if wanted == "llama_cpp" else TransformersChat(settings)
    )
    engine.load_seconds = time.perf_counter() - started
    log.info("chat_model_loaded", engine=wanted, seconds=round(engine.load_seconds, 2))
    return engine


def _threads(settings: KitSettings) -> int:
    return settings.chat_threads or os.cpu_count() or 1


class LlamaCppChat:
    """SmolLM2 through llama.cpp; one generation at a time (its context is not thread-safe).

    A chat model is a completion model plus a template: we render the messages with the chat
    template stored in the GGUF file ourselves, so the prompt's token count is known exactly,
    streamed or not, and then ask llama.cpp to continue that text until the end-of-turn token.
    """

    engine: EngineName = "llama_cpp"
    model_name = SMOLLM2.name

    def __init__(self, settings: KitSettings) -> None:
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.load_seconds = 0.0
        self._lock = threading.Lock()
        # Any: we type our side of the boundary; llama.cpp's own types describe every option.
        self._llm: Any = Llama(
            model_path=str(SMOLLM2.path()),
            n_ctx=settings.chat_context_tokens,
            n_threads=_threads(settings),  # llama.cpp's default is half the cores
            verbose=False,  # llama.cpp prints its load report to stderr otherwise
        )
        special = [self._llm.token_bos(), self._llm.token_eos()]
        bos, eos = (self._llm.detokenize([t], special=True).decode() for t in special)
        self._template: Any = Jinja2ChatFormatter(
            template=self._llm.metadata["tokenizer.chat_template"], eos_token=eos, bos_token=bos
        )

    def _render(self, messages: Sequence[ChatMessage]) -> tuple[str, Any, int]:
        rendered = self._template(messages=list(messages))
        # "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n" -> 9 token ids
        prompt_tokens = len(self._llm.tokenize(rendered.prompt.encode(), special=True))
        return rendered.prompt, rendered.stop, prompt_tokens

    def complete(
        self, messages: Sequence[ChatMessage], *, max_tokens: int, temperature: float
    ) -> ChatResult:
        prompt, stop, prompt_tokens = self._render(messages)
        with self._lock:
            response = self._llm.create_completion(
                prompt, max_tokens=max_tokens, temperature=temperature, stop=stop
            )
        choice = response["choices"][0]
        return ChatResult(
            text=choice["text"].strip(),
            model=self.model_name,
            usage=Usage(prompt_tokens, response["usage"]["completion_tokens"]),
            finish_reason="length" if choice["finish_reason"] == "length" else "stop",
        )

    def stream(
        self, messages: Sequence[ChatMessage], *, max_tokens: int, temperature: float
    ) -> Generator[ChatDelta, None, None]:
        prompt, stop, prompt_tokens = self._render(messages)
        completion_tokens = 0
        finish: Literal["stop", "length"] = "stop"
        leading = True  # drop whitespace before the answer, as complete() does
        with self._lock:
            chunks = self._llm.create_completion(
                prompt, max_tokens=max_tokens, temperature=temperature, stop=stop, stream=True
            )
            # One chunk per generated token, then a last one with no text and the finish reason.
            for chunk in chunks:
                choice = chunk["choices"][0]
                if choice["finish_reason"] is not None:
                    finish = "length" if choice["finish_reason"] == "length" else "stop"
                    break
                completion_tokens += 1
                text = choice["text"].lstrip() if leading else choice["text"]
                if text:
                    leading = False
                    yield ChatDelta(text)
        yield ChatDelta("", finish_reason=finish, usage=Usage(prompt_tokens, completion_tokens))


class TransformersChat:
    """SmolLM2 through transformers on CPU, from the float32 checkpoint in the cache directory."""

    engine: EngineName = "transformers"
    model_name = SMOLLM2.name

    def __init__(self, settings: KitSettings) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.load_seconds = 0.0
        self._lock = threading.Lock()
        checkpoint = ensure_hf_checkpoint(settings)
        torch.set_num_threads(_threads(settings))
        with offline_hub():
            self._tokenizer: Any = AutoTokenizer.from_pretrained(checkpoint)
            self._model: Any = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32)
        self._model.train(False)  # inference mode: no dropout (what .eval() does)

    def _generate_kwargs(self, max_tokens: int, temperature: float) -> dict[str, Any]:
        sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {}
        return {
            "max_new_tokens": max_tokens,
            "do_sample": False,
            "pad_token_id": self._tokenizer.eos_token_id,
            **sampling,
        }

    def _encode(self, messages: Sequence[ChatMessage]) -> Any:
        encoded = self._tokenizer.apply_chat_template(
            list(messages), add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        return encoded["input_ids"]

    def complete(
        self, messages: Sequence[ChatMessage], *, max_tokens: int, temperature: float
    ) -> ChatResult:
        import torch

        input_ids = self._encode(messages)  # (1, prompt_tokens)
        with self._lock, torch.inference_mode():
            output = self._model.generate(
                input_ids, **self._generate_kwargs(max_tokens, temperature)
            )  # (1, prompt_tokens + completion_tokens)
        new_tokens = output[0, input_ids.shape[1] :]
        hit_eos = bool(len(new_tokens)) and int(new_tokens[-1]) == self._tokenizer.eos_token_id
        return ChatResult(
            text=self._tokenizer.decode(new_tokens, skip_special_tokens=True).strip(),
            model=self.model_name,
            usage=Usage(int(input_ids.shape[1]), len(new_tokens)),
            finish_reason="stop" if hit_eos or len(new_tokens) < max_tokens else "length",
        )

    def stream(
        self, messages: Sequence[ChatMessage], *, max_tokens: int, temperature: float
    ) -> Generator[ChatDelta, None, None]:
        import torch
        from transformers import TextIteratorStreamer

        input_ids = self._encode(messages)
        streamer = TextIteratorStreamer(self._tokenizer, skip_prompt=True, skip_special_tokens=True)
        kwargs = {**self._generate_kwargs(max_tokens, temperature), "streamer": streamer}
        outputs: list[Any] = []

        def generate() -> None:
            with torch.inference_mode():
                outputs.append(self._model.generate(input_ids, **kwargs))

        # generate() blocks until done, so it runs in a thread while we read the streamer.
        with self._lock:
            worker = threading.Thread(target=generate, name="smollm2-generate", daemon=True)
            worker.start()
            leading = True  # drop whitespace before the answer, as complete() does
            for piece in streamer:
                text = piece.lstrip() if leading else piece
                if text:
                    leading = False
                    yield ChatDelta(text)
            worker.join()
        completion = int(outputs[0].shape[1] - input_ids.shape[1]) if outputs else 0
        yield ChatDelta(
            "",
            finish_reason="length" if completion >= max_tokens else "stop",
            usage=Usage(int(input_ids.shape[1]), completion),
        )
