"""The NetworkPolicies of deploy/k8s: everything denied, then exactly the kit's flows allowed.

No cluster here enforces policies, so the rendered objects are evaluated the way Kubernetes
defines them (https://kubernetes.io/docs/concepts/services-networking/network-policies/):
- a pod is isolated for a direction once any policy selecting it lists that policy type;
- then a connection passes if some policy selecting the pod has a rule whose peers
  (podSelector, namespaceSelector, both, or ipBlock with its exceptions) and ports match it;
- the policies of the two ends are separate: an in-namespace flow needs the sender's egress and
  the receiver's ingress.
`allows()` below is that evaluation; the tests ask it about the flows the kit needs, the ones it
must never have (the cloud metadata service, private networks), and a broken copy of the policies,
to show the checks would catch the mistake. Every check runs on the overlays as shipped and with
the opt-in Postgres component (components/pgvector), whose own flows are checked at the end: only
the RAG service and the ingest job reach Postgres, on 5432, and Postgres reaches nothing.
"""

from __future__ import annotations

import copy
import ipaddress
from dataclasses import dataclass, field
from typing import Literal

import pytest

from tests.integration.k8s_render import NAMESPACE, OVERLAYS, Manifest, Render, render_overlays

Direction = Literal["ingress", "egress"]
NAME = "app.kubernetes.io/name"
NAMESPACE_NAME = "kubernetes.io/metadata.name"  # set by Kubernetes on every namespace
KIT_PORTS = {"gateway": 8000, "rag": 8001}


@dataclass(frozen=True)
class Peer:
    """The other end of a connection: a pod (in a namespace, with labels) or an IP address."""

    namespace: str | None = None  # None: the kit's own namespace
    labels: dict[str, str] = field(default_factory=dict)
    ip: str | None = None  # outside the cluster


OWN = None  # the kit's namespace, in Peer(namespace=OWN, ...)
PROMETHEUS = Peer("monitoring", {NAME: "prometheus"})
INGRESS_CONTROLLER = Peer("ingress-nginx", {NAME: "ingress-nginx"})
KUBE_DNS = Peer("kube-system", {"k8s-app": "kube-dns"})
METADATA_SERVICES = ("169.254.169.254", "fd00:ec2::254")  # AWS, GCP, Azure; AWS over IPv6
# Whole networks no egress rule may open: private, carrier-grade NAT, link-local, loopback.
PRIVATE_NETWORKS = [
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "169.254.0.0/16",
        "127.0.0.0/8",
        "fc00::/7",
        "fe80::/10",
    )
]

# The flows the kit needs (deploy/k8s/base/network-policies.yaml draws them): (direction, the
# kit's pod, the other end, protocol, port).
NEEDED: list[tuple[Direction, str, Peer, str, int]] = [
    ("ingress", "gateway", Peer(OWN, {NAME: "rag"}), "TCP", 8000),
    ("ingress", "gateway", INGRESS_CONTROLLER, "TCP", 8000),
    ("ingress", "gateway", PROMETHEUS, "TCP", 8000),
    ("ingress", "rag", INGRESS_CONTROLLER, "TCP", 8001),
    ("ingress", "rag", PROMETHEUS, "TCP", 8001),
    ("egress", "gateway", Peer("redis", {NAME: "redis"}), "TCP", 6379),
    ("egress", "gateway", Peer("mlflow", {NAME: "mlflow"}), "TCP", 5000),
    ("egress", "gateway", Peer("qdrant", {NAME: "qdrant"}), "TCP", 6333),
    ("egress", "gateway", Peer(ip="104.18.7.192"), "TCP", 443),  # a cloud provider's API
    ("egress", "gateway", Peer(ip="2606:4700::6812:7c0"), "TCP", 443),  # the same over IPv6
    ("egress", "rag", Peer("qdrant", {NAME: "qdrant"}), "TCP", 6333),
    ("egress", "rag", Peer(OWN, {NAME: "gateway"}), "TCP", 8000),
    ("egress", "gateway", KUBE_DNS, "UDP", 53),
    ("egress", "gateway", KUBE_DNS, "TCP", 53),
    ("egress", "rag", KUBE_DNS, "UDP", 53),
    ("egress", "rag", KUBE_DNS, "TCP", 53),
]
# Flows nobody needs, each one step away from a needed one: all must be denied.
DENIED: list[tuple[Direction, str, Peer, str, int]] = [
    ("egress", "gateway", Peer(ip="169.254.169.254"), "TCP", 443),  # cloud metadata
    ("egress", "gateway", Peer(ip="169.254.169.254"), "TCP", 80),
    ("egress", "gateway", Peer(ip="fd00:ec2::254"), "TCP", 443),
    ("egress", "gateway", Peer(ip="10.0.0.17"), "TCP", 443),  # another workload's private IP
    ("egress", "gateway", Peer(ip="192.168.1.1"), "TCP", 443),
    ("egress", "gateway", Peer(ip="104.18.7.192"), "TCP", 80),  # plain HTTP to the internet
    ("egress", "gateway", Peer("redis", {NAME: "redis"}), "TCP", 6380),
    ("egress", "gateway", Peer("default", {NAME: "postgres"}), "TCP", 5432),
    ("egress", "rag", Peer(ip="104.18.7.192"), "TCP", 443),  # RAG calls nothing outside
    ("egress", "rag", Peer("mlflow", {NAME: "mlflow"}), "TCP", 5000),
    ("egress", "rag", Peer("redis", {NAME: "redis"}), "TCP", 6379),
    ("egress", "rag", KUBE_DNS, "TCP", 8000),
    ("ingress", "gateway", Peer(OWN, {NAME: "debug-shell"}), "TCP", 8000),
    ("ingress", "gateway", Peer("default", {NAME: "rag"}), "TCP", 8000),  # rag, other namespace
    ("ingress", "rag", Peer(OWN, {NAME: "gateway"}), "TCP", 8001),
    ("ingress", "rag", Peer("monitoring", {NAME: "grafana"}), "TCP", 8001),
    ("ingress", "gateway", INGRESS_CONTROLLER, "TCP", 9000),
    ("ingress", "rag", Peer(ip="203.0.113.5"), "TCP", 8001),  # straight from the internet
]


