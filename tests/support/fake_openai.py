"""A fake OpenAI-compatible upstream, served for real on 127.0.0.1, for tests of the gateway.

Tests script how it answers the next requests (ok, error, hang, malformed, slow_stream) and read
back every request it received. It speaks just enough of the API for real clients: chat
completions (plain and streamed), embeddings and the model list. It does not validate requests,
tokenize or imitate a model: token counts are word counts and embeddings are hashes.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import itertools
import math
import os
import re
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

DEFAULT_TEXT = "Hello from the fake upstream."
MODEL_ID = "fake-model"
# Each piece is one word with the spaces around it, so the streamed pieces join back to the text.
_WORDS = re.compile(r"\s*\S+\s*")
_MALFORMED = b'{"id": "cmpl-1", "choices": ['
_MODELS = orjson.dumps(
    {
        "object": "list",
        "data": [{"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "fake"}],
    }
)
_LATENCY_ENV = "FAKE_OPENAI_LATENCY_MS"


@dataclass(frozen=True, slots=True)
class Behaviour:
    """How to answer one request: build it with ok(), error(), hang(), malformed() and so on."""

    kind: Literal["ok", "error", "hang", "malformed", "slow_stream"] = "ok"
    text: str = DEFAULT_TEXT
    delay: float = 0.0  # seconds before answering (ok, hang)
    interval: float = 0.0  # seconds before each streamed word (slow_stream)
    status: int = 200
    message: str = ""
    error_type: str = "server_error"
    retry_after: float | None = None
    prompt_tokens: int = 12
    completion_tokens: int | None = None  # None: the number of words in `text`


def ok(
    text: str = DEFAULT_TEXT,
    *,
    delay: float = 0.0,
    prompt_tokens: int = 12,
    completion_tokens: int | None = None,
) -> Behaviour:
    """A normal completion (or embeddings), after `delay` seconds."""
    return Behaviour(
        "ok", text, delay, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
    )


def error(
    status: int,
    message: str = "The fake upstream was scripted to fail.",
    *,
    retry_after: float | None = None,
    error_type: str = "server_error",
) -> Behaviour:
    """An OpenAI-style error body with `status`, and a Retry-After header when given."""
    return Behaviour(
        "error", status=status, message=message, retry_after=retry_after, error_type=error_type
    )


def hang(seconds: float = 30.0) -> Behaviour:
    """Answer 200 only after `seconds`, or earlier if the client hangs up or the server stops."""
    return Behaviour("hang", delay=seconds)


def malformed() -> Behaviour:
    """Status 200, content type application/json, and a body that is not JSON."""
    return Behaviour("malformed")


def slow_stream(text: str = DEFAULT_TEXT, *, interval: float = 0.05) -> Behaviour:
    """Stream one word every `interval` seconds; a non-streaming request waits for them all."""
    return Behaviour("slow_stream", text, interval=interval)


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    path: str
    headers: dict[str, str]  # lower-case names
    body: dict[str, Any] | None  # None: no body, or not a JSON object
    time: float  # time.monotonic() when it arrived


class FakeUpstream:
    """The script and the record of one fake upstream; `app` is the ASGI app serving them.

    `running_fake_upstream()` serves it and sets `base_url`. The script applies to chat
    completions and embeddings, not to /models; a request refused for its API key does not use
    up a scripted behaviour. Every path also answers without its `/v1` prefix.
    """

    def __init__(self, *, api_key: str | None = None, record: bool = True) -> None:
        self.api_key = api_key
        self.record = record  # off for benchmarks, where the record would grow without bound
        self.default: Behaviour = ok()
        self.requests: list[RecordedRequest] = []
        self.base_url = ""
        self._script: deque[Behaviour] = deque()
        self._hangs: set[asyncio.Future[None]] = set()
        self._lock = threading.Lock()  # tests script and read in one thread, the server in another
        self._ids = itertools.count(1)
        self.app = Starlette(
            routes=[
                route
                for prefix in ("/v1", "")
                for route in (
                    Route(f"{prefix}/chat/completions", self._chat, methods=["POST"]),
                    Route(f"{prefix}/embeddings", self._embeddings, methods=["POST"]),
                    Route(f"{prefix}/models", self._models, methods=["GET"]),
                )
            ]
        )

    def script(self, *behaviours: Behaviour) -> None:
        """Answer the next requests with these, in order, each once; then with `default`."""
        with self._lock:
            self._script.extend(behaviours)

    def calls(self, path: str = "/v1/chat/completions") -> int:
        """How many requests arrived for `path`, counted with or without its /v1 prefix."""
        wanted = path.removeprefix("/v1")
        with self._lock:
            return sum(1 for r in self.requests if r.path.removeprefix("/v1") == wanted)

    def reset(self) -> None:
        with self._lock:
            self._script.clear()
            self.requests.clear()
            self.default = ok()

    def release_hangs(self) -> None:
        """Let every hanging request answer now; called when the server stops."""
        with self._lock:
            hangs = list(self._hangs)
        for future in hangs:
            future.get_loop().call_soon_threadsafe(_resolve, future)

    async def _chat(self, request: Request) -> Response:
        body, behaviour, early = await self._begin(request)
        if early is not None:
            return early
        model = body.get("model", MODEL_ID)
        pieces = _WORDS.findall(behaviour.text)
        if body.get("stream") is not True:
            if behaviour.kind == "slow_stream":
                await asyncio.sleep(behaviour.interval * len(pieces))
            return _json(self._completion(behaviour, model))
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        head, words, tail = self._chunks(behaviour, model, pieces, include_usage)
        if behaviour.kind != "slow_stream":
            # One write for the whole stream: SSE parsers do not care, and it is the fast path.
            return Response(head + b"".join(words) + tail, media_type="text/event-stream")

        async def paced() -> AsyncIterator[bytes]:
            yield head
            for word in words:
                await asyncio.sleep(behaviour.interval)
                yield word
            yield tail

        return StreamingResponse(paced(), media_type="text/event-stream")

    async def _embeddings(self, request: Request) -> Response:
        body, _, early = await self._begin(request)
        if early is not None:
            return early
        given = body.get("input")
        texts = [given] if isinstance(given, str) else given
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            return _error(
                400, "input must be a string or a list of strings", "invalid_request_error"
            )
        # The openai SDK asks for base64 unless told otherwise: little-endian float32s.
        as_base64 = body.get("encoding_format") == "base64"
        data = [
            {"object": "embedding", "index": i, "embedding": _embed(text, as_base64)}
            for i, text in enumerate(texts)
        ]
        words = sum(len(text.split()) for text in texts)
        usage = {"prompt_tokens": words, "total_tokens": words}
        model = body.get("model", MODEL_ID)
        return _json({"object": "list", "data": data, "model": model, "usage": usage})

    async def _models(self, request: Request) -> Response:
        await self._receive(request)
        return self._refusal(request) or Response(_MODELS, media_type="application/json")

    async def _begin(self, request: Request) -> tuple[dict[str, Any], Behaviour, Response | None]:
        """Record the request, pick its behaviour, and answer it here unless it is a success."""
        body = await self._receive(request)
        refusal = self._refusal(request)
        if refusal is not None:
            return body, self.default, refusal
        with self._lock:
            behaviour = self._script.popleft() if self._script else self.default
        if behaviour.kind == "error":
            response = _error(
                behaviour.status, behaviour.message, behaviour.error_type, behaviour.retry_after
            )
            return body, behaviour, response
        if behaviour.kind == "malformed":
            return body, behaviour, Response(_MALFORMED, media_type="application/json")
        if behaviour.kind == "hang":
            await self._hang(request, behaviour.delay)
        elif behaviour.delay:
            await asyncio.sleep(behaviour.delay)
        return body, behaviour, None

    async def _receive(self, request: Request) -> dict[str, Any]:
        raw = await request.body()
        try:
            parsed = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            parsed = None
        body = parsed if isinstance(parsed, dict) else None
        if self.record:
            path: str = request.scope["path"]
            recorded = RecordedRequest(path, dict(request.headers), body, time.monotonic())
            with self._lock:
                self.requests.append(recorded)
        return body or {}

    def _refusal(self, request: Request) -> Response | None:
        if self.api_key is None or request.headers.get("authorization") == f"Bearer {self.api_key}":
            return None
        message = "Incorrect API key provided."
        return _error(401, message, "invalid_request_error", code="invalid_api_key")

    async def _hang(self, request: Request, seconds: float) -> None:
        """Wait `seconds`, unless the client hangs up or the server stops first.

        Without the early exits a hung request would hold the server's shutdown until uvicorn
        cancels it, which uvicorn reports as an application error.
        """
        released: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        hung_up = asyncio.ensure_future(_wait_for_disconnect(request))
        with self._lock:
            self._hangs.add(released)
        try:
            await asyncio.wait(
                {released, hung_up}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            hung_up.cancel()
            with self._lock:
                self._hangs.discard(released)

    def _completion(self, behaviour: Behaviour, model: str) -> dict[str, Any]:
        message = {"role": "assistant", "content": behaviour.text}
        return {
            "id": f"chatcmpl-fake-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": _usage(behaviour),
        }

    def _chunks(
        self, behaviour: Behaviour, model: str, pieces: list[str], include_usage: bool
    ) -> tuple[bytes, list[bytes], bytes]:
        """The SSE events of a stream: the role chunk, one chunk per word, and the ending."""
        base: dict[str, Any] = {
            "id": f"chatcmpl-fake-{next(self._ids)}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": None,
        }
        if include_usage:
            base["usage"] = None  # as OpenAI does: null on every chunk but the last

        def event(delta: dict[str, str], finish: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return b"data: " + orjson.dumps({**base, "choices": [choice]}) + b"\n\n"

        tail = event({}, "stop")
        if include_usage:
            usage = {**base, "choices": [], "usage": _usage(behaviour)}
            tail += b"data: " + orjson.dumps(usage) + b"\n\n"
        head = event({"role": "assistant", "content": ""})
        return head, [event({"content": piece}) for piece in pieces], tail + b"data: [DONE]\n\n"


def _usage(behaviour: Behaviour) -> dict[str, int]:
    prompt, completion = behaviour.prompt_tokens, behaviour.completion_tokens
    completion = len(behaviour.text.split()) if completion is None else completion
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _embed(text: str, as_base64: bool) -> list[float] | str:
    """A unit vector of 8 numbers from the text's SHA-256 (32 bytes = 8 x uint32)."""
    raw = [n / 2**31 - 1.0 for n in struct.unpack("<8I", hashlib.sha256(text.encode()).digest())]
    norm = math.sqrt(sum(x * x for x in raw))
    vector = [x / norm for x in raw]
    return base64.b64encode(struct.pack("<8f", *vector)).decode() if as_base64 else vector


