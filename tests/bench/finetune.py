"""Benchmark: the intent fine-tune against every baseline, on the full BANKING77 test set.

    make bench-finetune    # = python -m tests.bench.finetune [--config ...] [--prompt-sample 200]

1. the fine-tune: `--config` (default: pipelines/finetune/configs/default.yaml) through
   `kit finetune`'s own code path (one MLflow run in a temporary store, registered and gated),
   with its wall time and peak memory; then each `--also` config (e.g. the LoRA one) the same way;
2. the baselines through the same harness: logistic regression and kNN on frozen MiniLM
   embeddings (full test set), zero-shot and few-shot SmolLM2 (a stratified `--prompt-sample`
   of the test set, since each query is a generation), and `--cloud-model` when its key is set;
3. the trade-off table: accuracy, macro-F1, training time, latency per query, cost per 1,000
   queries; and the target (accuracy >= 0.94 within 15 minutes on 2 cores).

Each fine-tune runs in its own process, one after another, so peak memory is its own and no
two trainings share the cores. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TARGET_ACCURACY, TARGET_SECONDS = 0.94, 15 * 60


def say(line: str = "") -> None:
    print(line, flush=True)


def finetune_in_subprocess(config: Path, data_dir: Path) -> dict[str, object]:
    """`run_finetune` in a fresh process: wall time and peak memory belong to it alone."""
    code = (
        "import json, sys, time\n"
        "from pathlib import Path\n"
        "from kit.finetune.config import load_config\n"
        "from kit.finetune.run import run_finetune\n"
        "from kit.core.settings import KitSettings\n"
        "started = time.perf_counter()\n"
        "config = load_config(Path(sys.argv[1]))\n"
        "r = run_finetune(config, KitSettings(), config_path=Path(sys.argv[1]),\n"
        "                 progress=lambda line: print('   ', line, file=sys.stderr, flush=True))\n"
        "print(json.dumps({'name': config.name, 'method': config.method,\n"
        "  'accuracy': r.test.accuracy, 'macro_f1': r.test.macro_f1, 'rows': r.test.rows,\n"
        "  'latency_ms': r.test.latency_ms, 'train_seconds': r.train_seconds,\n"
        "  'wall_seconds': time.perf_counter() - started, 'peak_mb': r.peak_memory_mb,\n"
        "  'validation_accuracy': r.validation_accuracy, 'decision': r.decision.reason}))\n"
    )
    env = os.environ | {"KIT_DATA_DIR": str(data_dir), "KIT_LOG_LEVEL": "WARNING"}
    result = subprocess.run(
        [sys.executable, "-c", code, str(config)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    summary: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "--config", type=Path, default=REPO / "pipelines/finetune/configs/default.yaml"
    )
    parser.add_argument("--also", type=Path, action="append", default=[], help="more configs")
    parser.add_argument("--prompt-sample", type=int, default=200, help="0 skips prompt baselines")
    parser.add_argument("--cloud-model", default=None, help="a gateway alias, e.g. gpt-4o-mini")
    args = parser.parse_args()

    import torch

    from kit.core.settings import KitSettings
    from kit.finetune.baselines import run_baselines
    from kit.finetune.config import load_config
    from kit.finetune.data import load_splits
    from kit.gateway.pricing import Pricing
    from kit.llm.local_models import load_embedder
    from kit.runtime import connect_gateway

    wall = time.perf_counter()
    os.environ.setdefault("KIT_LOG_LEVEL", "WARNING")  # no log line per prompt-baseline query
    say(
        f"{date.today().isoformat()}  {os.cpu_count()} cores ({platform.machine()}), "
        f"Python {platform.python_version()}, torch {torch.__version__}\n"
    )
    rows: list[tuple[str, float, float, float, float, float, str]] = []
    with tempfile.TemporaryDirectory(prefix="bench-finetune-") as folder:
        for config in [args.config, *args.also]:
            say(f"1. fine-tune {config.relative_to(REPO) if config.is_absolute() else config}")
            summary = finetune_in_subprocess(config, Path(folder))
            say(
                f"   test accuracy {summary['accuracy']:.4f}, macro-F1 {summary['macro_f1']:.4f} "
                f"on {summary['rows']} queries; validation {summary['validation_accuracy']}\n"
                f"   training {summary['train_seconds']:.0f} s, "
                f"whole job {summary['wall_seconds']:.0f} s, "
                f"peak memory {summary['peak_mb']:.0f} MB\n   gate: {summary['decision']}"
            )
            rows.append(
                (
                    f"fine-tune: {summary['name']} ({summary['method']})",
                    float(summary["accuracy"]),  # type: ignore[arg-type]
                    float(summary["macro_f1"]),  # type: ignore[arg-type]
                    float(summary["train_seconds"]),  # type: ignore[arg-type]
                    float(summary["latency_ms"]),  # type: ignore[arg-type]
                    0.0,
                    f"{summary['rows']} rows",
                )
            )
            if config == args.config:
                main_summary = summary

        settings = KitSettings(data_dir=Path(folder))
        splits = load_splits(load_config(args.config).data, load_config(args.config).seed)
        say("\n2. baselines")
        price = Pricing().for_model(args.cloud_model) if args.cloud_model else None
        client = connect_gateway(settings) if args.prompt_sample > 0 else None
        try:
            results = run_baselines(
                splits,
                load_embedder(settings),
                client,
                cloud_model=args.cloud_model,
                cloud_price=price or (0.0, 0.0),
                prompt_sample=args.prompt_sample,
                progress=lambda line: say(f"   {line}"),
            )
        finally:
            if client is not None:
                client.close()
    for r in results:
        rows.append(
            (
                r.name,
                r.scores.accuracy,
                r.scores.macro_f1,
                r.train_seconds,
                r.scores.latency_ms,
                r.cost_per_1k,
                r.note or f"{r.scores.rows} rows",
            )
        )

    say("\n3. trade-offs (accuracy and macro-F1 on the test set; prompt rows on a sample)")
    say(f"   {'model':44} {'acc':>6} {'F1':>6} {'train s':>8} {'ms/q':>7} {'$/1k':>7}  rows")
    for name, acc, f1, train_s, ms, cost, note in rows:
        say(f"   {name:44} {acc:6.4f} {f1:6.4f} {train_s:8.0f} {ms:7.1f} {cost:7.4f}  {note}")
    best_baseline = max(r.scores.accuracy for r in results if r.scores.rows == len(splits.test))
    accuracy = float(main_summary["accuracy"])  # type: ignore[arg-type]
    seconds = float(main_summary["wall_seconds"])  # type: ignore[arg-type]
    say(
        f"\n   target: accuracy >= {TARGET_ACCURACY} within {TARGET_SECONDS // 60} min on 2 cores: "
        f"{accuracy:.4f} in {seconds / 60:.1f} min -> "
        f"{'met' if accuracy >= TARGET_ACCURACY and seconds <= TARGET_SECONDS else 'NOT met'}; "
        f"best full-test baseline {best_baseline:.4f} "
        f"({'beaten' if accuracy > best_baseline else 'not beaten'})"
    )
    say(f"\nwall time {time.perf_counter() - wall:.0f} s")


if __name__ == "__main__":
    main()