STORES = ("qdrant", "pgvector")  # as shipped; with the pgvector component turned on


@pytest.fixture(scope="module")
def all_renders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Render]]:
    return {
        store: render_overlays(
            tmp_path_factory.mktemp(f"k8s-policies-{store}"), pgvector=store == "pgvector"
        )
        for store in STORES
    }


@pytest.fixture(scope="module", params=STORES)
def renders(
    all_renders: dict[str, dict[str, Render]], request: pytest.FixtureRequest
) -> dict[str, Render]:
    """The overlays of one store: every test that takes this runs for both."""
    return all_renders[request.param]


# --- Kubernetes' evaluation of NetworkPolicies -----------------------------------------------


def matches(selector: Manifest, labels: dict[str, str]) -> bool:
    """A label selector (matchLabels and matchExpressions) against a set of labels."""
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values")
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def peer_matches(rule_peer: Manifest, peer: Peer, namespace: str) -> bool:
    """One entry of a rule's `from` or `to` against the other end of the connection."""
    if "ipBlock" in rule_peer:
        if peer.ip is None:
            return False  # ipBlock is for addresses outside the cluster, not pods
        address = ipaddress.ip_address(peer.ip)
        block = rule_peer["ipBlock"]
        if address.version != ipaddress.ip_network(block["cidr"]).version:
            return False
        excepted = [ipaddress.ip_network(e) for e in block.get("except", [])]
        inside = address in ipaddress.ip_network(block["cidr"])
        return inside and not any(address in network for network in excepted)
    if peer.ip is not None:
        return False
    peer_namespace = peer.namespace or namespace
    if "namespaceSelector" in rule_peer:
        namespace_labels = {NAMESPACE_NAME: peer_namespace}
        if not matches(rule_peer["namespaceSelector"], namespace_labels):
            return False
    elif peer_namespace != namespace:
        return False  # a podSelector alone selects pods of the policy's own namespace
    return matches(rule_peer.get("podSelector", {}), peer.labels)


def port_matches(rule: Manifest, protocol: str, port: int) -> bool:
    if "ports" not in rule:
        return True  # no ports: every port
    for allowed in rule["ports"]:
        if allowed.get("protocol", "TCP") != protocol:
            continue
        first = allowed.get("port")
        if first is None or first == port or (first < port <= allowed.get("endPort", first)):
            return True
    return False


