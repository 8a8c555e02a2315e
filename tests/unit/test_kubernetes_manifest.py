"""etc/kubernetes/kafka-bridge-sidecar.yaml: valid for the Kubernetes API, true to the image.

The schemas are kubernetes-validate's (PyPI), bundled with it: strict mode
refuses unknown fields, so a misspelt key fails here rather than in a cluster.
The resource figures are held to the benchmark's measurements.
"""

from __future__ import annotations

import configparser
import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from kafka_bridge.daemon import options
from tests.unit.test_deployment_files import (CONFIG_FILE, DOCKERFILE, dockerfile_instructions,
                                              exec_form, instruction)

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "etc" / "kubernetes" / "kafka-bridge-sidecar.yaml"
BENCHMARK = REPO / "benchmarks" / "results.json"
#: the oldest and the newest Kubernetes whose schemas kubernetes-validate bundles
KUBERNETES_VERSIONS = ("1.25.0", "latest")


def resources() -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(MANIFEST.read_text()) if doc]


def one(kind: str) -> dict[str, Any]:
    found = [doc for doc in resources() if doc["kind"] == kind]
    assert len(found) == 1, f"{len(found)} {kind} in {MANIFEST.name}"
    return found[0]


def bridge_container() -> dict[str, Any]:
    pod = one("Deployment")["spec"]["template"]["spec"]
    return next(c for c in pod["containers"] if c["name"] == "kafka-bridge")


def bridge_conf() -> configparser.ConfigParser:
    conf = configparser.ConfigParser(interpolation=None)
    conf.read_string(one("ConfigMap")["data"]["kafka-bridge.conf"])
    return conf


Validator = Callable[[dict[str, Any]], None]


@pytest.fixture(scope="module")
def validate() -> Validator:
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate is not installed (pip install "
                                      "'kafka-bridge[test]')")
    from kubernetes_validate.utils import latest_version
    versions = [latest_version() if v == "latest" else v for v in KUBERNETES_VERSIONS]

    def check(resource: dict[str, Any]) -> None:
        for version in versions:
            kubernetes_validate.validate(resource, version, strict=True)
    return check


@pytest.mark.parametrize("kind", ["ConfigMap", "Secret", "Deployment"])
def test_manifest_is_valid_for_the_kubernetes_api(validate: Validator, kind: str) -> None:
    validate(one(kind))


def test_the_validator_refuses_a_misspelt_field(validate: Validator) -> None:
    deployment = copy.deepcopy(one("Deployment"))
    container = next(c for c in deployment["spec"]["template"]["spec"]["containers"]
                     if c["name"] == "kafka-bridge")
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(Exception, match="readinesProbe"):
        validate(deployment)


def test_probes_use_the_configured_metrics_port() -> None:
    container = bridge_container()
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == int(bridge_conf()["metrics"]["port"])
    assert bridge_conf()["metrics"]["host"] == "0.0.0.0", "probes reach the pod's IP"
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}


def test_the_configuration_lands_where_the_image_reads_it() -> None:
    container = bridge_container()
    cmd = exec_form(instruction(dockerfile_instructions(DOCKERFILE.read_text()), "CMD"))
    config_dir = CONFIG_FILE + ".d"
    assert container["args"] == cmd + ["--config-dir", config_dir]
    mount = next(m for m in container["volumeMounts"]
                 if Path(CONFIG_FILE).is_relative_to(m["mountPath"]))
    assert mount["readOnly"] is True
    volume = next(v for v in one("Deployment")["spec"]["template"]["spec"]["volumes"]
                  if v["name"] == mount["name"])
    paths = [item["path"] for source in volume["projected"]["sources"]
             for item in source.get("secret", {}).get("items", [])]
    assert paths and all(str(Path(mount["mountPath"]) / p).startswith(config_dir + "/")
                         and p.endswith(".conf") for p in paths)


def test_pod_runs_unprivileged_and_stops_within_its_grace_period() -> None:
    pod = one("Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    # runAsNonRoot can only verify a numeric USER
    user = instruction(dockerfile_instructions(DOCKERFILE.read_text()), "USER").split(":")[0]
    assert user.isdigit() and int(user) > 0
    security = bridge_container()["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    shutdown = next(o.default for o in options.BRIDGE_OPTS if o.name == "shutdown_timeout")
    assert pod["terminationGracePeriodSeconds"] >= shutdown + 5


def mebibytes(quantity: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(Mi|Gi)", quantity)
    assert match, f"memory quantity {quantity!r}: write it in Mi or Gi"
    return float(match.group(1)) * (1024 if match.group(2) == "Gi" else 1)


def cores(quantity: str) -> float:
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def measured() -> dict[str, float]:
    """Peak RSS (MiB) and CPU (cores) of the benchmark runs of the daemon."""
    results = json.loads(BENCHMARK.read_text())
    rss = [run["rss_mb"] for size in results["forward"].values()
           for run in size["kafka-bridge"]["runs"]]
    rss += [state["rss_mb"]["max"] for state in results["resources"].values()]
    return {"peak_rss": max(rss),
            "idle_cpu": results["resources"]["idle"]["cpu_percent"]["median"] / 100,
            "full_cpu": results["resources"]["max_throughput"]["cpu_percent"]["max"] / 100}


def test_resources_cover_the_measured_memory_and_cpu() -> None:
    figures = measured()
    requests, limits = (bridge_container()["resources"][k] for k in ("requests", "limits"))
    # RSS of master and worker summed counts shared pages twice: an upper bound
    assert mebibytes(requests["memory"]) >= 1.2 * figures["peak_rss"], figures
    assert mebibytes(limits["memory"]) >= 1.8 * figures["peak_rss"], figures
    assert figures["idle_cpu"] < cores(requests["cpu"]) < figures["full_cpu"], figures
    assert cores(limits["cpu"]) >= figures["full_cpu"], figures
