"""`make load`: the gateway held at a steady rate for minutes, then the RAG service under /ask load.

    make load                                  # = python -m tests.load.run
    python -m tests.load.run --duration 60s --rate 20 --only gateway

Real processes on 127.0.0.1: the fake OpenAI upstream, `kit serve gateway` (keys and state in a
temporary KIT_DATA_DIR) and `kit serve rag` over an index of a slice of the shipped FastAPI docs,
answering through that gateway, so the load measures the kit, not a model. Locust drives them in
its own process (it patches the standard library on import). Prints figures, writes them to
.bench/load-*.json, exits 1 on any failed request or when the gateway's RSS outgrows the bound.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path

import psutil  # a dependency of locust, so present wherever `make load` can run
import yaml

from tests.load import summary
from tests.load.summary import LocustTotals, RssBound, RssSeries
from tests.support.fake_openai import gateway_models
from tests.support.servers import create_gateway_key, create_rag_key, free_port, running

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
DOCS_ROOT = REPO / "data"  # KIT_DOCS_ROOT of the RAG run: document ids are paths below it
DOCS = DOCS_ROOT / "fastapi-docs" / "docs"
RAG_DATA = REPO / ".bench" / "load-rag"
BIN = Path(sys.executable).parent
SAMPLE_EVERY_S = 5.0
# The bound on the gateway's RSS growth over the measured run, after warm-up. What may grow
# legitimately is bounded by settings: the response cache holds the 8 repeated prompts (unique
# prompts are not cached), Prometheus series are per key and model, rate-limit windows per key.
# Allocator fragmentation and objects created on first use take a few MiB more. A leak of 2 KiB
# per request (a dict of headers kept per request) at 50 req/s for 5 minutes is ~29 MiB: 16 MiB
# catches it. Shorter runs catch only larger leaks; RSS growth is reported either way.
MAX_GROWTH_MIB = 16.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    env = os.environ.get
    parser.add_argument("--duration", default=env("LOAD_DURATION", "300s"), help="gateway run")
    parser.add_argument("--rate", type=float, default=float(env("LOAD_RATE", "50")))
    parser.add_argument("--users", type=int, default=10, help="gateway users sharing the rate")
    parser.add_argument("--warmup", default="20s", help="load before the RSS baseline, per run")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="the upstream's latency")
    parser.add_argument("--rag-duration", default=env("LOAD_RAG_DURATION", "60s"))
    parser.add_argument("--rag-users", type=int, default=int(env("LOAD_RAG_USERS", "8")))
    parser.add_argument(
        "--rag-docs",
        type=Path,
        default=DOCS / "tutorial",
        help="the folder indexed for the RAG run (the tutorial: ~40 pages, under a minute)",
    )
    parser.add_argument("--max-growth-mib", type=float, default=MAX_GROWTH_MIB)
    parser.add_argument("--only", choices=["gateway", "rag"], help="run one scenario")
    args = parser.parse_args()
    args.rag_docs = args.rag_docs.resolve()
    if not args.rag_docs.is_relative_to(DOCS):
        parser.error(f"--rag-docs must be a folder of {DOCS}: the questions are about those docs")
    for name in ("duration", "warmup", "rag_duration"):
        setattr(args, name, summary.parse_duration(getattr(args, name)))
    return args


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without the kit's own variables, so a developer's settings stay out."""
    prefixes = ("KIT_", "GATEWAY_", "RAG_", "QDRANT_", "REDIS_", "MLFLOW_", "LOCUST_")
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)} | extra


def rss(pid: int) -> int:
    """Resident bytes of a process and its children (uvicorn runs one process here, but a
    server started with workers would hide its memory in them)."""
    process = psutil.Process(pid)
    children = process.children(recursive=True)
    resident: int = process.memory_info().rss + sum(c.memory_info().rss for c in children)
    return resident