def allows(
    policies: list[Manifest],
    namespace: str,
    direction: Direction,
    pod: dict[str, str],
    peer: Peer,
    protocol: str,
    port: int,
) -> bool:
    """Whether the kit's pod with labels `pod` may receive from (ingress) or send to (egress)
    `peer` on `port`, under `policies`, for this end of the connection."""
    kind = direction.capitalize()
    selecting = [
        p
        for p in policies
        if matches(p["spec"]["podSelector"], pod) and kind in p["spec"]["policyTypes"]
    ]
    if not selecting:
        return True  # not isolated in this direction
    peers = "from" if direction == "ingress" else "to"
    for policy in selecting:
        for rule in policy["spec"].get(direction, []):
            everyone = peers not in rule
            if (everyone or any(peer_matches(p, peer, namespace) for p in rule[peers])) and (
                port_matches(rule, protocol, port)
            ):
                return True
    return False


def kit_pods(render: Render) -> dict[str, dict[str, str]]:
    """Each Deployment's name and its pods' labels."""
    return {
        d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"]
        for d in render.all("Deployment")
    }


# --- Checks, as functions returning problems, so a broken copy can be checked too -------------


def default_deny_problems(policies: list[Manifest]) -> list[str]:
    deny = [
        p
        for p in policies
        if p["spec"]["podSelector"] == {}
        and sorted(p["spec"]["policyTypes"]) == ["Egress", "Ingress"]
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    return [] if deny else ["no policy denies all ingress and egress of every pod"]


def open_network_problems(policies: list[Manifest]) -> list[str]:
    """Egress rules that open a private network or the metadata service, or every address."""
    problems = []
    for policy in policies:
        name = policy["metadata"]["name"]
        for rule in policy["spec"].get("egress", []):
            if "to" not in rule:
                problems.append(f"{name}: an egress rule without `to` allows every destination")
                continue
            for peer in rule["to"]:
                if "ipBlock" not in peer:
                    continue
                cidr = ipaddress.ip_network(peer["ipBlock"]["cidr"])
                excepted = [ipaddress.ip_network(e) for e in peer["ipBlock"].get("except", [])]
                for network in PRIVATE_NETWORKS:
                    if network.version != cidr.version or not network.overlaps(cidr):
                        continue
                    if not any(network.subnet_of(e) for e in excepted):  # type: ignore[arg-type]
                        problems.append(f"{name}: egress to {cidr} reaches into {network}")
    return problems


# --- The tests -------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_is_denied_everything_unless_a_policy_allows_it(
    renders: dict[str, Render], overlay: str
) -> None:
    policies = renders[overlay].all("NetworkPolicy")
    assert default_deny_problems(policies) == []
    deny = next(p for p in policies if p["metadata"]["name"] == "default-deny-all")
    for name, labels in kit_pods(renders[overlay]).items():
        assert matches(deny["spec"]["podSelector"], labels), name
        # ...and each is also selected by policies that let it serve, scrape and resolve names.
        namespace = NAMESPACE[overlay]
        port = KIT_PORTS[name]
        assert allows(policies, namespace, "ingress", labels, PROMETHEUS, "TCP", port), name
        assert allows(policies, namespace, "egress", labels, KUBE_DNS, "UDP", 53), name
    # A pod nobody wrote a rule for (kubectl run, a debug shell) gets nothing either way.
    stranger = {NAME: "debug-shell"}
    anyone = Peer(ip="203.0.113.5")
    assert not allows(policies, NAMESPACE[overlay], "egress", stranger, anyone, "TCP", 443)
    assert not allows(policies, NAMESPACE[overlay], "ingress", stranger, anyone, "TCP", 8080)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_flow_the_kit_needs_is_allowed_on_its_port(
    renders: dict[str, Render], overlay: str
) -> None:
    policies = renders[overlay].all("NetworkPolicy")
    pods = kit_pods(renders[overlay])
    blocked = [
        f"{direction} {pod} {'from' if direction == 'ingress' else 'to'} {peer} {proto}/{port}"
        for direction, pod, peer, proto, port in NEEDED
        if not allows(policies, NAMESPACE[overlay], direction, pods[pod], peer, proto, port)
    ]
    assert blocked == []
    # The ports are the ones the kit's containers listen on (the other manifests test ties them
    # to `kit serve`).
    for name, port in KIT_PORTS.items():
        container = renders[overlay].get("Deployment", name)["spec"]["template"]["spec"]
        assert container["containers"][0]["ports"][0]["containerPort"] == port


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_flows_nobody_needs_are_denied(renders: dict[str, Render], overlay: str) -> None:
    policies = renders[overlay].all("NetworkPolicy")
    pods = kit_pods(renders[overlay])
    allowed = [
        f"{direction} {pod} {'from' if direction == 'ingress' else 'to'} {peer} {proto}/{port}"
        for direction, pod, peer, proto, port in DENIED
        if allows(policies, NAMESPACE[overlay], direction, pods[pod], peer, proto, port)
    ]
    assert allowed == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_policy_opens_private_networks_or_the_metadata_service(
    renders: dict[str, Render], overlay: str
) -> None:
    policies = renders[overlay].all("NetworkPolicy")
    assert open_network_problems(policies) == []
    for labels in kit_pods(renders[overlay]).values():
        for address in METADATA_SERVICES:
            for port in (80, 443):
                peer = Peer(ip=address)
                assert not allows(policies, NAMESPACE[overlay], "egress", labels, peer, "TCP", port)
    # No ingress rule is open to every source either (a rule without `from`).
    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            assert "from" in rule, f"{policy['metadata']['name']} lets anyone in"