def _json(content: dict[str, Any]) -> Response:
    return Response(orjson.dumps(content), media_type="application/json")


def _error(
    status: int, message: str, kind: str, retry_after: float | None = None, code: str | None = None
) -> Response:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    headers = None if retry_after is None else {"retry-after": f"{retry_after:g}"}
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


async def _wait_for_disconnect(request: Request) -> None:
    # Once the body has been read, the next ASGI message is the client hanging up.
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


@contextmanager
def running_fake_upstream(
    upstream: FakeUpstream | None = None, *, api_key: str | None = None
) -> Iterator[FakeUpstream]:
    """Serve `upstream` (or a new one) on a free 127.0.0.1 port in a background thread.

    Yields it with `base_url` set to `http://127.0.0.1:PORT/v1`; stops the server on exit.
    """
    if upstream is None:
        upstream = FakeUpstream(api_key=api_key)
    elif api_key is not None:
        raise ValueError("give api_key to FakeUpstream(), not to running_fake_upstream()")
    # Binding here rather than in uvicorn: the port is ours before the server starts, so two
    # tests cannot race for the same "free" port.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        upstream.app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=1,  # a backstop: release_hangs() ends hung requests first
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10.0
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fake upstream did not start; see the log above")
            time.sleep(0.01)
        upstream.base_url = f"http://127.0.0.1:{port}/v1"
        yield upstream
    finally:
        server.should_exit = True
        upstream.release_hangs()
        thread.join(timeout=5.0)
        if thread.is_alive():
            server.force_exit = True
            thread.join(timeout=5.0)
        sock.close()


