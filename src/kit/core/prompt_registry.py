"""Prompts in MLflow's prompt registry, pushed from the versioned files that stay their source.

    kit prompts push --alias production      # every prompt file: a new version when it changed
    RAG_PROMPT=prompts:/answer-v2@production # the RAG service loads what the alias points to

The files in git (src/kit/rag/prompts/, src/kit/evaluate/prompts/) remain the truth: a push
registers a file's text as a new version only when it differs from the latest one (compared by
its sha256, kept as the version's tag `kit.digest`), so pushing twice changes nothing. An alias
(`production`, `staging`) is the switch an operator moves, with `kit prompts alias`, without a
deploy. Loading goes by MLflow's own URI forms: `prompts:/NAME@ALIAS` or `prompts:/NAME/VERSION`.

This module stores and fetches text; what the text means (a YAML prompt template) is the
caller's business. The store is the tracking store (`kit.core.tracking`): sqlite under
KIT_DATA_DIR, or the MLflow server at MLFLOW_TRACKING_URI.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kit.core.errors import ConfigError
from kit.core.settings import KitSettings
from kit.core.tracking import outages_reported, tracking_uri

URI = re.compile(
    r"^prompts:/(?P<name>[A-Za-z0-9_.-]+)(?:@(?P<alias>[A-Za-z0-9_-]+)|/(?P<version>\d+))$"
)
DIGEST_TAG = "kit.digest"
SOURCE_TAG = "kit.source"


@dataclass(frozen=True)
class RegisteredPrompt:
    """One version of a prompt in the registry."""

    name: str
    version: int
    text: str
    digest: str  # sha256 of the text, as pushed

    @property
    def uri(self) -> str:
        """The URI of exactly this version (an alias may move on; this does not)."""
        return f"prompts:/{self.name}/{self.version}"


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def is_registry_uri(value: str) -> bool:
    return value.startswith("prompts:/")


def push(
    settings: KitSettings, name: str, text: str, *, source: str, alias: str | None = None
) -> tuple[RegisteredPrompt, bool]:
    """Register `text` as prompt `name` unless its latest version already holds that text;
    point `alias` at the result. Returns the version and whether it was created."""
    client = _client(settings)
    with outages_reported(tracking_uri(settings)):
        latest = _latest(client, name)
        wanted = digest(text)
        created = latest is None or latest.digest != wanted
        if created:
            version = client.register_prompt(
                name,
                text,
                commit_message=f"pushed from {source}",
                tags={DIGEST_TAG: wanted, SOURCE_TAG: source},
            )
            registered = RegisteredPrompt(name, int(version.version), text, wanted)
        else:
            assert latest is not None
            registered = latest
        if alias is not None:
            client.set_prompt_alias(name, alias, registered.version)
    return registered, created


def set_alias(settings: KitSettings, name: str, alias: str, version: int) -> None:
    client = _client(settings)
    with outages_reported(tracking_uri(settings)):
        if _found(lambda: client.get_prompt_version(name, version)) is None:
            raise ConfigError(
                f"Prompt {name!r} has no version {version}; `kit prompts push` first."
            )
        client.set_prompt_alias(name, alias, version)


def load(settings: KitSettings, uri: str) -> RegisteredPrompt:
    """The version `uri` names: `prompts:/NAME@ALIAS` or `prompts:/NAME/VERSION`."""
    match = URI.match(uri)
    if match is None:
        raise ConfigError(
            f"{uri!r} is not a prompt URI: write prompts:/NAME@ALIAS "
            "(prompts:/answer-v2@production) or prompts:/NAME/VERSION"
        )
    client = _client(settings)
    name = match["name"]
    with outages_reported(tracking_uri(settings)):
        if match["alias"]:
            found = _found(lambda: client.get_prompt_version_by_alias(name, match["alias"]))
        else:
            found = _found(lambda: client.get_prompt_version(name, int(match["version"])))
    if found is None:
        raise ConfigError(
            f"{uri} is not in the prompt registry at {tracking_uri(settings)}: run "
            "`kit prompts push --alias ALIAS` (or `kit prompts list` to see what is there)."
        )
    return _registered(found)


def list_versions(settings: KitSettings) -> list[tuple[RegisteredPrompt, list[str]]]:
    """Every version of every prompt, with the aliases pointing at it."""
    client = _client(settings)
    rows: list[tuple[RegisteredPrompt, list[str]]] = []
    with outages_reported(tracking_uri(settings)):
        for prompt in client.search_prompts():
            for listed in client.search_prompt_versions(prompt.name):
                # The listing leaves the aliases out; a version fetched by number has them.
                version = client.get_prompt_version(prompt.name, listed.version)
                rows.append((_registered(version), sorted(version.aliases or [])))
    return sorted(rows, key=lambda row: (row[0].name, row[0].version))


def _found(fetch: Callable[[], Any]) -> Any:
    """What `fetch` returns, or None where MLflow says the prompt, version or alias does not
    exist (it raises for some and returns None for others)."""
    from mlflow.exceptions import MlflowException

    try:
        return fetch()
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND") or "not found" in str(exc):
            return None
        raise


def _latest(client: Any, name: str) -> RegisteredPrompt | None:
    if client.get_prompt(name) is None:
        return None
    versions = client.search_prompt_versions(name)
    if not versions:
        return None
    return _registered(max(versions, key=lambda v: int(v.version)))


def _registered(version: Any) -> RegisteredPrompt:
    text = str(version.template)
    return RegisteredPrompt(
        version.name, int(version.version), text, (version.tags or {}).get(DIGEST_TAG, digest(text))
    )


def _client(settings: KitSettings) -> Any:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow import MlflowClient

    settings.ensure_dirs()
    uri = tracking_uri(settings)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)
