"""The `kit` command: help, version, and errors shown as messages with the right exit code."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from kit.cli.app import app

runner = CliRunner()


def test_help_lists_the_commands() -> None:
    result = runner.invoke(app, ["--help"])

    assert result.exit_code == 0
    assert "doctor" in result.output and "models" in result.output


def test_version() -> None:
    result = runner.invoke(app, ["--version"])

    assert result.exit_code == 0
    assert result.output.startswith("kit 0.")


def test_an_invalid_setting_is_a_message_and_exit_code_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIT_CHAT_THREADS", "many")

    result = runner.invoke(app, ["models", "chat", "hello"])

    assert result.exit_code == 2
    assert "KIT_CHAT_THREADS='many'" in result.output
    assert "Traceback" not in result.output


def test_doctor_reports_invalid_settings_as_a_failed_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KIT_LOG_LEVEL", "LOUD")

    result = runner.invoke(app, ["doctor", "--no-load", "--json"])

    assert result.exit_code == 1
    checks = json.loads(result.stdout)
    settings_check = next(c for c in checks if c["area"] == "settings")
    assert settings_check["status"] == "fail"
    assert "KIT_LOG_LEVEL='LOUD'" in settings_check["detail"]


def test_importing_the_cli_loads_no_model_library() -> None:
    # Loading is lazy: `kit --help` must not pay for torch or llama.cpp. A fresh interpreter,
    # because this test process may have imported them already.
    code = (
        "import sys, kit.cli.app, kit.llm.local_client;"
        "print(sorted(m for m in ('torch', 'llama_cpp', 'transformers', 'sentence_transformers',"
        " 'litellm', 'mlflow', 'qdrant_client') if m in sys.modules))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout

    assert output.strip() == "[]"


def test_the_rag_service_wiring_imports_no_gateway_code() -> None:
    # The RAG image installs the `rag` extra, not the gateway's (LiteLLM, aiohttp): `kit serve
    # rag` with a GATEWAY_URL must start there. The gateway is imported only to embed one.
    code = (
        "import sys, kit.runtime, kit.cli.serve;"
        "print(sorted(m for m in ('kit.gateway', 'litellm', 'aiohttp') if m in sys.modules))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout

    assert output.strip() == "[]"
