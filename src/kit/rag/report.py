"""What an ingestion run did, in numbers: documents and chunks by outcome, skips with reasons, time.

Printed at the end of `kit ingest` and saved as JSON (KIT_DATA_DIR/reports/ingest-*.json) so a
scheduled run leaves a record to compare against, and a data-quality regression (a sudden wave of
skipped files) is visible in one look.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kit.rag.documents import Skipped


@dataclass
class IngestReport:
    chunking: str
    documents: Counter[str] = field(default_factory=Counter)  # added updated unchanged pruned
    chunks: Counter[str] = field(default_factory=Counter)  # added removed unchanged
    skipped: list[Skipped] = field(default_factory=list)
    timings: defaultdict[str, float] = field(  # seconds: load, chunk, embed, index, total
        default_factory=lambda: defaultdict(float)
    )
    chunks_in_collection: int = 0
    # Data-quality counts over this run's chunks: empty, duplicate (texts past their first copy),
    # over_long (over the token budget). Counted by the spark engine (src/kit/rag/spark_ingest.py).
    quality: Counter[str] = field(default_factory=Counter)

    @property
    def chunks_per_second(self) -> float:
        """Chunks embedded and indexed per second of the whole run."""
        total = self.timings["total"]
        return self.chunks["added"] / total if total else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "chunking": self.chunking,
            "documents": {
                **{k: self.documents[k] for k in ("added", "updated", "unchanged", "pruned")},
                "skipped": len(self.skipped),
            },
            "chunks": {k: self.chunks[k] for k in ("added", "removed", "unchanged")},
            "chunks_in_collection": self.chunks_in_collection,
            "skipped": [{"source": s.source, "reason": s.reason} for s in self.skipped],
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "chunks_per_second": round(self.chunks_per_second, 1),
        } | ({"quality": dict(self.quality)} if self.quality else {})

    def save(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"ingest-{time.strftime('%Y%m%d-%H%M%S')}.json"
        path.write_text(json.dumps(self.as_dict(), indent=2))
        return path
