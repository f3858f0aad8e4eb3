"""What a request cost, in USD, from LiteLLM's offline price table.

LiteLLM ships a JSON table of ~4,900 models' prices per token inside its package. We read that
file directly (no `import litellm`, which takes seconds and would try the network), once, at
start-up. A deployment's own `price` in the models file wins over the table; the local models
cost nothing; a model the table does not know costs 0 and is logged once, so that a budget is
never enforced on a silently wrong price without a trace.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from kit.core.logging import get_logger
from kit.gateway.config import ResolvedDeployment

log = get_logger("gateway")

_TABLE_FILE = "model_prices_and_context_window_backup.json"


def _litellm_table() -> dict[str, Any]:
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return {}
    path = Path(next(iter(spec.submodule_search_locations))) / _TABLE_FILE
    if not path.exists():
        return {}
    table: dict[str, Any] = json.loads(path.read_text())
    return table


class Pricing:
    def __init__(self, table: dict[str, Any] | None = None) -> None:
        self.table = _litellm_table() if table is None else table
        self._warned: set[str] = set()

    def for_model(self, model: str) -> tuple[float, float] | None:
        """(USD per prompt token, per completion token) of a model the table knows, by name."""
        for name in (model, model.split("/", 1)[-1]):
            entry = self.table.get(name)
            if entry:
                return (
                    float(entry.get("input_cost_per_token") or 0.0),
                    float(entry.get("output_cost_per_token") or 0.0),
                )
        return None

    def per_token(self, deployment: ResolvedDeployment) -> tuple[float, float]:
        """(USD per prompt token, USD per completion token) for a deployment."""
        spec = deployment.spec
        if spec.price is not None:
            return spec.price.input_per_mtok / 1e6, spec.price.output_per_mtok / 1e6
        if spec.provider == "local":
            return 0.0, 0.0
        # Table keys are "gpt-4o-mini", "mistral/mistral-small-latest", ...: try both spellings.
        known = self.for_model(spec.model)
        if known is not None:
            return known
        if deployment.name not in self._warned:
            self._warned.add(deployment.name)
            log.warning(
                "no_price_for_model",
                deployment=deployment.name,
                model=spec.model,
                fix="add `price: {input_per_mtok: ..., output_per_mtok: ...}` to the deployment",
            )
        return 0.0, 0.0

    def cost(
        self, deployment: ResolvedDeployment, prompt_tokens: int, completion_tokens: int
    ) -> float:
        per_prompt, per_completion = self.per_token(deployment)
        return prompt_tokens * per_prompt + completion_tokens * per_completion
