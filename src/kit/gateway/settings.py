"""The gateway's settings: `GATEWAY_*` variables on top of the shared `KitSettings`.

Which models exist and how they fall back is not here but in the models file (`GATEWAY_MODELS_FILE`,
see `src/kit/gateway/config.py`), because it is structured data that changes with the product;
this module holds the knobs of the service itself: where it listens, who may call it, how much.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from kit.core.settings import Environment, HttpAccessSettings, KitSettings

PACKAGE_DIR = Path(__file__).resolve().parent


class GatewaySettings(KitSettings, HttpAccessSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_")

    host: str = Field("127.0.0.1", description="Interface to listen on; 0.0.0.0 in a container.")
    port: int = Field(8000, ge=1, le=65535)
    models_file: Path = Field(
        PACKAGE_DIR / "models.yaml",
        description="Aliases, deployments and fallback chains (YAML).",
    )

    # --- Who may call ------------------------------------------------------------------------
    auth: Literal["keys", "open"] = Field(
        "keys",
        description="keys: a Bearer API key from the keys file is required. open: anyone may "
        "call, for local development only (refused with KIT_ENV=production).",
    )
    keys_file: Path | None = Field(
        None,
        description="YAML of hashed API keys with their limits and budgets "
        "(`kit gateway keys create` writes it). Default: KIT_DATA_DIR/gateway-keys.yaml.",
    )

    # --- Caching -------------------------------------------------------------------------------
    cache_ttl_s: int = Field(300, ge=0, le=86_400, description="0 turns the response cache off.")
    cache_max_entries: int = Field(10_000, ge=1, le=10_000_000)
    cache_nondeterministic: bool = Field(
        False, description="Also cache requests with temperature > 0 (their answers vary)."
    )
    semantic_cache: bool = Field(False, description="Serve near-duplicate prompts from cache.")
    semantic_threshold: float = Field(0.95, gt=0.0, le=1.0)

    # --- Request limits --------------------------------------------------------------------------
    max_body_bytes: int = Field(1_000_000, ge=1_024, le=100_000_000)
    max_messages: int = Field(256, ge=1, le=10_000)
    max_tokens_limit: int = Field(4_096, ge=1, le=1_000_000)
    default_max_tokens: int = Field(256, ge=1, le=1_000_000)
    max_concurrent: int = Field(
        64,
        ge=1,
        le=100_000,
        description="Requests a key may have in flight at once, unless its max_concurrent says "
        "otherwise; more get a 429 with Retry-After (one key cannot take the whole gateway).",
    )
    budget_hold_s: float = Field(
        600.0,
        ge=10,
        le=86_400,
        description="How long a request's budget hold lasts at most: a replica that dies "
        "mid-request releases its holds after this. Longer than your longest stream.",
    )

    # --- Logging of prompts --------------------------------------------------------------------
    log_prompts: bool = Field(False, description="Log prompts and answers (after redaction).")
    redact: bool = Field(True, description="Mask e-mails, phone and card numbers in logged text.")

    @model_validator(mode="after")
    def _open_mode_only_in_development(self) -> GatewaySettings:
        if self.auth == "open" and self.environment is Environment.PRODUCTION:
            raise ValueError(
                "GATEWAY_AUTH=open lets anyone spend your provider credits; it is refused with "
                "KIT_ENV=production. Create keys with `kit gateway keys create` and set "
                "GATEWAY_AUTH=keys."
            )
        return self

    @property
    def resolved_keys_file(self) -> Path:
        return self.keys_file or self.data_dir / "gateway-keys.yaml"
