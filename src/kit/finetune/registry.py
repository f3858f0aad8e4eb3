"""The promotion gate: a new model version becomes `champion` only if it beats the current one.

    register the run's model as a new version of REGISTRY_NAME (e.g. intent-router)
    a champion the kit refuses to load (trusted.py) -> replaced: it cannot be served anyway
    champion's accuracy on the SAME test rows:
        recorded on its version (tag test_id matches)  -> read it
        otherwise (another test split)                 -> load the champion and score it now
    new accuracy >= champion + margin  -> alias `champion` moves to the new version
    otherwise                          -> the new version gets alias `challenger`

Serving follows the alias (`models:/intent-router@champion`), so promotion is the deployment
step and rolling back is moving the alias back. The decision and both numbers are logged to
the run and tagged on the version, so the registry says why each version is where it is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kit.core.logging import get_logger

log = get_logger(__name__)
CHAMPION, CHALLENGER = "champion", "challenger"


@dataclass(frozen=True)
class GateDecision:
    version: str
    promoted: bool
    accuracy: float
    champion_version: str | None
    champion_accuracy: float | None
    margin: float
    reason: str

    @property
    def alias(self) -> str:
        return CHAMPION if self.promoted else CHALLENGER


def register_and_gate(
    mlflow: Any,
    model_uri: str,
    name: str,
    *,
    accuracy: float,
    test_id: str,
    margin: float,
    score_champion: Callable[[str], float],
    refusal: Callable[[str], str | None],
) -> GateDecision:
    """Register `model_uri` under `name`, decide its alias, and record the decision.

    `score_champion(uri)` is the champion's accuracy on this job's test rows; `refusal(uri)` is
    why the kit would refuse to load it (None when it would load it). A champion logged by an
    older kit, or changed since, is refused by the gateway: keeping it would keep serving nothing.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    version = str(mlflow.register_model(model_uri, name).version)
    client.set_model_version_tag(name, version, "test_id", test_id)
    client.set_model_version_tag(name, version, "test_accuracy", f"{accuracy:.6f}")
    try:
        champion = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:  # no champion yet: the first model takes the title
        champion = None

    champion_accuracy: float | None = None
    refused = None if champion is None else refusal(f"models:/{name}/{champion.version}")
    if champion is None:
        promoted, reason = True, "no champion yet"
    elif refused is not None:
        promoted, reason = True, f"champion v{champion.version} cannot be served: {refused}"
    else:
        if champion.tags.get("test_id") == test_id and "test_accuracy" in champion.tags:
            champion_accuracy = float(champion.tags["test_accuracy"])
        else:  # scored on other rows: score it on these, or the comparison means nothing
            champion_accuracy = score_champion(f"models:/{name}/{champion.version}")
        promoted = accuracy >= champion_accuracy + margin and accuracy > champion_accuracy
        reason = (
            f"accuracy {accuracy:.4f} vs champion v{champion.version} {champion_accuracy:.4f}: "
            + ("beats it" if promoted else "does not beat it")
            + f" by the margin {margin}"
        )

    decision = GateDecision(
        version=version,
        promoted=promoted,
        accuracy=accuracy,
        champion_version=None if champion is None else str(champion.version),
        champion_accuracy=champion_accuracy,
        margin=margin,
        reason=reason,
    )
    client.set_registered_model_alias(name, decision.alias, version)
    client.set_model_version_tag(name, version, "gate", decision.reason)
    mlflow.log_params(
        {
            "registry_name": name,
            "registry_version": version,
            "gate_decision": decision.alias,
            "gate_margin": margin,
            "gate_champion_version": decision.champion_version or "none",
        }
    )
    mlflow.log_metric("gate_candidate_accuracy", accuracy)
    if champion_accuracy is not None:
        mlflow.log_metric("gate_champion_accuracy", champion_accuracy)
    mlflow.set_tag("gate_reason", decision.reason)
    log.info("gate_decided", model=name, version=version, alias=decision.alias, reason=reason)
    return decision


def mark_undecided(name: str, run_id: str) -> None:
    """Say so on any version of `name` that the (abandoned) run `run_id` registered before its
    gate decided: such a version has no alias, so nothing serves it, but a person browsing the
    registry should not have to guess why."""
    from mlflow import MlflowClient

    client = MlflowClient()
    for version in client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'"):
        if "gate" not in version.tags:
            client.set_model_version_tag(
                name, version.version, "gate", "undecided: its job ended before the gate ran"
            )
