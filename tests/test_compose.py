"""The compose files describe what docs/scale.md says: one node by default, a three-node cluster in
docker-compose.cluster.yml. No container runtime runs on the project's machines, so the files are
checked as data (PyYAML), not started."""

from __future__ import annotations

from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

REPO = Path(__file__).resolve().parents[1]
NODES = ("qdrant-node1", "qdrant-node2", "qdrant-node3")


def _load(name: str) -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((REPO / name).read_text(encoding="utf-8"))


def _storage_volume(service: dict) -> str:  # type: ignore[type-arg]
    (volume,) = [v.split(":")[0] for v in service["volumes"] if v.split(":")[1] == "/qdrant/storage"]
    return volume


def test_single_node_stays_the_default() -> None:
    single = _load("docker-compose.yml")
    assert list(single["services"]) == ["qdrant"]
    assert "profiles" not in single["services"]["qdrant"]
    assert _storage_volume(single["services"]["qdrant"]) in single["volumes"]


def test_cluster_has_three_nodes_in_distributed_mode() -> None:
    cluster = _load("docker-compose.cluster.yml")
    services = cluster["services"]
    assert sorted(services) == list(NODES)
    image = _load("docker-compose.yml")["services"]["qdrant"]["image"]
    volumes = set()
    for name in NODES:
        node = services[name]
        assert node["image"] == image, "the cluster runs the same Qdrant version as the single node"
        assert node["environment"]["QDRANT__CLUSTER__ENABLED"] == "true"
        assert node["environment"]["QDRANT__CLUSTER__P2P__PORT"] == "6335"
        assert not any(p.split(":")[-1] == "6335" for p in node["ports"]), "the p2p port must not be published"
        assert all(p.startswith("127.0.0.1:") for p in node["ports"])
        volumes.add(_storage_volume(node))
        command = node["command"]
        assert command[0] == "./qdrant"
        assert command[command.index("--uri") + 1] == f"http://{name}:6335"
        check = " ".join(node["healthcheck"]["test"])
        assert "/readyz" in check and "/dev/tcp" in check and "curl" not in check and "wget" not in check
    assert len(volumes) == 3 and volumes == set(cluster["volumes"]), "one named volume per node"
    assert "--bootstrap" not in services["qdrant-node1"]["command"]
    for name in NODES[1:]:
        command = services[name]["command"]
        assert command[command.index("--bootstrap") + 1] == "http://qdrant-node1:6335"
        assert services[name]["depends_on"] == {"qdrant-node1": {"condition": "service_healthy"}}
    host_ports = [p.split(":")[1] for name in NODES for p in services[name]["ports"]]
    assert len(host_ports) == len(set(host_ports))
    assert "127.0.0.1:6333:6333" in services["qdrant-node1"]["ports"]
