"""The Kubernetes manifests in deploy/k8s, rendered with kustomize and checked offline.

Each overlay is rendered as a user renders it (`kubectl kustomize`, after copying the example
secrets into the overlay), then:
- every object is validated against the Kubernetes API's JSON schemas, strictly (an unknown or
  misspelt field fails), for the oldest and the newest Kubernetes version the manifests claim;
- the Deployments agree with the code: the command is one `kit` accepts, the probes hit routes
  the services define, on the port the container listens on, the Service targets and Prometheus
  scrapes; the ConfigMaps hold only variables the settings classes read, with values they accept;
- the production overlay is highly available, and no real secret is checked in.
Every overlay is checked twice: as shipped (the RAG service on Qdrant), and with the opt-in
Postgres component turned on (components/pgvector), which must pass the same checks and its own:
Postgres's pod locked down like the kit's, its password and DATABASE_URL from a Secret only, the
image compose runs, and nothing of it in the default render.

No cluster is needed: kubectl's built-in kustomize (v5, kubectl 1.27+) renders, and the
`kubernetes-validate` package ships the schemas.
"""

from __future__ import annotations

import base64
import re
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import typer
import yaml
from pydantic import SecretStr

from kit.cli.app import app as kit_cli
from kit.core.errors import ConfigError
from kit.core.settings import (
    PLACEHOLDER_SECRETS,
    KitSettings,
    env_name,
    env_names,
    load_settings,
)
from kit.gateway.config import ModelsFile
from kit.gateway.routes.health import router as gateway_health
from kit.gateway.settings import GatewaySettings
from kit.rag_service.routes.health import router as rag_health
from kit.rag_service.settings import RagSettings
from tests.integration.k8s_render import (
    K8S,
    NAMESPACE,
    OVERLAYS,
    PGVECTOR_LINES,
    ROOT,
    Manifest,
    Render,
    render_overlays,
    unhashed,
)
from tests.support.servers import require_tool

# The oldest Kubernetes the manifests are written for (topology spread's matchLabelKeys and the
# PDB's unhealthyPodEvictionPolicy are on by default from 1.27), and the newest whose schemas
# kubernetes-validate ships. Strict schemas: an unknown field is an error, as in `kubectl apply
# --validate=strict`.
KUBERNETES_VERSIONS = ("1.30", "1.37")

# Which settings class reads each container's environment, and the routes it serves.
SETTINGS: dict[str, type[KitSettings]] = {"gateway": GatewaySettings, "rag": RagSettings}
ROUTES = {
    "gateway": {route.path for route in gateway_health.routes},
    "rag": {route.path for route in rag_health.routes},
}
# Each service's API keys: the setting naming the file, and the Secret mounted as its folder.
KEYS = {"gateway": ("GATEWAY_KEYS_FILE", "gateway-keys"), "rag": ("RAG_KEYS_FILE", "rag-keys")}
# Secrets that are not kit settings: MLflow's client reads its login from these two by itself.
MLFLOW_LOGIN = {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"}
# The RAG service's stores: as shipped (Qdrant), and with the pgvector component turned on.
STORES = ("qdrant", "pgvector")
# Postgres's own secret (the postgres image reads it), next to the RAG service's DATABASE_URL.
POSTGRES_SERVER_SECRETS = {"POSTGRES_PASSWORD"}


@pytest.fixture(scope="module")
def all_renders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Render]]:
    """Each overlay rendered as a user renders it, with the example secrets filled in: once as
    shipped, once with the pgvector component turned on as the overlay's comments say."""
    return {
        store: render_overlays(
            tmp_path_factory.mktemp(f"k8s-{store}"), pgvector=store == "pgvector"
        )
        for store in STORES
    }