def test_the_checks_catch_a_broken_copy_of_the_policies(renders: dict[str, Render]) -> None:
    """The checks above are not vacuous: each fails on a copy broken the way people break it."""
    policies = renders["production"].all("NetworkPolicy")
    namespace = NAMESPACE["production"]
    gateway = kit_pods(renders["production"])["gateway"]

    # 1. "Let it reach the internet": the exceptions of the HTTPS rule removed.
    wide_open = copy.deepcopy(policies)
    for policy in wide_open:
        for rule in policy["spec"].get("egress", []):
            for peer in rule.get("to", []):
                peer.get("ipBlock", {}).pop("except", None)
    assert any("169.254.0.0/16" in p for p in open_network_problems(wide_open))
    metadata = Peer(ip="169.254.169.254")
    assert allows(wide_open, namespace, "egress", gateway, metadata, "TCP", 443)

    # 2. The default deny deleted: the kit's pods keep their own policies, but any other pod of
    # the namespace (a debug shell, a forgotten test server) accepts connections from anywhere.
    no_deny = [p for p in policies if p["metadata"]["name"] != "default-deny-all"]
    assert default_deny_problems(no_deny) != []
    shell = {NAME: "debug-shell"}
    assert allows(no_deny, namespace, "ingress", shell, Peer(ip="203.0.113.5"), "TCP", 8080)

    # 3. A rule "to everywhere" (no `to`) added to the RAG service.
    everywhere = copy.deepcopy(policies)
    rag_policy = next(p for p in everywhere if p["metadata"]["name"] == "rag")
    rag_policy["spec"]["egress"].append({"ports": [{"protocol": "TCP", "port": 443}]})
    assert open_network_problems(everywhere) != []


# --- Postgres with pgvector (components/pgvector): the RAG service and the ingest job only -------

POSTGRES_PORT = 5432
RAG = Peer(OWN, {NAME: "rag"})
INGEST_JOB = Peer(OWN, {NAME: "pipelines"})  # a `kit ingest` pod of the pipelines image
# Connections to Postgres, from a sender (a pod of the kit's namespace unless it says otherwise),
# on a port: each must be allowed at both ends, or refused by Postgres's own policy, whatever the
# sender's policies allow (a widened egress rule elsewhere must not open Postgres).
TO_POSTGRES_ALLOWED: list[tuple[Peer, int]] = [(RAG, POSTGRES_PORT), (INGEST_JOB, POSTGRES_PORT)]
TO_POSTGRES_DENIED: list[tuple[Peer, int]] = [
    (Peer(OWN, {NAME: "gateway"}), POSTGRES_PORT),  # the gateway has no business there
    (Peer(OWN, {NAME: "debug-shell"}), POSTGRES_PORT),
    (Peer(OWN, {}), POSTGRES_PORT),  # a pod without labels
    (Peer("default", {NAME: "rag"}), POSTGRES_PORT),  # a `rag` of another namespace
    (PROMETHEUS, POSTGRES_PORT),
    (INGRESS_CONTROLLER, POSTGRES_PORT),
    (Peer(ip="203.0.113.5"), POSTGRES_PORT),  # the internet
    (RAG, 5433),
    (RAG, 22),
]


def postgres_pod(render: Render) -> dict[str, str]:
    labels: dict[str, str] = render.get("StatefulSet", "postgres")["spec"]["template"]["metadata"][
        "labels"
    ]
    return labels


