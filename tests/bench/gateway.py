"""Benchmark: the gateway against a direct call and against the LiteLLM proxy, side by side.

    make bench-gateway            # or: python -m tests.bench.gateway --duration 15

On 127.0.0.1, against the fake OpenAI upstream answering after a fixed latency, with `wrk`:
1. added latency: p50/p99 at one connection, minus the upstream's own (a direct call);
2. throughput: requests per second at 32 connections, with errors counted;
3. cache hits: the gateway answering a repeated deterministic request from its cache;
4. tracing: the gateway as shipped (every request traced into MLflow) against the same gateway
   with OTEL_SDK_DISABLED=true;
5. the local model: load time, time to first token and tokens per second, per engine.

All three servers run one worker process; they are measured one after another in the same run,
so the ratios compare like with like on a shared machine. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

from tests.support.fake_openai import gateway_models

REPO = Path(__file__).resolve().parents[2]
PROXY_VENV = REPO / ".bench" / "litellm-proxy"
BODY = {"model": "bench", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 16}


@dataclass
class Run:
    p50_ms: float
    p99_ms: float
    rps: float
    errors: int


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def process(
    command: list[str],
    ready_url: str,
    log: Path,
    env: dict[str, str] | None = None,
    timeout: float = 180,
) -> Iterator[None]:
    with log.open("w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(ready_url, timeout=1).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{command[0]} did not start; see {log}")
            time.sleep(0.2)
        yield
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=15)
        if proc.poll() is None:
            proc.kill()


def wrk(
    url: str,
    body: dict[str, object],
    key: str | None,
    connections: int,
    seconds: int,
    workdir: Path,
) -> Run:
    """One wrk run of POST requests; latency percentiles and requests per second."""
    headers = {"Content-Type": "application/json"} | (
        {"Authorization": f"Bearer {key}"} if key else {}
    )
    script = workdir / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(json.dumps(body))}\n"
        + "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in headers.items())
    )
    threads = min(2, connections)
    output = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    def duration_ms(label: str) -> float:
        value, unit = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", output, re.M).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    failed = int(errors.group(1)) if errors else 0
    if socket_errors:
        failed += sum(int(n) for n in socket_errors.groups())
    return Run(duration_ms("50%"), duration_ms("99%"), rps, failed)


def local_engines(engines: list[str]) -> list[str]:
    """Load each engine and generate: load time, time to first token, tokens per second."""
    from kit.core.settings import KitSettings
    from kit.llm.local_models import load_chat_model

    lines = []
    prompt = [{"role": "user", "content": "Write a short story about a lighthouse keeper."}]
    for engine in engines:
        settings = KitSettings(chat_engine=engine)  # type: ignore[call-arg]
        model = load_chat_model(settings)
        model.complete(prompt, max_tokens=8, temperature=0.0)  # warm caches
        rates, first_tokens = [], []
        for _ in range(3):
            started = time.perf_counter()
            first = None
            for delta in model.stream(prompt, max_tokens=128, temperature=0.0):
                if first is None and delta.text:
                    first = time.perf_counter() - started
                if delta.usage is not None:
                    tokens = delta.usage.completion_tokens
            elapsed = time.perf_counter() - started
            rates.append(tokens / elapsed)
            first_tokens.append(first or elapsed)
        rates.sort()
        first_tokens.sort()
        lines.append(
            f"  {engine:<13} load {model.load_seconds:5.2f} s   first token "
            f"{first_tokens[1] * 1000:6.0f} ms   {rates[1]:6.1f} tokens/s (median of 3, 128 tokens)"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--latency-ms", type=float, default=20.0, help="the upstream's latency")
    parser.add_argument("--engines", default="llama_cpp,transformers")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk (or brew install wrk)")
    proxy_bin = PROXY_VENV / "bin" / "litellm"

    work = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    upstream_port, gateway_port, proxy_port = free_port(), free_port(), free_port()
    upstream = f"http://127.0.0.1:{upstream_port}/v1"
    key = "sk-kit-bench-" + "x" * 32
    (work / "models.yaml").write_text(yaml.safe_dump(gateway_models(upstream)))
    from kit.gateway.auth import hash_key

    (work / "keys.yaml").write_text(
        yaml.safe_dump({"keys": [{"id": "bench", "sha256": hash_key(key)}]})
    )
    env = os.environ | {
        "GATEWAY_MODELS_FILE": str(work / "models.yaml"),
        "GATEWAY_KEYS_FILE": str(work / "keys.yaml"),
        "KIT_DATA_DIR": str(work / "data"),
        "KIT_ENV": "production",
        "KIT_LOG_FORMAT": "json",
    }
    results: dict[str, dict[str, Run]] = {}
    server_ms: dict[str, tuple[float, float]] = {}
    print(
        f"upstream latency {args.latency_ms:.0f} ms, {args.duration} s per run, "
        f"{args.connections} connections for throughput, wrk on 127.0.0.1\n"
    )
    with process(
        [
            sys.executable,
            "-m",
            "tests.support.fake_openai",
            "--port",
            str(upstream_port),
            "--latency-ms",
            str(args.latency_ms),
        ],
        f"{upstream}/models",
        work / "upstream.log",
    ):
        targets = [("direct", f"{upstream}/chat/completions", None, None)]
        targets.append(
            (
                "gateway",
                f"http://127.0.0.1:{gateway_port}/v1/chat/completions",
                key,
                (
                    [
                        str(Path(sys.executable).with_name("kit")),
                        "serve",
                        "gateway",
                        "--port",
                        str(gateway_port),
                    ],
                    f"http://127.0.0.1:{gateway_port}/readyz",
                    env,
                ),
            )
        )
        # Tracing's cost: the row above traces every request (sampling 1.0) into MLflow's local
        # store; "gateway-spans" makes the same spans and stores none (what the process pays
        # with a collector, minus the export); "gateway-untraced" has no SDK and no
        # instrumentation at all, the anchor.
        for name, extra in (
            ("gateway-spans", {"KIT_TRACE_EXPORTER": "none"}),
            ("gateway-untraced", {"OTEL_SDK_DISABLED": "true"}),
        ):
            variant_port = free_port()
            targets.append(
                (
                    name,
                    f"http://127.0.0.1:{variant_port}/v1/chat/completions",
                    key,
                    (
                        [
                            str(Path(sys.executable).with_name("kit")),
                            "serve",
                            "gateway",
                            "--port",
                            str(variant_port),
                        ],
                        f"http://127.0.0.1:{variant_port}/readyz",
                        env | extra,
                    ),
                )
            )
        if proxy_bin.exists():
            config = {
                "model_list": [
                    {
                        "model_name": "bench",
                        "litellm_params": {
                            "model": "openai/fake-model",
                            "api_base": upstream,
                            "api_key": "unused",
                        },
                    }
                ],
                "litellm_settings": {"num_retries": 0, "telemetry": False},
            }
            (work / "proxy.yaml").write_text(yaml.safe_dump(config))
            proxy_env = os.environ | {
                "LITELLM_MASTER_KEY": key,
                "LITELLM_OFFLINE_MODE": "true",
                "LITELLM_LOCAL_MODEL_COST_MAP": "true",
            }
            targets.append(
                (
                    "litellm-proxy",
                    f"http://127.0.0.1:{proxy_port}/v1/chat/completions",
                    key,
                    (
                        [
                            str(proxy_bin),
                            "--config",
                            str(work / "proxy.yaml"),
                            "--port",
                            str(proxy_port),
                            "--num_workers",
                            "1",
                        ],
                        f"http://127.0.0.1:{proxy_port}/health/liveliness",
                        proxy_env,
                    ),
                )
            )
        else:
            print(
                f"(LiteLLM proxy not installed at {PROXY_VENV}: `make bench-gateway` installs it)\n"
            )
        for name, url, target_key, server in targets:
            starter = (
                process(server[0], server[1], work / f"{name}.log", server[2])
                if server
                else contextlib.nullcontext()
            )
            with starter:
                wrk(
                    url, BODY, target_key, 1, 2, work
                )  # warm-up: connections, caches, JIT-free paths
                results[name] = {
                    "latency": wrk(url, BODY, target_key, 1, args.duration, work),
                    "load": wrk(url, BODY, target_key, args.connections, args.duration, work),
                }
                if name == "gateway":
                    cached = BODY | {"temperature": 0}
                    results[name]["cached"] = wrk(url, cached, target_key, 1, args.duration, work)
                    server_ms[name] = _server_timing(url, cached, target_key)

    direct = results["direct"]["latency"]
    throughput = f"req/s @{args.connections}"
    print(f"{'':15}{'p50 ms':>8}{'p99 ms':>8}{'added p50':>11}{'added p99':>11}", end="")
    print(f"{throughput:>12}{'errors':>8}")
    for name, runs in results.items():
        lat, load = runs["latency"], runs["load"]
        print(
            f"{name:15}{lat.p50_ms:8.2f}{lat.p99_ms:8.2f}{lat.p50_ms - direct.p50_ms:11.2f}"
            f"{lat.p99_ms - direct.p99_ms:11.2f}{load.rps:12.0f}{lat.errors + load.errors:8d}"
        )
    gateway = results["gateway"]
    cached: Run = gateway["cached"]  # type: ignore[assignment]
    hit_p50, hit_p99 = server_ms["gateway"]
    print(
        f"\ngateway cache hit: p50 {cached.p50_ms:.2f} ms end to end at 1 connection; "
        f"server-side (Server-Timing) p50 {hit_p50:.3f} ms, p99 {hit_p99:.3f} ms (target <= 1 ms)"
    )
    untraced = results["gateway-untraced"]
    print("\ntracing, every request sampled, against the same gateway without it (same run):")
    print(f"{'':26}{'p50 ratio':>10}{'p99 ratio':>10}{'req/s ratio':>12}")
    for name, label in (
        ("gateway", "spans stored in MLflow"),
        ("gateway-spans", "spans made, not stored"),
    ):
        runs = results[name]
        print(
            f"  {label:24}{runs['latency'].p50_ms / untraced['latency'].p50_ms:10.2f}"
            f"{runs['latency'].p99_ms / untraced['latency'].p99_ms:10.2f}"
            f"{runs['load'].rps / untraced['load'].rps:12.2f}"
        )
    print("  (target: p50 ratio <= 1.10)")
    if "litellm-proxy" in results:
        proxy = results["litellm-proxy"]
        added_gateway = gateway["latency"].p50_ms - direct.p50_ms
        added_proxy = proxy["latency"].p50_ms - direct.p50_ms
        print("\nratios, gateway / LiteLLM proxy (same machine, same run):")
        print(f"  added p50 latency  {added_gateway / added_proxy:5.2f}  (target <= 0.50)")
        print(
            f"  requests/s         {gateway['load'].rps / proxy['load'].rps:5.2f}  (target >= 2.00)"
        )
    print("\nlocal chat model, SmolLM2-135M-Instruct, 2 threads:")
    print("\n".join(local_engines([e for e in args.engines.split(",") if e])))
    print(f"\nlogs: {work}")


def _server_timing(url: str, body: dict[str, object], key: str | None) -> tuple[float, float]:
    """p50 and p99 of the gateway's own Server-Timing header over 500 sequential requests."""
    headers = {"authorization": f"Bearer {key}"} if key else {}
    durations = []
    with httpx.Client(headers=headers) as client:
        for _ in range(500):
            timing = client.post(url, json=body).headers["server-timing"]
            durations.append(float(timing.split("dur=")[1]))
    durations.sort()
    return durations[len(durations) // 2], durations[int(len(durations) * 0.99)]


if __name__ == "__main__":
    main()
