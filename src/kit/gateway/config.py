"""The models file: which model names clients may ask for, and which deployments answer them.

    models:                        # alias -> fallback chain, tried in order
      gpt-4o-mini: [openai-gpt-4o-mini, local-smollm2]
    deployments:                   # one upstream model at one provider
      openai-gpt-4o-mini: {provider: openai, model: gpt-4o-mini, api_key_env: OPENAI_API_KEY}
      local-smollm2: {provider: local, model: smollm2-135m-instruct}

A deployment is enabled when the variables it names are set (`api_key_env` itself, or its `_FILE`
twin naming a file that holds the key; `api_base_env`) and, for in-process ones (`local`,
`mlflow`), when their engine is installed, so one file serves a laptop with no keys, production
with all of them, and an image built without torch; keys are never written in the file.
Everything is validated when the gateway starts: a typo is an error naming the line's path, not a
failure on the first request. `models.yaml` documents every provider.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from importlib.util import find_spec
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from kit.core.errors import ConfigError
from kit.core.secrets import read_secret

Provider = Literal["local", "openai", "litellm", "mlflow"]
Task = Literal["chat", "embedding"]
ErrorClass = Literal["rate_limit", "server_error", "timeout", "connection"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)  # an unknown key is a typo


class Price(_Strict):
    """USD per million tokens, when LiteLLM's price table does not know the model."""

    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)


class Deployment(_Strict):
    provider: Provider
    model: str = Field(min_length=1, description="The provider's name for the model.")
    task: Task = "chat"
    api_base: str | None = None
    api_base_env: str | None = Field(None, description="Variable holding the base URL.")
    api_key_env: str | None = Field(None, description="Variable holding the API key.")
    timeout_s: float = Field(60.0, gt=0, le=600)
    price: Price | None = None
    remote_media_urls: bool = Field(
        False,
        description="Pass http(s) image and file URLs in messages on to this deployment. Only "
        "where the provider's servers fetch them (OpenAI's API): LiteLLM downloads them itself "
        "for Anthropic, Gemini, Bedrock and Ollama, from the gateway's network, and a "
        "self-hosted server (vLLM) fetches them from its own.",
    )

    @model_validator(mode="after")
    def _registry_uri(self) -> Deployment:
        if self.provider == "mlflow" and not re.match(r"^models:/[^/@]+(@[^/]+|/\d+)$", self.model):
            raise ValueError(
                f"provider mlflow needs model: models:/NAME@ALIAS or models:/NAME/VERSION, "
                f"not {self.model!r}"
            )
        return self


def _default_retries() -> dict[ErrorClass, int]:
    return {"rate_limit": 1, "server_error": 1, "timeout": 0, "connection": 1}


class Routing(_Strict):
    retries: dict[ErrorClass, int] = Field(
        default_factory=_default_retries,
        description="Extra attempts on the same deployment, by error class, before falling back.",
    )
    backoff_s: float = Field(
        0.1, ge=0, le=30, description="Wait before a retry, doubled each time."
    )
    cooldown_s: float = Field(
        30.0, ge=0, le=3600, description="How long a failing deployment rests."
    )
    failures_to_cooldown: int = Field(3, ge=1, le=100)


class ModelsFile(_Strict):
    default_model: str
    routing: Routing = Field(default_factory=Routing)
    deployments: dict[str, Deployment]
    models: dict[str, list[str]]

    @model_validator(mode="after")
    def _references_exist(self) -> ModelsFile:
        for alias, chain in self.models.items():
            if not chain:
                raise ValueError(f"models.{alias}: list at least one deployment")
            unknown = [name for name in chain if name not in self.deployments]
            if unknown:
                raise ValueError(
                    f"models.{alias}: unknown deployment(s) {unknown}; "
                    f"defined: {sorted(self.deployments)}"
                )
            tasks = {self.deployments[name].task for name in chain}
            if len(tasks) > 1:
                raise ValueError(f"models.{alias}: mixes chat and embedding deployments")
        if self.default_model not in self.models:
            raise ValueError(f"default_model {self.default_model!r} is not one of models")
        return self


