"""The deployment files (deploy/) parse and hang together: compose's workers are the shards
0..N-1 of one N, each with its own journal volume, beside a 3-node JetStream cluster and the
web app; the StatefulSet passes its ordinal as the shard and N as ALPR_SHARDS; every container
asks for CPU and memory; the configs they mount load with the schema."""
from __future__ import annotations

import re

import pytest
import yaml

from config.schema import load_config, parse_config
from conftest import ROOT
from stream.shard import parse_shard, select

DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"


def _compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))


def _k8s() -> list[dict]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d and "kind" in d]
    return docs


def _kind(kind: str, name: str) -> dict:
    found = [d for d in _k8s() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind} {name}"
    return found[0]


def _flag(argv: list[str], flag: str) -> str:
    assert flag in argv, argv
    return argv[argv.index(flag) + 1]


@pytest.mark.parametrize("path", sorted(p.relative_to(ROOT).as_posix() for p in DEPLOY.rglob("*.yaml")))
def test_every_yaml_file_parses(path):
    assert list(yaml.safe_load_all((ROOT / path).read_text(encoding="utf-8")))


def test_compose_workers_are_every_shard_once_each_with_its_own_journal():
    services = _compose()["services"]
    workers = {name: s for name, s in services.items() if "--shard" in (s.get("command") or [])}
    shards = [parse_shard(_flag(s["command"], "--shard"), {}) for s in workers.values()]
    n = shards[0][1]
    assert all(total == n for _, total in shards) and n == len(workers) == 3
    assert sorted(i for i, _ in shards) == list(range(n))
    hostnames = [s["hostname"] for s in workers.values()]
    assert len(set(hostnames)) == n  # the worker's name in alpr.health.<worker>
    journals = []
    for name, s in workers.items():
        assert s["image"] and s["build"]["dockerfile"] == "deploy/Dockerfile", name
        config = _flag(s["command"], "--config")
        mounts = dict(reversed(v.split(":")[:2]) for v in s["volumes"])
        assert mounts[config].startswith("./") and (DEPLOY / mounts[config]).is_file(), name
        journal = load_config(DEPLOY / mounts[config]).journal.path
        volume = [src for target, src in mounts.items() if journal.startswith(target + "/")]
        assert volume and not volume[0].startswith("./"), f"{name}: the journal is not on a volume"
        journals.append(volume[0])
        reservations = s["deploy"]["resources"]["reservations"]
        assert reservations["cpus"] and reservations["memory"], name
    assert len(set(journals)) == n  # an outbox per worker


def test_compose_runs_a_three_node_jetstream_cluster_that_the_workers_use():
    services = _compose()["services"]
    nats = {name: s for name, s in services.items() if str(s.get("image", "")).startswith("nats:")}
    assert len(nats) == 3
    for name, s in nats.items():
        argv = s["command"]
        assert "-js" in argv and _flag(argv, "-n") == name and _flag(argv, "-sd")
        assert _flag(argv, "--cluster_name") == "alpr"
        routes = _flag(argv, "--routes").split(",")
        assert sorted(routes) == sorted(f"nats://{n}:6222" for n in nats), name
    workers = [s for s in services.values() if "--shard" in (s.get("command") or [])]
    config = load_config(DEPLOY / dict(reversed(v.split(":")[:2]) for v in workers[0]["volumes"])["/etc/alpr/config.yaml"])
    assert {re.match(r"nats://([^:]+):4222", u).group(1) for u in config.sinks.nats.servers} == set(nats)
    assert config.sinks.nats.replicas == 3
    assert all(select(config.cameras, i, 3) for i in range(3))  # the example gives every shard a camera


def test_compose_runs_the_web_app():
    web = _compose()["services"]["web"]
    assert web["entrypoint"][-2:] == ["-m", "stream.api"]
    config = load_config(DEPLOY / "web.yaml")
    assert config.api.host == "0.0.0.0" and f"{config.api.port}:{config.api.port}" in web["ports"]
    assert web["deploy"]["resources"]["reservations"]["memory"]


def test_the_statefulset_passes_its_ordinal_as_the_shard():
    sts = _kind("StatefulSet", "alpr-worker")
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    assert _flag(container["args"], "--shard") == "auto"
    env = {e["name"]: e for e in container["env"]}
    assert env["ALPR_SHARDS"]["value"] == str(sts["spec"]["replicas"])
    assert env["HOSTNAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    # pod alpr-worker-<ordinal> runs shard <ordinal>
    for ordinal in range(sts["spec"]["replicas"]):
        environ = {"HOSTNAME": f"{sts['metadata']['name']}-{ordinal}", "ALPR_SHARDS": env["ALPR_SHARDS"]["value"]}
        assert parse_shard("auto", environ) == (ordinal, sts["spec"]["replicas"])
    # the journal on the pod's own volume, the config from the ConfigMap, which loads
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert [t["metadata"]["name"] for t in sts["spec"]["volumeClaimTemplates"]] == ["journal"]
    config_map = _kind("ConfigMap", "alpr-config")
    config = parse_config(yaml.safe_load(config_map["data"]["config.yaml"]))
    assert config.journal.path.startswith(mounts["journal"] + "/")
    assert _flag(container["args"], "--config") == f"{mounts['config']}/config.yaml"
    assert config.sinks.nats.servers and config.sinks.nats.replicas == 3
    parse_config(yaml.safe_load(config_map["data"]["web.yaml"]))


def test_every_kubernetes_container_requests_cpu_and_memory():
    pods = [d["spec"]["template"]["spec"] for d in _k8s() if d["kind"] in ("StatefulSet", "Deployment")]
    assert len(pods) == 2
    for pod in pods:
        for c in pod["containers"]:
            requests = c["resources"]["requests"]
            assert requests["cpu"] and requests["memory"], c["name"]
            assert c["resources"]["limits"]["memory"], c["name"]


def test_the_web_service_reaches_the_web_deployment():
    deployment, service = _kind("Deployment", "alpr-web"), _kind("Service", "alpr-web")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["command"][-2:] == ["-m", "stream.api"]
    ports = {p["name"] for p in container["ports"]}
    assert all(p["targetPort"] in ports for p in service["spec"]["ports"])


def test_nats_comes_from_its_official_helm_chart():
    text = (K8S / "nats-values.yaml").read_text(encoding="utf-8")
    assert "helm install nats nats/nats" in text
    values = yaml.safe_load(text)
    assert values["config"]["cluster"]["enabled"] and values["config"]["cluster"]["replicas"] == 3
    assert values["config"]["jetstream"]["enabled"]
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    assert sorted(kustomization["resources"]) == ["config.yaml", "web.yaml", "workers.yaml"]


@pytest.mark.parametrize("name, base", [("Dockerfile", "python:3.11"), ("Dockerfile.cuda", "nvidia/cuda:")])
def test_dockerfiles_install_the_requirements_and_run_the_processor(name, base):
    lines = [line.strip() for line in (DEPLOY / name).read_text(encoding="utf-8").splitlines()]
    froms = [line.split()[1] for line in lines if line.startswith("FROM ")]
    assert len(froms) == 1 and froms[0].startswith(base)
    assert any("pip install -r requirements.txt" in line for line in lines)
    assert 'ENTRYPOINT ["python", "run_stream.py"]' in lines
    assert (DEPLOY / f"{name}.dockerignore").is_file()
