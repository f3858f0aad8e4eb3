"""The project's own files hold together: layout, Makefile help, README commands, compose schema."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
CHECK_JSONSCHEMA = str(Path(sys.executable).with_name("check-jsonschema"))


def test_the_layout_fixed_by_the_design_card_exists() -> None:
    for folder in ("services", "pipelines", "deploy", "notebooks", "tests", "data", "docs"):
        assert (REPO / folder).is_dir(), folder
    for name in (
        "Makefile",
        "docker-compose.yml",
        "README.md",
        "pyproject.toml",
        ".env.example",
        "constraints.txt",
        ".ci/run",
    ):
        assert (REPO / name).is_file(), name


def test_make_help_lists_every_target_with_a_line() -> None:
    output = subprocess.run(
        ["make", "--no-print-directory", "help"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout

    listed = {line.split()[0] for line in re.sub(r"\x1b\[[0-9;]*m", "", output).splitlines()}
    assert {
        "setup",
        "demo",
        "test",
        "test-unit",
        "test-integration",
        "test-e2e",
        "lint",
        "clean",
        "help",
    } <= listed


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci/run").read_text()

    assert "make demo" in readme and "make test" in readme
    commands = [line.strip() for line in ci.splitlines() if line.strip().startswith("make ")]
    assert commands == ["make lint", "make test"]


def test_every_direct_dependency_is_pinned_in_the_constraints() -> None:
    constraints = dict(
        line.split("==", 1)
        for line in (REPO / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    normalise = lambda name: re.sub(r"[-_.]+", "-", name).lower()  # noqa: E731
    pinned = {normalise(k): v for k, v in constraints.items()}
    pyproject = (REPO / "pyproject.toml").read_text()

    for name, version in re.findall(r'^\s+"([A-Za-z0-9_.-]+)==([^";]+)', pyproject, re.M):
        if normalise(name) == "setuptools":
            continue  # a build requirement, installed into pip's isolated build environment
        assert pinned.get(normalise(name)) == version, f"{name}=={version} vs constraints.txt"


def test_docker_compose_follows_the_compose_specification() -> None:
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("check-jsonschema")),
            "--builtin-schema",
            "vendor.compose-spec",
            str(REPO / "docker-compose.yml"),
        ],
        capture_output=True,
        text=True,
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_github_ci_runs_the_same_commands_and_audits_the_pins() -> None:
    for schema, path in [
        ("vendor.github-workflows", ".github/workflows/ci.yml"),
        ("vendor.dependabot", ".github/dependabot.yml"),
    ]:
        result = subprocess.run(
            [CHECK_JSONSCHEMA, "--builtin-schema", schema, str(REPO / path)],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stdout + result.stderr

    jobs = yaml.safe_load((REPO / ".github/workflows/ci.yml").read_text())["jobs"]
    runs = {
        name: [step["run"] for step in job["steps"] if "run" in step] for name, job in jobs.items()
    }
    assert runs["test"] == ["bash .ci/run"] and runs["audit"] == ["make audit"]
    assert runs["scan-kit-images"][0] == "make images IMAGE_TAG=scan"  # as a developer builds
    dry_run = subprocess.run(
        ["make", "--no-print-directory", "-n", "audit", "AUDIT_IGNORE=GHSA-xxxx-yyyy-zzzz"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    command = " ".join(dry_run.replace("\\\n", " ").split())
    for option in ("pip-audit --requirement constraints.txt", "--strict", "--ignore-vuln GHSA-"):
        assert option in command, option


def test_setup_is_up_to_date_after_it_ran() -> None:
    # `make test` ran `make setup` before these tests, so a second setup must have nothing to do
    # (`make -q` exits 0 when a target is up to date, without running anything).
    result = subprocess.run(["make", "-q", "setup"], cwd=REPO, capture_output=True, text=True)

    assert result.returncode == 0, "make setup would run again: its stamp is older than its inputs"


TRIVY = re.compile(r"aquasecurity/trivy-action@[0-9a-f]{40}$")  # a commit, which cannot move


def test_ci_scans_every_image_the_kit_builds_or_compose_runs() -> None:
    jobs = yaml.safe_load((REPO / ".github/workflows/ci.yml").read_text())["jobs"]
    scanned: set[str] = set()
    for name in ("scan-kit-images", "scan-compose-images"):
        job = jobs[name]
        matrix = job.get("strategy", {}).get("matrix", {}).get("image", [])
        for step in job["steps"]:
            if "trivy-action" not in step.get("uses", ""):
                continue
            assert TRIVY.match(step["uses"]), f"{name}: pin Trivy's action to a commit SHA"
            options = step["with"]
            # Fails on what can be fixed and matters: CRITICAL and HIGH with a released fix.
            assert options["severity"] == "CRITICAL,HIGH"
            assert options["ignore-unfixed"] is True and options["exit-code"] == "1"
            assert options["version"] == "v0.69.3"  # v0.69.4-v0.69.6 were malicious builds
            ref = options["image-ref"]
            scanned |= set(matrix) if ref == "${{ matrix.image }}" else {ref}

    # What `make images IMAGE_TAG=scan` and the MLflow build tag, as a dry run of make prints it.
    dry_run = subprocess.run(
        ["make", "--no-print-directory", "-n", "images", "IMAGE_TAG=scan"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    builds = " ".join(step.get("run", "") for step in jobs["scan-kit-images"]["steps"])
    built = set(re.findall(r"-t (\S+)", dry_run + builds))
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    third_party = {s["image"] for s in compose.values() if "build" not in s}
    assert scanned == built | third_party
    assert "ai-engineering-kit/mlflow:scan" in built  # compose builds it: scanned like ours


def test_dependabot_updates_the_images_compose_runs_and_the_mlflow_base() -> None:
    config = yaml.safe_load((REPO / ".github/dependabot.yml").read_text())
    updates = {(u["package-ecosystem"], u.get("directory")) for u in config["updates"]}
    assert ("docker-compose", "/") in updates  # docker-compose.yml at the root
    assert ("docker", "/deploy/mlflow") in updates
    # Dependabot reads a literal FROM only: the MLflow Dockerfile must name its image directly.
    dockerfile = (REPO / "deploy/mlflow/Dockerfile").read_text()
    assert re.search(r"^FROM ghcr\.io/mlflow/mlflow:v\d+\.\d+\.\d+$", dockerfile, re.M)


def test_security_md_cites_files_that_exist_and_every_attack_test() -> None:
    """SECURITY.md's table says where each default lives and which test proves it: every path it
    names must exist, and every attack test must be cited, so the page cannot drift from the code.
    """
    text = (REPO / "SECURITY.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| **")]
    cited = {
        path.rstrip("/")
        for row in rows
        for path in re.findall(r"`([A-Za-z_.-]+/[A-Za-z0-9_./-]+)`", row)
        if not path.startswith("/")
    }

    assert len(rows) >= 25
    assert {path for path in cited if not (REPO / path).exists()} == set()
    attacks = {
        f"tests/e2e/attacks/{p.name}" for p in (REPO / "tests/e2e/attacks").glob("test_*.py")
    }
    assert attacks - cited == set(), "cite each attack test in SECURITY.md"
    every_row_has_a_test = all("tests/" in row.split("|")[4] for row in rows)
    assert every_row_has_a_test, "each default names the test that proves it"