def benchmark_app() -> Starlette:
    """The app the command line serves: every request answers ok() after the fixed latency."""
    upstream = FakeUpstream(record=False)
    upstream.default = ok(delay=float(os.environ.get(_LATENCY_ENV, "0")) / 1000)
    return upstream.app


def gateway_models(upstream: str) -> dict[str, object]:
    """A models file for `kit serve gateway` in front of the served fake (`make bench-gateway`,
    `make load`): chat alias `bench` and embedding alias `bench-embed`, both answered by it."""
    price = {"input_per_mtok": 0.15, "output_per_mtok": 0.6}  # keeps the cost path exercised
    return {
        "default_model": "bench",
        # No retries: a failed upstream call must show up as a failed request, not be hidden.
        "routing": {"retries": {"rate_limit": 0, "server_error": 0, "timeout": 0, "connection": 0}},
        "deployments": {
            "fake": {
                "provider": "openai",
                "model": "fake-model",
                "api_base": upstream,
                "price": price,
            },
            "fake-embed": {
                "provider": "openai",
                "model": "fake-embed",
                "task": "embedding",
                "api_base": upstream,
                "price": price,
            },
        },
        "models": {"bench": ["fake"], "bench-embed": ["fake-embed"]},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.fake_openai",
        description="Serve a fake OpenAI upstream that always answers ok(), for benchmarks.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay before each answer")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    # Workers are processes that import the app by name; the environment is what they inherit.
    os.environ[_LATENCY_ENV] = str(args.latency_ms)
    uvicorn.run(
        "tests.support.fake_openai:benchmark_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="warning",
        access_log=False,
        lifespan="off",
    )


if __name__ == "__main__":
    main()