def locust(
    locustfile: str,
    host: str,
    users: int,
    seconds: int,
    csv_prefix: Path,
    env: dict[str, str],
    *options: str,
    watch: int | None = None,
) -> tuple[LocustTotals, list[tuple[float, int]]]:
    """Run locust headless; while it runs, sample the RSS of process `watch` every few seconds."""
    command = [
        str(BIN / "locust"),
        *("-f", str(HERE / locustfile), "--headless", "--host", host),
        *("--users", str(users), "--spawn-rate", str(users), "--run-time", f"{seconds}s"),
        *("--csv", str(csv_prefix), "--only-summary", "--loglevel", "WARNING"),
        *("--stop-timeout", "10", *options),
    ]
    samples: list[tuple[float, int]] = []
    log_path = csv_prefix.with_name(csv_prefix.name + "-locust.log")  # beside the server's log
    with log_path.open("w") as log:
        started = time.monotonic()
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        while process.poll() is None:
            if watch is not None:
                try:
                    samples.append((time.monotonic() - started, rss(watch)))
                except psutil.NoSuchProcess:
                    process.terminate()
                    raise RuntimeError("the server exited during the load; see its log") from None
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=SAMPLE_EVERY_S)
    if watch is not None:  # the end: after the last request, before the server stops
        samples.append((time.monotonic() - started, rss(watch)))
    stats = csv_prefix.with_name(csv_prefix.name + "_stats.csv")
    if not stats.exists():
        raise RuntimeError(f"locust wrote no statistics; see {log_path}")
    return summary.read_locust_stats(stats), samples


def main() -> int:
    args = parse_args()
    work = Path(tempfile.mkdtemp(prefix="kit-load-"))
    record: dict[str, object] = {"date": datetime.now().isoformat(timespec="seconds")}
    found: list[str] = []
    lines: list[str] = []
    upstream_port, gateway_port = free_port(), free_port()
    upstream = f"http://127.0.0.1:{upstream_port}/v1"
    gateway = f"http://127.0.0.1:{gateway_port}"
    (work / "models.yaml").write_text(yaml.safe_dump(gateway_models(upstream)))
    gateway_env = clean_env(
        GATEWAY_MODELS_FILE=str(work / "models.yaml"),
        KIT_DATA_DIR=str(work / "gateway"),
        KIT_ENV="production",
        KIT_LOG_FORMAT="json",
    )
    kit = str(BIN / "kit")
    # Every process starts in `work`, so none reads a developer's .env from the repository.
    os.chdir(work)
    key = create_gateway_key(kit, gateway_env, work, "--id", "load")
    print(f"load runs on 127.0.0.1, upstream latency {args.latency_ms:g} ms; logs in {work}")

    with ExitStack() as servers:
        fake = [sys.executable, "-m", "tests.support.fake_openai", "--port", str(upstream_port)]
        fake += ["--latency-ms", str(args.latency_ms)]
        servers.enter_context(
            running(fake, upstream_port, work / "upstream.log", env=clean_env(PYTHONPATH=str(REPO)))
        )
        serve = [kit, "serve", "gateway", "--port", str(gateway_port)]
        gateway_process = servers.enter_context(
            running(serve, gateway_port, work / "gateway.log", timeout=120, env=gateway_env)
        )
        if args.only in (None, "gateway"):
            env = clean_env(LOCUST_API_KEY=key, LOCUST_RATE=str(args.rate))
            print(
                f"gateway: warm-up {args.warmup} s, then {args.duration} s at {args.rate:g} req/s"
            )
            run = ("gateway_locustfile.py", gateway, args.users)
            locust(*run, args.warmup, work / "gateway-warmup", env)
            baseline = rss(gateway_process.pid)
            totals, samples = locust(
                *run, args.duration, work / "gateway", env, watch=gateway_process.pid
            )
            memory = RssSeries(baseline, samples)
            bound = RssBound(args.max_growth_mib)
            lines += summary.report_lines("gateway", totals, memory, args.rate)
            lines.append(f"  RSS bound   growth <= {bound.max_growth_mib:g} MiB after warm-up")
            found += summary.problems("gateway", totals, memory, bound)
            record["gateway"] = summary.as_json(totals, memory) | {
                "target_rps": args.rate,
                "users": args.users,
                "seconds": args.duration,
                "rss_bound_mib": bound.max_growth_mib,
            }
        if args.only in (None, "rag"):
            totals, memory = rag_run(args, work, kit, gateway, key, servers)
            lines += summary.report_lines("rag /ask", totals, memory, users=args.rag_users)
            found += summary.problems("rag /ask", totals, None, None)
            record["rag"] = summary.as_json(totals, memory) | {
                "users": args.rag_users,
                "seconds": args.rag_duration,
                "docs": str(args.rag_docs.relative_to(REPO)),
            }

    print("\n" + "\n".join(lines))
    out = REPO / ".bench" / f"load-{datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(record | {"problems": found}, indent=2) + "\n")
    print(f"\nfigures: {out.relative_to(REPO)}")
    for problem in found:
        print(f"FAIL {problem}", file=sys.stderr)
    return 1 if found else 0


