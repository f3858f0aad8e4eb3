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
    commands = [line.split("#")[0].strip() for line in ci.splitlines() if line.startswith("make ")]
    assert commands == ["make lint", "make test", "make test-all"]


def test_ci_refuses_a_stage_it_does_not_know_before_installing_anything() -> None:
    result = subprocess.run(
        ["bash", str(REPO / ".ci/run"), "everything"], capture_output=True, text=True
    )

    assert result.returncode == 2
    assert "usage: bash .ci/run [all|fast]" in result.stderr


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
    assert runs["test"] == ["bash .ci/run fast"] and runs["test-all"] == ["bash .ci/run"]
    assert runs["audit"] == ["make audit"]
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


def test_the_readme_extras_table_matches_pyproject() -> None:
    """Every extra pyproject.toml defines has a row, and each row's "`a` + `b`" names exactly the
    extras it pulls in, so the table cannot drift from what `pip install ".[x]"` installs."""
    import tomllib

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("| extra | what it adds |") :].split("\n\n", 1)[0]
    rows = {
        match.group(1): match.group(2)
        for match in re.finditer(r"^\| `([a-z]+)` \| (.*) \|$", table, re.M)
    }

    assert set(rows) == set(extras)
    for name, text in rows.items():
        pulled = {
            part.strip()
            for requirement in extras[name]
            if requirement.startswith("ai-engineering-kit[")
            for part in requirement.split("[", 1)[1].rstrip("]").split(",")
        }
        # The row's leading "`a` + `b` + ..." run: the extras it includes.
        leading = re.match(r"((?:`[a-z]+` \+ )*`[a-z]+`)(?= \+|$)", text)
        said = set(re.findall(r"`([a-z]+)`", leading.group(1))) if leading else set()
        assert said == pulled, (name, said, pulled)


def test_the_readme_layout_matches_the_tree() -> None:
    """Each entry of the README's layout block exists, and every part of the package and every
    top-level folder is listed: the map a newcomer reads first cannot go stale."""
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Layout") :]
    block = section[section.index("```\n") + 4 : section.index("\n```", section.index("```\n") + 4)]
    listed_kit, listed_top, parent = set(), set(), None
    for line in block.splitlines():
        name = line.split()[0] if line.strip() and not line.startswith(" " * 19) else None
        if name is None:
            continue
        if not line.startswith(" "):
            parent = name
            listed_top.add(name.rstrip("/"))
        elif parent == "src/kit/":
            listed_kit.add(name.rstrip("/").removesuffix(".py"))

    package = REPO / "src" / "kit"
    parts = {p.name for p in package.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    parts |= {p.stem for p in package.glob("*.py") if p.stem != "__init__"}
    assert listed_kit == parts
    assert all((REPO / name).exists() for name in listed_top), listed_top
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    folders = {path.split("/")[0] for path in tracked if "/" in path and not path.startswith(".")}
    assert folders <= {name.split("/")[0] for name in listed_top}
