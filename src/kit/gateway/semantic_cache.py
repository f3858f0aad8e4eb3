"""The semantic cache (off by default): answer a near-duplicate question from an earlier answer.

"How do I reset my password?" and "How can I reset my password?" embed to vectors with cosine
0.99 (MiniLM, measured), so the second can reuse the first's answer. The danger is a question
that looks alike and means something else: "the capital of France" vs "of Germany" scores 0.66,
"cancel order 123" vs "order 456" 0.83. Hence a high default threshold (0.95), and a scope:
a hit must share the caller's tenant, the model alias, the system prompt and every parameter;
only the user's wording may differ.

Two ways to abuse a semantic cache, closed here:
- Reading or poisoning another tenant's entries: the tenant is part of the scope, so a key
  never sees, and never writes into, entries of keys outside its tenant.
- Texts longer than the embedder reads: MiniLM embeds the first 256 word pieces and ignores the
  rest, while the model reads everything. Two conversations that differ only after that point
  would get the same vector, so one could be answered with the other's answer (or a planted
  one). A conversation that does not fit the window is neither looked up nor stored.

Vectors live in Qdrant: in this process (`:memory:`) by default, or the Qdrant server named by
`QDRANT_URL`, where replicas share them. Entries older than the cache TTL are ignored.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from typing import Any

import orjson
from qdrant_client import AsyncQdrantClient, models

from kit.llm.local_client import LocalClient

COLLECTION = "gateway_semantic_cache"
DIMENSION = 384  # all-MiniLM-L6-v2


def scope_of(tenant: str, alias: str, request: dict[str, Any]) -> str:
    """Everything but the user's words: tenant, alias, system prompt, parameters."""
    system = [
        m.get("content") for m in request["messages"] if m.get("role") in ("system", "developer")
    ]
    params = {k: v for k, v in request.items() if k not in ("messages", "stream", "user", "model")}
    blob = orjson.dumps(
        {"tenant": tenant, "alias": alias, "system": system, "params": params},
        option=orjson.OPT_SORT_KEYS,
    )
    return hashlib.sha256(blob).hexdigest()


def question_of(request: dict[str, Any]) -> str:
    """The conversation minus the system prompt: what the user asked, in order."""
    return "\n".join(
        f"{m.get('role')}: {m.get('content')}"
        for m in request["messages"]
        if m.get("role") not in ("system", "developer")
    )


class SemanticCache:
    def __init__(
        self,
        embedder: LocalClient,
        *,
        threshold: float,
        ttl_s: int,
        qdrant_url: str | None,
        qdrant_api_key: str | None = None,
    ) -> None:
        self.embedder = embedder
        self.threshold = threshold
        self.ttl_s = ttl_s
        self.server_mode = qdrant_url is not None
        self.client = (
            AsyncQdrantClient(url=qdrant_url, api_key=qdrant_api_key)
            if qdrant_url
            else AsyncQdrantClient(location=":memory:")
        )
        self._ready = asyncio.Lock()
        self._created = False

    async def _collection(self) -> None:
        async with self._ready:
            if self._created:
                return
            if not await self.client.collection_exists(COLLECTION):
                await self.client.create_collection(
                    COLLECTION,
                    vectors_config=models.VectorParams(
                        size=DIMENSION, distance=models.Distance.COSINE
                    ),
                )
                if self.server_mode:  # local mode scans payloads; a server indexes them
                    await self.client.create_payload_index(
                        COLLECTION, "scope", models.PayloadSchemaType.KEYWORD
                    )
            self._created = True

    async def fits(self, request: dict[str, Any]) -> bool:
        """Whether the embedder reads the whole conversation (see the module docstring)."""
        return await asyncio.to_thread(self.embedder.embedder.fits, question_of(request))

    async def _vector(self, request: dict[str, Any]) -> list[float]:
        vectors = await asyncio.to_thread(self.embedder.embedder.embed, [question_of(request)])
        vector: list[float] = vectors[0].tolist()
        return vector

    async def get(
        self, tenant: str, alias: str, request: dict[str, Any]
    ) -> tuple[dict[str, Any], float] | None:
        """The closest earlier answer in scope, with its similarity, if above the threshold."""
        await self._collection()
        found = await self.client.query_points(
            COLLECTION,
            query=await self._vector(request),
            query_filter=models.Filter(
                must=[
                    models.FieldCondition(
                        key="scope",
                        match=models.MatchValue(value=scope_of(tenant, alias, request)),
                    ),
                    models.FieldCondition(
                        key="created", range=models.Range(gte=time.time() - self.ttl_s)
                    ),
                ]
            ),
            limit=1,
            score_threshold=self.threshold,
            with_payload=True,
        )
        if not found.points:
            return None
        best = found.points[0]
        payload = best.payload or {}
        return orjson.loads(payload["entry"]), best.score

    async def set(
        self, tenant: str, alias: str, request: dict[str, Any], entry: dict[str, Any]
    ) -> None:
        await self._collection()
        point = models.PointStruct(
            id=str(uuid.uuid4()),
            vector=await self._vector(request),
            payload={
                "scope": scope_of(tenant, alias, request),
                "created": time.time(),
                "entry": orjson.dumps(entry).decode(),
            },
        )
        await self.client.upsert(COLLECTION, points=[point])

    async def aclose(self) -> None:
        await self.client.close()