def rag_run(
    args: argparse.Namespace, work: Path, kit: str, gateway: str, key: str, servers: ExitStack
) -> tuple[LocustTotals, RssSeries]:
    """Index the docs slice, serve the RAG service against the gateway, and load /ask."""
    port = free_port()
    # One index per docs folder, so that a run never searches pages of another folder.
    data_dir = RAG_DATA / args.rag_docs.relative_to(DOCS).as_posix().replace("/", "-")
    env = clean_env(
        # The index outlives the run (`make clean` removes it): ingestion is incremental, so
        # only the first run embeds the pages, a minute or two on a busy 2-core machine.
        KIT_DATA_DIR=str(data_dir),
        RAG_QUERY_LOG=str(work / "rag-queries.jsonl"),
        KIT_ENV="production",
        KIT_LOG_FORMAT="json",
        GATEWAY_URL=gateway,
        GATEWAY_API_KEY=key,
        RAG_MODEL="bench",
        RAG_KEYS_FILE=str(work / "rag-keys.yaml"),
        KIT_DOCS_ROOT=str(DOCS_ROOT),
    )
    rag_key = create_rag_key(kit, env, REPO, "--id", "load")
    print(f"rag: indexing {args.rag_docs.relative_to(REPO)} into {data_dir.relative_to(REPO)}")
    started = time.monotonic()
    with (work / "ingest.log").open("w") as log:
        command = [kit, "ingest", str(args.rag_docs), "--strict"]
        subprocess.run(command, env=env, check=True, stdout=log, stderr=subprocess.STDOUT)
    print(
        f"rag: index ready in {time.monotonic() - started:.0f} s; warm-up {args.warmup} s, "
        f"then {args.rag_duration} s at {args.rag_users} concurrent users"
    )
    serve = [kit, "serve", "rag", "--port", str(port)]
    process = servers.enter_context(running(serve, port, work / "rag.log", timeout=180, env=env))
    # Ask only what the index can answer: questions about the indexed folder (by document id,
    # its path below KIT_DOCS_ROOT).
    under = args.rag_docs.relative_to(DOCS_ROOT).as_posix() + "/"
    run = ("rag_locustfile.py", f"http://127.0.0.1:{port}", args.rag_users)
    options = ("--questions-under", under)
    locust_env = clean_env(LOCUST_API_KEY=rag_key)
    locust(*run, args.warmup, work / "rag-warmup", locust_env, *options)
    baseline = rss(process.pid)
    totals, samples = locust(
        *run, args.rag_duration, work / "rag", locust_env, *options, watch=process.pid
    )
    return totals, RssSeries(baseline, samples)


if __name__ == "__main__":
    sys.exit(main())