def reaches_postgres(
    policies: list[Manifest], namespace: str, postgres: dict[str, str], sender: Peer, port: int
) -> bool:
    """Whether `sender` may connect to the Postgres pod: its own egress (for a pod of the kit's
    namespace, whose policies these are) and Postgres's ingress."""
    receiving = allows(policies, namespace, "ingress", postgres, sender, "TCP", port)
    if sender.ip is not None or sender.namespace is not OWN:
        return receiving  # the sender's own policies are not the kit's
    target = Peer(OWN, postgres)
    return receiving and allows(policies, namespace, "egress", sender.labels, target, "TCP", port)


def postgres_problems(
    policies: list[Manifest], namespace: str, postgres: dict[str, str]
) -> list[str]:
    """The Postgres flows that are not as they must be, as readable lines."""
    problems = [
        f"{sender} cannot reach Postgres on {port}"
        for sender, port in TO_POSTGRES_ALLOWED
        if not reaches_postgres(policies, namespace, postgres, sender, port)
    ]
    problems += [
        f"Postgres accepts {sender} on {port}"
        for sender, port in TO_POSTGRES_DENIED
        if allows(policies, namespace, "ingress", postgres, sender, "TCP", port)
    ]
    # Postgres itself opens no connection: not to the internet, the kit's pods or other servers.
    for target, port in [
        (Peer(ip="104.18.7.192"), 443),
        (Peer(ip="169.254.169.254"), 80),
        (Peer(OWN, {NAME: "rag"}), 8001),
        (Peer(OWN, {NAME: "gateway"}), 8000),
        (Peer("qdrant", {NAME: "qdrant"}), 6333),
    ]:
        if allows(policies, namespace, "egress", postgres, target, "TCP", port):
            problems.append(f"Postgres reaches {target} on {port}")
    return problems


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_rag_service_and_the_ingest_job_reach_postgres(
    all_renders: dict[str, dict[str, Render]], overlay: str
) -> None:
    render = all_renders["pgvector"][overlay]
    policies = render.all("NetworkPolicy")
    postgres = postgres_pod(render)
    deny = next(p for p in policies if p["metadata"]["name"] == "default-deny-all")
    assert matches(deny["spec"]["podSelector"], postgres), "the default deny covers Postgres"
    assert postgres_problems(policies, NAMESPACE[overlay], postgres) == []
    # The port the policies open is the one Postgres listens on and its Service serves.
    [container] = render.get("StatefulSet", "postgres")["spec"]["template"]["spec"]["containers"]
    assert [p["containerPort"] for p in container["ports"]] == [POSTGRES_PORT]
    assert [p["port"] for p in render.get("Service", "postgres")["spec"]["ports"]] == [
        POSTGRES_PORT
    ]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_without_the_component_no_pod_may_reach_a_postgres(
    all_renders: dict[str, dict[str, Render]], overlay: str
) -> None:
    policies = all_renders["qdrant"][overlay].all("NetworkPolicy")
    target = Peer(OWN, {NAME: "postgres"})
    for sender in (RAG, INGEST_JOB):
        assert not allows(
            policies, NAMESPACE[overlay], "egress", sender.labels, target, "TCP", POSTGRES_PORT
        ), sender


def test_the_postgres_checks_catch_a_broken_copy(
    all_renders: dict[str, dict[str, Render]],
) -> None:
    """Not vacuous: Postgres's ingress opened to the whole namespace or to every namespace, or the
    RAG service's egress rule to it dropped, fails the checks above."""
    render = all_renders["pgvector"]["production"]
    namespace = NAMESPACE["production"]
    postgres = postgres_pod(render)
    policies = render.all("NetworkPolicy")

    # 1. "Let the namespace in": any pod of it may connect, the gateway and a debug shell too;
    # "let every namespace in": the other namespace's `rag` and Prometheus as well.
    widenings: list[tuple[Manifest, tuple[str, str]]] = [
        ({"podSelector": {}}, ("'gateway'", "debug-shell")),
        ({"namespaceSelector": {}}, ("namespace='default'", "prometheus")),
    ]
    for peer, caught in widenings:
        widened = copy.deepcopy(policies)
        policy = next(p for p in widened if p["metadata"]["name"] == "postgres")
        policy["spec"]["ingress"][0]["from"] = [peer]
        problems = postgres_problems(widened, namespace, postgres)
        for sender in caught:
            assert any(sender in problem for problem in problems), (sender, problems)

    # 2. The sending end forgotten: Postgres accepts the RAG service, which may not send.
    no_egress = [p for p in policies if p["metadata"]["name"] != "allow-to-postgres"]
    assert any("cannot reach" in p for p in postgres_problems(no_egress, namespace, postgres))
