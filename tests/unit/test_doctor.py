"""`kit doctor`'s checks, each asserting the verdict and the fix it gives."""

from __future__ import annotations

from pathlib import Path

from kit.cli.doctor import (
    Status,
    check_dirs,
    check_packages,
    check_servers,
    pinned_requirements,
    run_checks,
)
from kit.core.settings import KitSettings
from tests.support.servers import free_port


def test_pins_are_read_from_the_installed_metadata_by_extra() -> None:
    groups = pinned_requirements()

    names = {extra: {r.name for r in requirements} for extra, requirements in groups.items()}
    assert "pydantic-settings" in names[""]
    assert "litellm" in names["gateway"]
    assert "torch" in names["local"]
    assert "qdrant-client" in names["rag"]
    assert all(str(r.specifier).startswith("==") for rs in groups.values() for r in rs)


def test_the_full_install_matches_its_pins() -> None:
    # `make setup` installs every extra, so every group must be exactly as pinned.
    assert {(c.name, c.status) for c in check_packages()} >= {
        ("core", Status.OK),
        ("gateway", Status.OK),
        ("local", Status.OK),
        ("rag", Status.OK),
    }


def test_servers_left_unset_are_embedded_mode_not_failures(settings: KitSettings) -> None:
    checks = {check.name: check for check in check_servers(settings)}

    assert {c.status for c in checks.values()} == {Status.INFO}
    assert "local mode" in checks["qdrant"].detail
    assert "sqlite" in checks["mlflow"].detail


def test_an_unreachable_server_fails_with_a_fix(settings: KitSettings) -> None:
    port = free_port()  # nothing listens there
    configured = settings.model_copy(
        update={
            "gateway_url": f"http://127.0.0.1:{port}",
            "mlflow_tracking_uri": f"http://127.0.0.1:{port}",
            "probe_timeout_s": 0.5,
        }
    )

    checks = {check.name: check for check in check_servers(configured)}

    assert checks["gateway"].status is Status.FAIL
    assert "unreachable" in checks["gateway"].detail
    assert "GATEWAY_URL" in checks["gateway"].fix
    assert checks["mlflow"].status is Status.FAIL
    assert "MLFLOW_TRACKING_URI" in checks["mlflow"].fix


def test_an_unwritable_data_dir_fails_and_names_the_variable(
    settings: KitSettings, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    broken = settings.model_copy(update={"data_dir": blocker / "data"})

    data = next(c for c in check_dirs(broken) if c.name == "data dir")

    assert data.status is Status.FAIL
    assert "KIT_DATA_DIR" in data.fix


def test_invalid_settings_fail_the_doctor_with_the_message() -> None:
    checks = run_checks(None, "KIT_LOG_LEVEL='LOUD': bad", load=False)

    failed = [c for c in checks if c.status is Status.FAIL]
    assert [(c.area, c.detail) for c in failed] == [("settings", "KIT_LOG_LEVEL='LOUD': bad")]