@pytest.fixture(scope="module", params=STORES)
def store(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(scope="module")
def renders(all_renders: dict[str, dict[str, Render]], store: str) -> dict[str, Render]:
    """The overlays of one store: every test that takes this runs for both."""
    return all_renders[store]


# --- Helpers that read the rendered objects --------------------------------------------------


def pod_spec(deployment: Manifest) -> Manifest:
    spec: Manifest = deployment["spec"]["template"]["spec"]
    return spec


def the_container(deployment: Manifest) -> Manifest:
    containers = pod_spec(deployment)["containers"]
    assert len(containers) == 1, "one container per pod: one process, one model in memory"
    container: Manifest = containers[0]
    return container


def container_port(container: Manifest, port: int | str) -> int:
    """The number of a container port given by number or by name."""
    for declared in container["ports"]:
        if port in (declared["containerPort"], declared.get("name")):
            number: int = declared["containerPort"]
            return number
    raise AssertionError(f"{container['name']} declares no port {port!r}")


def environment(render: Render, container: Manifest, *, with_secrets: bool) -> dict[str, str]:
    """The variables a container gets from its ConfigMaps (and Secrets), as Kubernetes sets them."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env |= render.get("ConfigMap", source["configMapRef"]["name"]).get("data", {})
        elif "secretRef" in source and with_secrets:
            data = render.get("Secret", source["secretRef"]["name"]).get("data", {})
            env |= {k: base64.b64decode(v).decode() for k, v in data.items()}
    if with_secrets:  # single keys of a Secret (valueFrom.secretKeyRef), such as DATABASE_URL
        for variable, (secret, key) in secret_key_refs(container).items():
            env[variable] = base64.b64decode(render.get("Secret", secret)["data"][key]).decode()
    return env


def secret_key_refs(container: Manifest) -> dict[str, tuple[str, str]]:
    """Variables set from one key of a Secret: name -> (Secret, key)."""
    refs = {}
    for variable in container.get("env", []):
        ref = variable.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            refs[variable["name"]] = (ref["name"], ref["key"])
    return refs


def literal_variables(container: Manifest) -> dict[str, str]:
    """Variables written into the pod spec itself (`value:`), not taken from elsewhere."""
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def configmap_variables(render: Render, container: Manifest) -> set[str]:
    return set(environment(render, container, with_secrets=False))


def secret_variables(render: Render, container: Manifest) -> set[str]:
    names = {s["secretRef"]["name"] for s in container.get("envFrom", []) if "secretRef" in s}
    whole = {key for name in names for key in render.get("Secret", name).get("data", {})}
    return whole | set(secret_key_refs(container))


def models_file_variables() -> set[str]:
    """Variables the gateway's models file names (provider keys and base URLs)."""
    path = GatewaySettings.model_fields["models_file"].default
    spec = ModelsFile.model_validate(yaml.safe_load(Path(path).read_text()))
    return {
        variable
        for deployment in spec.deployments.values()
        for variable in (deployment.api_key_env, deployment.api_base_env)
        if variable
    }


def secret_fields(cls: type[KitSettings]) -> set[str]:
    """The environment variables of a settings class that hold a SecretStr."""
    secret_types = (SecretStr, SecretStr | None)
    return {env_name(cls, f) for f, i in cls.model_fields.items() if i.annotation in secret_types}


def is_placeholder(value: str) -> bool:
    """An example secret: a placeholder ("changeme", empty), or a URL whose password is one."""
    if value.strip().lower() in PLACEHOLDER_SECRETS:
        return True
    password = urlsplit(value).password if "://" in value else None
    return password is not None and password.lower() in PLACEHOLDER_SECRETS


def cores(quantity: str) -> float:
    return int(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def bytes_(quantity: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 10**3, "M": 10**6, "G": 10**9}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return int(float(quantity.removesuffix(suffix)) * factor)
    return int(quantity)


def kit_options(argv: list[str]) -> dict[str, Any]:
    """The options `kit` parses from a container command; raises on an unknown command or flag."""
    assert argv[0] == "kit", f"the container runs {argv[0]!r}, not the kit's CLI"
    command = typer.main.get_command(kit_cli)
    args = list(argv[1:])
    name = argv[0]
    while hasattr(command, "get_command"):  # a group: `kit`, `kit serve`
        name = args.pop(0)
        found = command.get_command(typer.Context(command), name)
        assert found is not None, f"`kit` has no command {name!r}"
        command = found
    params: dict[str, Any] = command.make_context(name, args).params
    return params


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


def deployments(render: Render) -> Iterator[tuple[str, Manifest, Manifest]]:
    """(service name, Deployment, its container) for each of the kit's services."""
    found = render.all("Deployment")
    assert sorted(d["metadata"]["name"] for d in found) == sorted(SETTINGS)
    for deployment in found:
        container = the_container(deployment)
        assert container["name"] in SETTINGS, f"unknown container {container['name']}"
        yield container["name"], deployment, container


# --- The tests -------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_overlay_renders_every_part_into_its_namespace(
    renders: dict[str, Render], overlay: str
) -> None:
    render = renders[overlay]
    kinds = {(o["kind"], unhashed(o["metadata"]["name"])) for o in render.objects}

    assert render.warnings == "", f"kustomize warned (deprecated fields?):\n{render.warnings}"
    for name in SETTINGS:
        for kind in ("Deployment", "Service", "PodDisruptionBudget"):
            assert (kind, name) in kinds
        assert ("ConfigMap", f"{name}-config") in kinds
        assert ("Secret", f"{name}-secrets") in kinds
        assert ("Secret", KEYS[name][1]) in kinds
    for external in ("qdrant", "redis", "mlflow"):
        assert render.get("Service", external)["spec"]["type"] == "ExternalName"
    assert ("ConfigMap", "kit-common") in kinds
    assert ("NetworkPolicy", "default-deny-all") in kinds  # tests/.../test_k8s_network_policies.py
    namespace = render.get("Namespace", NAMESPACE[overlay])
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    for manifest in render.objects:
        if manifest["kind"] != "Namespace":
            assert manifest["metadata"]["namespace"] == NAMESPACE[overlay], manifest["kind"]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_is_valid_against_the_kubernetes_schemas(
    renders: dict[str, Render], overlay: str, version: str
) -> None:
    problems = []
    for manifest in renders[overlay].objects:
        name = f"{manifest['kind']}/{manifest['metadata']['name']}"
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(part) for part in exc.path)
            problems.append(f"{name}: {where}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:  # a kind this version lacks
            problems.append(f"{name}: {exc.message}")
    assert not problems, f"invalid for Kubernetes {version}:\n" + "\n".join(problems)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_services_and_scraping_use_the_port_the_kit_serves_on(
    renders: dict[str, Render], overlay: str
) -> None:
    render = renders[overlay]
    for name, deployment, container in deployments(render):
        # The container runs the command a developer runs, and `kit` accepts its flags.
        assert container["command"][:3] == ["kit", "serve", name]
        options = kit_options(container["command"])
        assert options["host"] == "0.0.0.0", "in a pod the service must listen on all interfaces"
        port = options["port"]
        assert container_port(container, "http") == port

        probes = {kind: container[f"{kind}Probe"]["httpGet"] for kind in ("startup", "liveness")}
        probes["readiness"] = container["readinessProbe"]["httpGet"]
        assert probes["readiness"]["path"] == "/readyz"  # models loaded, backends reachable
        assert probes["liveness"]["path"] == "/healthz"  # the process only: no restart loops
        assert probes["startup"]["path"] == "/healthz"
        for kind, probe in probes.items():
            assert probe["path"] in ROUTES[name], f"{name} has no route {probe['path']}"
            assert container_port(container, probe["port"]) == port, f"{name} {kind} probe"

        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selects(deployment["spec"]["selector"]["matchLabels"], labels)
        service = render.get("Service", name)
        assert service["spec"]["type"] == "ClusterIP"
        assert selects(service["spec"]["selector"], labels)
        [service_port] = service["spec"]["ports"]
        assert container_port(container, service_port["targetPort"]) == port
        assert service_port["port"] == port, "clients use the same port in and out of a cluster"

        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == str(port)
        assert annotations["prometheus.io/path"] == "/metrics"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_containers_run_as_non_root_on_a_read_only_filesystem(
    renders: dict[str, Render], overlay: str
) -> None:
    render = renders[overlay]
    for name, deployment, container in deployments(render):
        pod = pod_spec(deployment)
        security = pod["securityContext"] | container["securityContext"]  # container wins
        assert security["runAsNonRoot"] is True
        assert security["runAsUser"] != 0
        assert security["allowPrivilegeEscalation"] is False
        assert security["readOnlyRootFilesystem"] is True
        assert security["capabilities"] == {"drop": ["ALL"]}
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        # Docker-link variables would set GATEWAY_PORT / RAG_PORT to "tcp://IP:PORT".
        assert pod["enableServiceLinks"] is False, f"{name}: service links clash with settings"

        # Everything the kit writes is on a volume, since the root filesystem is read-only.
        env = environment(render, container, with_secrets=False)
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        for path in ("/tmp", env["KIT_DATA_DIR"], env["KIT_CACHE_DIR"]):
            assert path in mounts, f"{name}: nothing writable at {path}"
            assert "emptyDir" in volumes[mounts[path]]
        # The API keys file is a Secret, mounted read-only where the setting names it.
        variable, volume = KEYS[name]
        keys_file = Path(env[variable])
        assert mounts[str(keys_file.parent)] == volume
        secret = volumes[volume]["secret"]["secretName"]
        assert keys_file.name in render.get("Secret", secret)["data"]
        assert {m["name"]: m for m in container["volumeMounts"]}[volume]["readOnly"] is True


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_resources_are_set_and_thread_counts_fit_the_cpu_limit(
    renders: dict[str, Render], overlay: str
) -> None:
    render = renders[overlay]
    for name, _, container in deployments(render):
        requests = container["resources"]["requests"]
        limits = container["resources"]["limits"]
        assert cores(requests["cpu"]) <= cores(limits["cpu"]), name
        assert bytes_(requests["memory"]) <= bytes_(limits["memory"]), name
        # The local models need about 1 GB resident (see the Deployments' comments).
        assert bytes_(limits["memory"]) >= 2**30, name

        # 0 threads would mean "every core of the node", throttled by the CPU limit.
        env = environment(render, container, with_secrets=False)
        inline = literal_variables(container)
        threads = {"OMP_NUM_THREADS": inline["OMP_NUM_THREADS"]}
        if name == "gateway":
            threads["KIT_CHAT_THREADS"] = env["KIT_CHAT_THREADS"]
        for variable, value in threads.items():
            assert 1 <= int(value) <= cores(limits["cpu"]), f"{name}: {variable}={value}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_configmaps_hold_only_settings_the_services_read_with_valid_values(
    renders: dict[str, Render], overlay: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    render = renders[overlay]
    for name, _, container in deployments(render):
        cls = SETTINGS[name]
        known = set(env_names(cls).values())
        if name == "gateway":
            known |= models_file_variables()
        unknown = configmap_variables(render, container) - known
        assert not unknown, f"{name} reads no variable named {sorted(unknown)}"
        inline = set(literal_variables(container))
        assert not inline & set(env_names(cls).values()), "settings belong in the ConfigMaps"
        allowed_secrets = secret_fields(cls) | (
            models_file_variables() | MLFLOW_LOGIN if name == "gateway" else set()
        )
        assert secret_variables(render, container) <= allowed_secrets
        # A value that carries a password never sits in a ConfigMap (readable by more roles,
        # shown by `kubectl describe`): REDIS_URL and DATABASE_URL come from Secrets.
        assert not {"REDIS_URL", "DATABASE_URL"} & configmap_variables(render, container)

        # The values are ones the settings class accepts (types, bounds, URLs).
        with monkeypatch.context() as env:
            for variable, value in environment(render, container, with_secrets=False).items():
                env.setenv(variable, value)
            settings = load_settings(cls, _env_file=None)
        expected = "production" if overlay == "production" else "development"
        assert settings.environment == expected
        assert settings.qdrant_url is not None, "in a cluster, the index lives in Qdrant"
        assert isinstance(settings, GatewaySettings | RagSettings)
        assert settings.auth == "keys", f"{name} must require an API key"
        if isinstance(settings, RagSettings):
            assert settings.gateway_url is not None, "else each RAG pod runs its own gateway"
        if name == "gateway":  # replicas share cache and limits in Redis: its URL is a secret
            assert "REDIS_URL" in secret_variables(render, container)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_url_in_the_config_names_a_service_of_the_overlay(
    renders: dict[str, Render], overlay: str, store: str
) -> None:
    render = renders[overlay]
    urls = {"QDRANT_URL", "REDIS_URL", "MLFLOW_TRACKING_URI", "GATEWAY_URL"}
    if store == "pgvector":
        urls.add("DATABASE_URL")  # postgresql://kit:...@postgres:5432/kit
    seen = set()
    for _, _, container in deployments(render):
        for variable, value in environment(render, container, with_secrets=True).items():
            if variable in urls:
                seen.add(variable)
                url = urlsplit(value)
                service = render.get("Service", url.hostname or "")
                assert url.port in {p["port"] for p in service["spec"]["ports"]}, value
    assert seen == urls
    gateway = render.get("Service", "gateway")
    assert selects(gateway["spec"]["selector"], {"app.kubernetes.io/name": "gateway"})


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_autoscalers_and_disruption_budgets_match_the_deployments(
    renders: dict[str, Render], overlay: str
) -> None:
    render = renders[overlay]
    names = {d["metadata"]["name"] for d in render.all("Deployment")}
    for hpa in render.all("HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]
        assert (target["apiVersion"], target["kind"]) == ("apps/v1", "Deployment")
        assert target["name"] in names, f"HPA {hpa['metadata']['name']} scales nothing"
        deployment = render.get("Deployment", target["name"])
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        assert deployment["spec"]["replicas"] == hpa["spec"]["minReplicas"]
        # CPU utilization is measured against the request: without one the HPA cannot scale.
        assert "cpu" in the_container(deployment)["resources"]["requests"]
        [metric] = hpa["spec"]["metrics"]
        assert metric["resource"]["name"] == "cpu"

    for pdb in render.all("PodDisruptionBudget"):
        spec = pdb["spec"]
        assert ("minAvailable" in spec) != ("maxUnavailable" in spec), "exactly one of the two"
        matched = [
            d
            for d in render.all("Deployment")
            if selects(spec["selector"]["matchLabels"], d["spec"]["template"]["metadata"]["labels"])
        ]
        assert len(matched) == 1, f"PDB {pdb['metadata']['name']} covers {len(matched)} apps"
        fewest = matched[0]["spec"]["replicas"]
        if "minAvailable" in spec:  # else a node drain could never evict a pod
            assert spec["minAvailable"] < fewest


def test_production_is_highly_available(renders: dict[str, Render]) -> None:
    render = renders["production"]
    for name, deployment, container in deployments(render):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["replicas"] >= 3
        hpa = render.get("HorizontalPodAutoscaler", name)
        assert hpa["spec"]["minReplicas"] >= 3
        assert hpa["spec"]["maxReplicas"] == 10
        assert render.get("PodDisruptionBudget", name)["spec"] == {
            "minAvailable": 2,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        }
        spread = {c["topologyKey"]: c for c in pod_spec(deployment)["topologySpreadConstraints"]}
        assert spread["kubernetes.io/hostname"]["whenUnsatisfiable"] == "DoNotSchedule"
        assert "topology.kubernetes.io/zone" in spread
        for constraint in spread.values():
            assert selects(constraint["labelSelector"]["matchLabels"], labels)
        resources = container["resources"]
        assert resources["requests"]["memory"] == resources["limits"]["memory"], name


def test_dev_runs_one_replica_without_autoscaling(renders: dict[str, Render]) -> None:
    render = renders["dev"]
    for _, deployment, _ in deployments(render):
        assert deployment["spec"]["replicas"] == 1
    assert render.all("HorizontalPodAutoscaler") == []


# Each service's example secrets as copied, the setting that refuses them first, and real values.
REAL_SECRETS = {
    "gateway": (
        "REDIS_URL",
        {
            "REDIS_URL": f"redis://default:{secrets.token_urlsafe(24)}@redis:6379/0",
            "QDRANT_API_KEY": secrets.token_urlsafe(32),
        },
    ),
    "rag": (
        "GATEWAY_API_KEY",
        {
            "GATEWAY_API_KEY": "sk-kit-" + secrets.token_urlsafe(32),
            "QDRANT_API_KEY": secrets.token_urlsafe(32),
            # Read with the pgvector component (KIT_STORE=pgvector); ignored on Qdrant.
            "DATABASE_URL": f"postgresql://kit:{secrets.token_urlsafe(24)}@postgres:5432/kit",
        },
    ),
}


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_production_refuses_the_example_secrets_at_start_up(
    renders: dict[str, Render], monkeypatch: pytest.MonkeyPatch, name: str, store: str
) -> None:
    """The kit's own check: a copied example secret cannot reach production users."""
    render = renders["production"]
    container = the_container(render.get("Deployment", name))
    env = environment(render, container, with_secrets=True)
    refused_first, real = REAL_SECRETS[name]
    if name == "rag" and store == "pgvector":  # the URL's own check runs before the others
        refused_first = "DATABASE_URL"
    assert is_placeholder(env[refused_first])  # the example, as copied

    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=f"{refused_first}.*placeholder") as refused:
        load_settings(SETTINGS[name], _env_file=None)
    assert "changeme" not in str(refused.value), "the message must not repeat the secret"
    for variable, value in real.items():
        monkeypatch.setenv(variable, value)
    assert load_settings(SETTINGS[name], _env_file=None).environment == "production"


def test_no_real_secret_is_checked_in() -> None:
    git = require_tool("git", "apt-get install git")
    tracked = subprocess.run(
        [git, "ls-files", "--cached", "--others", "--exclude-standard", "--", str(K8S)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    # No Secret objects in the tree: Secrets are generated from git-ignored files only.
    for path in (ROOT / p for p in tracked if p.endswith((".yaml", ".yml"))):
        for doc in yaml.safe_load_all(path.read_text()):
            assert not (isinstance(doc, dict) and doc.get("kind") == "Secret"), path
    assert not [p for p in tracked if "/secrets/" in p], "an overlay's secrets/ is tracked"
    for overlay in OVERLAYS:
        ignored = subprocess.run(
            [git, "check-ignore", "-q", f"deploy/k8s/overlays/{overlay}/secrets/rag.env"],
            cwd=ROOT,
        )
        assert ignored.returncode == 0, f"overlays/{overlay}/secrets/ is not git-ignored"

    # The examples hold placeholders or nothing, and name only variables the services read
    # (and Postgres's password, which the postgres image reads: postgres.env).
    readable = secret_fields(GatewaySettings) | secret_fields(RagSettings)
    readable |= models_file_variables() | MLFLOW_LOGIN | POSTGRES_SERVER_SECRETS
    for example in (K8S / "secrets.example").glob("*.env"):
        for line in example.read_text().splitlines():
            assignment = re.fullmatch(r"#? ?([A-Z][A-Z0-9_]*)=(\S*)", line.strip())
            if assignment:
                variable, value = assignment.groups()
                assert variable in readable, f"{example.name}: nothing reads {variable}"
                if variable != "MLFLOW_TRACKING_USERNAME":  # a user name, not a secret
                    assert is_placeholder(value), f"{example.name}: {variable}"
    for _, secret in KEYS.values():
        keys = yaml.safe_load((K8S / "secrets.example" / f"{secret}.yaml").read_text())
        assert keys == {"keys": []}, f"the example {secret}.yaml must not let anyone in"


def test_rendered_secrets_carry_placeholders_only(renders: dict[str, Render]) -> None:
    for overlay in OVERLAYS:
        for secret in renders[overlay].all("Secret"):
            for key, value in secret.get("data", {}).items():
                text = base64.b64decode(value).decode()
                if key.endswith("-keys.yaml"):
                    assert yaml.safe_load(text) == {"keys": []}
                elif key != "MLFLOW_TRACKING_USERNAME":
                    assert is_placeholder(text), f"{overlay}: {key}"


# --- Postgres with pgvector (components/pgvector): opt-in, locked down, wired to the RAG service -


def postgres(render: Render) -> tuple[Manifest, Manifest, Manifest]:
    """Postgres's StatefulSet, its pod spec and its container."""
    statefulset = render.get("StatefulSet", "postgres")
    pod = statefulset["spec"]["template"]["spec"]
    [container] = pod["containers"]
    return statefulset, pod, container


def secret_value(render: Render, name: str, key: str) -> str:
    return base64.b64decode(render.get("Secret", name)["data"][key]).decode()


def rag_settings(render: Render, monkeypatch: pytest.MonkeyPatch) -> RagSettings:
    """The RAG service's settings as its pod reads them, with real values for the example
    secrets it has (production refuses placeholders: see the test above)."""
    container = the_container(render.get("Deployment", "rag"))
    rendered = environment(render, container, with_secrets=True)
    real = {k: v for k, v in REAL_SECRETS["rag"][1].items() if k in rendered}
    with monkeypatch.context() as env:
        for variable, value in (rendered | real).items():
            env.setenv(variable, value)
        settings = load_settings(RagSettings, _env_file=None)
    assert isinstance(settings, RagSettings)
    return settings


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_postgres_is_opt_in_and_each_overlay_says_how_to_turn_it_on(
    all_renders: dict[str, dict[str, Render]], overlay: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    render = all_renders["qdrant"][overlay]
    names = {unhashed(o["metadata"]["name"]) for o in render.objects}
    assert not [name for name in names if "postgres" in name], "Postgres is in the default render"
    assert render.all("StatefulSet") == [] and render.all("PersistentVolumeClaim") == []
    rag = the_container(render.get("Deployment", "rag"))
    assert "DATABASE_URL" not in environment(render, rag, with_secrets=True)
    assert rag_settings(render, monkeypatch).store == "qdrant"

    # Shipped off, one uncomment away: the lines that k8s_render.enable_pgvector uncomments.
    text = (K8S / "overlays" / overlay / "kustomization.yaml").read_text()
    assert "components" not in yaml.safe_load(text)
    assert set(PGVECTOR_LINES) <= set(text.splitlines())
    assert (K8S / "components" / "pgvector" / "kustomization.yaml").is_file()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pgvector_moves_the_rag_service_to_postgres_by_its_service_name(
    all_renders: dict[str, dict[str, Render]], overlay: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    render = all_renders["pgvector"][overlay]
    statefulset, _, container = postgres(render)
    settings = rag_settings(render, monkeypatch)
    assert settings.store == "pgvector"
    assert settings.qdrant_url is not None, "the gateway's semantic cache keeps Qdrant"
    assert settings.database_url is not None, "else the kit would start a Postgres in each pod"
    rag = the_container(render.get("Deployment", "rag"))
    url = urlsplit(environment(render, rag, with_secrets=True)["DATABASE_URL"])
    assert url.scheme == "postgresql"

    # DATABASE_URL names Postgres's Service, which selects its pod, on the port it listens on.
    service = render.get("Service", url.hostname or "")
    assert service["spec"]["clusterIP"] == "None", "headless: the StatefulSet's governing Service"
    assert statefulset["spec"]["serviceName"] == service["metadata"]["name"]
    labels = statefulset["spec"]["template"]["metadata"]["labels"]
    assert selects(statefulset["spec"]["selector"]["matchLabels"], labels)
    assert selects(service["spec"]["selector"], labels)
    [port] = service["spec"]["ports"]
    assert url.port == port["port"] == container_port(container, port["targetPort"]) == 5432

    # The user and database initdb creates are the URL's; the password is the server's.
    server = literal_variables(container)
    assert (url.username, url.path) == (server["POSTGRES_USER"], "/" + server["POSTGRES_DB"])
    secret, key = secret_key_refs(rag)["DATABASE_URL"]
    assert (unhashed(secret), key) == ("postgres-secrets", "DATABASE_URL")
    assert url.password == secret_value(render, secret, "POSTGRES_PASSWORD")
    # A Secret, never a ConfigMap or a literal; and the RAG pod gets only its URL, not the
    # server's password, nor the other way round (postgres_runs_locked_down below).
    assert "DATABASE_URL" not in configmap_variables(render, rag) | set(literal_variables(rag))
    assert "POSTGRES_PASSWORD" not in environment(render, rag, with_secrets=True)
    assert "KIT_STORE" in configmap_variables(render, rag)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_postgres_runs_locked_down_on_its_volume_with_its_password_from_a_secret_file(
    all_renders: dict[str, dict[str, Render]], overlay: str
) -> None:
    render = all_renders["pgvector"][overlay]
    statefulset, pod, container = postgres(render)

    # The restricted Pod Security Standard of the namespace, as for the kit's pods.
    security = pod["securityContext"] | container["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] != 0
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False

    # The image compose runs, pinned to a release of pgvector and a Postgres major version, whose
    # data folder (PGDATA) is on the volume of the claim template, not on the read-only root.
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["postgres"]
    assert container["image"] == compose["image"]
    pinned = re.fullmatch(r"pgvector/pgvector:\d+\.\d+\.\d+-pg(\d+)", container["image"])
    assert pinned, f"{container['image']} is not pinned to a release"
    env = literal_variables(container)
    assert env["PGDATA"] == f"/var/lib/postgresql/{pinned.group(1)}/docker"
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    [claim] = statefulset["spec"]["volumeClaimTemplates"]
    assert mounts["/var/lib/postgresql"]["name"] == claim["metadata"]["name"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert bytes_(claim["spec"]["resources"]["requests"]["storage"]) >= 2**30
    assert statefulset["spec"]["replicas"] == 1, "one data folder, one server"
    volumes = {v["name"]: v for v in pod["volumes"]}
    for path in ("/tmp", "/var/run/postgresql", "/dev/shm"):  # written to: socket, lock, shm
        assert "emptyDir" in volumes[mounts[path]["name"]], path

    # The password: a file from the Secret (POSTGRES_PASSWORD_FILE), never a variable, and only
    # the server's key of that Secret is mounted.
    assert not {"POSTGRES_PASSWORD", "DATABASE_URL"} & ({e["name"] for e in container["env"]})
    assert "envFrom" not in container
    password_file = Path(env["POSTGRES_PASSWORD_FILE"])
    mount = mounts[str(password_file.parent)]
    assert mount["readOnly"] is True
    secret = volumes[mount["name"]]["secret"]
    assert unhashed(secret["secretName"]) == "postgres-secrets"
    assert secret["items"] == [{"key": "POSTGRES_PASSWORD", "path": password_file.name}]
    assert secret["defaultMode"] & 0o007 == 0, "not readable by other users"

    # Memory requested at its limit; the probes ask the server over TCP, as the kit connects.
    resources = container["resources"]
    assert cores(resources["requests"]["cpu"]) <= cores(resources["limits"]["cpu"])
    assert resources["requests"]["memory"] == resources["limits"]["memory"]
    for kind in ("startup", "readiness", "liveness"):
        command = container[f"{kind}Probe"]["exec"]["command"]
        assert command[0] == "pg_isready", kind
        assert "--host=127.0.0.1" in command, f"{kind}: the socket answers during initdb"
        assert f"--port={container_port(container, 'postgres')}" in command
        assert f"--username={env['POSTGRES_USER']}" in command
        assert f"--dbname={env['POSTGRES_DB']}" in command
