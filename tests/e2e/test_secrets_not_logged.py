"""Secrets stay out of logs and responses, with the gateway run as an operator runs it.

`kit serve gateway` at DEBUG with prompt logging on, provider keys read from files
(`OPENAI_API_KEY_FILE`, as a mounted container secret), and an upstream that echoes the key in
its error message, as real providers do ("Incorrect API key provided: sk-...").
Every byte the process wrote is then searched for each secret.
"""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import yaml

from tests.support.fake_openai import FakeUpstream, error, ok, running_fake_upstream
from tests.support.servers import create_gateway_key, kit_service

KIT = str(Path(sys.executable).with_name("kit"))
REPO = Path(__file__).resolve().parents[2]
OPENAI_KEY = "sk-proj-e2e-secret-0123456789abcdef"
LITELLM_KEY = "sk-ant-e2e-secret-fedcba9876543210"


def write_models(path: Path, upstream_url: str) -> Path:
    def deployment(provider: str, model: str, key_env: str) -> dict[str, object]:
        return {
            "provider": provider,
            "model": model,
            "api_base": upstream_url,
            "api_key_env": key_env,
            "timeout_s": 5,
        }

    spec = {
        "default_model": "cloud",
        "routing": {"retries": {"server_error": 0, "timeout": 0, "connection": 0}, "backoff_s": 0},
        "deployments": {
            "openai-fake": deployment("openai", "fake-a", "OPENAI_API_KEY"),
            "litellm-fake": deployment("litellm", "openai/fake-b", "ANTHROPIC_API_KEY"),
        },
        "models": {"cloud": ["openai-fake", "litellm-fake"]},
    }
    path.write_text(yaml.safe_dump(spec))
    return path


def test_keys_from_files_reach_the_provider_and_never_the_logs(
    kit_env: dict[str, str], tmp_path: Path
) -> None:
    gateway_key = create_gateway_key(KIT, kit_env, REPO, "--id", "e2e")
    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o700)
    (secrets / "openai").write_text(OPENAI_KEY + "\n")  # `echo key > file` leaves a newline
    (secrets / "anthropic").write_text(LITELLM_KEY)

    with running_fake_upstream(FakeUpstream()) as upstream:
        assert upstream.base_url is not None
        env = kit_env | {
            "KIT_LOG_LEVEL": "DEBUG",
            "KIT_LOG_FORMAT": "json",
            "GATEWAY_LOG_PROMPTS": "true",
            "GATEWAY_MODELS_FILE": str(write_models(tmp_path / "models.yaml", upstream.base_url)),
            "OPENAI_API_KEY_FILE": str(secrets / "openai"),
            "ANTHROPIC_API_KEY_FILE": str(secrets / "anthropic"),
        }
        log_path = tmp_path / "gateway.log"
        auth = {"authorization": f"Bearer {gateway_key}"}
        body = {"model": "cloud", "messages": [{"role": "user", "content": "Hello?"}]}
        with kit_service(KIT, "gateway", env, log_path, cwd=REPO) as served:
            base = served.url
            upstream.default = ok("Hi there.")
            answered = httpx.post(
                f"{base}/v1/chat/completions", headers=auth, json=body, timeout=30
            )
            # Each deployment refuses, echoing the key it was sent.
            upstream.script(
                error(401, f"Incorrect API key provided: {OPENAI_KEY}."),
                error(401, f"invalid x-api-key {LITELLM_KEY}"),
            )
            refused = httpx.post(
                f"{base}/v1/chat/completions",
                headers=auth,
                json=body | {"messages": [{"role": "user", "content": "Again?"}]},
                timeout=30,
            )
            wrong_key = httpx.post(
                f"{base}/v1/chat/completions",
                headers={"authorization": f"Bearer {gateway_key}x"},
                json=body,
                timeout=30,
            )

    assert answered.status_code == 200, answered.text
    sent = upstream.requests[0].headers["authorization"]
    assert sent == f"Bearer {OPENAI_KEY}"  # the file's content, without its newline
    assert refused.status_code >= 400 and wrong_key.status_code == 401, refused.text

    log = log_path.read_text()
    assert "model_request" in log  # the DEBUG log with prompts was written, and searched
    assert all(line.startswith("{") for line in log.splitlines())  # JSON lines, nothing raw
    assert "[REDACTED]" in log, refused.text  # the upstream's echo of a key was logged, masked
    for leaked in (OPENAI_KEY, LITELLM_KEY, gateway_key, f"{gateway_key}x"):
        assert leaked not in log
        assert leaked not in refused.text
    keys_file = Path(kit_env["KIT_DATA_DIR"]) / "gateway-keys.yaml"
    assert gateway_key not in keys_file.read_text()  # stored as a hash