class ResolvedDeployment(BaseModel):
    """A deployment with its secrets read from the environment, ready to call."""

    model_config = ConfigDict(frozen=True)

    name: str
    spec: Deployment
    api_key: SecretStr | None
    api_base: str | None


class GatewayModels(BaseModel):
    """The models file after start-up: only enabled deployments, with what disabled the rest."""

    model_config = ConfigDict(frozen=True)

    default_model: str
    routing: Routing
    chains: dict[str, list[ResolvedDeployment]]  # alias -> enabled deployments, in order
    disabled: dict[str, str]  # deployment -> why ("OPENAI_API_KEY is not set")

    def task(self, alias: str) -> Task:
        return self.chains[alias][0].spec.task


def missing_engine(deployment: Deployment) -> str | None:
    """Why an in-process deployment cannot run in this installation, or None when it can.

    The gateway's image without torch (deploy/docker) has no embedder, and the cloud-only one no
    engine at all: their local deployments are disabled at start-up, not failing on first use."""
    if deployment.provider == "local" and deployment.task == "chat":
        from kit.llm.local_models.chat import available_engines

        if not available_engines():
            return "no local chat engine installed (pip install '.[llamacpp]' or '.[local]')"
    elif deployment.provider == "local":
        if not (find_spec("sentence_transformers") and find_spec("torch")):
            return "no local embedding engine installed (pip install '.[local]')"
    elif deployment.provider == "mlflow" and not _installed("mlflow-skinny"):
        # Not `find_spec("mlflow")`: the services' tracing client (mlflow-tracing) installs an
        # `mlflow` package too, without the registry and artifact code a model load needs.
        return "MLflow's registry client is not installed (pip install '.[ml]')"
    return None


def _installed(distribution: str) -> bool:
    try:
        return bool(version(distribution))
    except PackageNotFoundError:
        return False


def load_models(path: Path, environ: Mapping[str, str]) -> GatewayModels:
    """Read, validate and resolve the models file. Raises `ConfigError` saying what to fix."""
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"Models file {path} not found; set GATEWAY_MODELS_FILE.") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"Models file {path} is not valid YAML: {exc}") from None
    try:
        spec = ModelsFile.model_validate(raw)
    except ValidationError as exc:
        problems = "\n".join(
            f"  {'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}"
            for e in exc.errors()
        )
        raise ConfigError(f"Models file {path} is invalid:\n{problems}") from None
    return resolve(spec, environ)


def resolve(spec: ModelsFile, environ: Mapping[str, str]) -> GatewayModels:
    resolved: dict[str, ResolvedDeployment] = {}
    disabled: dict[str, str] = {}
    for name, deployment in spec.deployments.items():
        missing = [
            variable
            for variable in (deployment.api_key_env, deployment.api_base_env)
            if variable and not environ.get(variable) and not environ.get(f"{variable}_FILE")
        ]
        if missing:
            disabled[name] = f"{' and '.join(missing)} not set"
            continue
        if reason := missing_engine(deployment):
            disabled[name] = reason
            continue
        # The key itself, or the file OPENAI_API_KEY_FILE names (a mounted container secret).
        key = read_secret(deployment.api_key_env, environ) if deployment.api_key_env else None
        base = environ.get(deployment.api_base_env) if deployment.api_base_env else None
        resolved[name] = ResolvedDeployment(
            name=name,
            spec=deployment,
            api_key=SecretStr(key) if key else None,
            api_base=base or deployment.api_base,
        )
    chains = {
        alias: [resolved[name] for name in chain if name in resolved]
        for alias, chain in spec.models.items()
    }
    chains = {alias: chain for alias, chain in chains.items() if chain}
    if not chains:
        raise ConfigError(
            "No model has an enabled deployment "
            f"({'; '.join(f'{k}: {v}' for k, v in disabled.items())}). Set a provider's key, "
            "or install a local engine."
        )
    # A disabled default is not fatal: OpenAI-style requests name their model, and a request for
    # the default is then refused with the reason (the router's UnknownModel lists `disabled`).
    return GatewayModels(
        default_model=spec.default_model, routing=spec.routing, chains=chains, disabled=disabled
    )
