"""The Kubernetes deployment, offline: Definitions load under each ROOST_DEPLOYMENT; under k8s
every GPU asset's resolved pod config requests its GPUs and nothing does under local; the
executor config builds; the Helm values and the Dockerfile parse."""

import json
import os
import subprocess
import sys

import pytest
import yaml

from tests.conftest import REPO

PROBE = """
import json
from dagster_k8s.job import get_user_defined_k8s_config
from orchestration.definitions import defs
graph = defs.resolve_asset_graph()
pods = {}
for key in graph.get_all_asset_keys():
    tags = defs.resolve_assets_def(key).op.tags
    k8s = get_user_defined_k8s_config(tags)
    pods[key.to_user_string()] = {"resources": k8s.container_config.get("resources", {}),
                                  "pod_spec": k8s.pod_spec_config}
job = defs.resolve_job_def("roost_chain")
print(json.dumps({"executor": job.executor_def.name, "pods": pods}))
"""


def probe(deployment: str, params: str | None = None) -> dict:
    env = {**os.environ, "ROOST_DEPLOYMENT": deployment}
    if params:
        env["ROOST_ROOT"] = params
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


GPU_ASSETS = {"streetclip", "geocell_model", "prototypes", "benchmark_report"}


def test_local_requests_no_gpu():
    local = probe("local")
    assert local["executor"] != "k8s"
    assert all(not p["resources"] for p in local["pods"].values())


def test_k8s_gpu_assets_request_their_gpus():
    params = yaml.safe_load((REPO / "params.yaml").read_text())["deployment"]
    k8s = probe("k8s")
    assert k8s["executor"] == "k8s"
    for asset, pod in k8s["pods"].items():
        if asset in GPU_ASSETS:
            limits = pod["resources"]["limits"]
            assert limits["nvidia.com/gpu"] == str(params["gpus"][asset])
            assert limits["cpu"] == params["gpu_pod"]["cpu"] and limits["memory"] == params["gpu_pod"]["memory"]
            assert pod["pod_spec"]["node_selector"] == params["node_selector"]
            assert pod["pod_spec"]["tolerations"] == params["tolerations"]
        else:
            assert "nvidia.com/gpu" not in pod["resources"].get("limits", {})
    assert not k8s["pods"]["location_images"]["resources"]  # terrain: no API, no special pod


def test_k8s_api_pod_for_streetview(tmp_path):
    from tests.conftest import make_root

    root = make_root(tmp_path, profile="default", overrides={"location_images": {"source": "streetview"}})
    pods = probe("k8s", str(root))["pods"]
    limits = pods["location_images"]["resources"]["limits"]
    assert "nvidia.com/gpu" not in limits and limits["cpu"] == "2"


def test_unknown_deployment_is_refused():
    with pytest.raises(subprocess.CalledProcessError) as e:
        subprocess.run(
            [sys.executable, "-c", "import orchestration.definitions"],
            cwd=REPO,
            check=True,
            env={**os.environ, "ROOST_DEPLOYMENT": "mars"},
            capture_output=True,
            text=True,
        )
    assert "ROOST_DEPLOYMENT='mars'" in e.value.stderr


def test_executor_config_builds():
    from dagster._config import process_config
    from dagster_k8s import k8s_job_executor

    from assets.deployment import DeploymentConfig, executor_config
    from ml.config import load_config

    cfg = load_config(DeploymentConfig, REPO / "params.yaml")
    result = process_config(k8s_job_executor.config_schema.config_type, executor_config(cfg))
    assert result.success, result.errors
    assert result.value["job_namespace"] == cfg.namespace


def test_helm_values_parse():
    values = yaml.safe_load((REPO / "deploy" / "helm" / "values.yaml").read_text())
    deployment = values["dagster-user-deployments"]["deployments"][0]
    assert values["dagster-user-deployments"]["enabled"] is True
    assert deployment["dagsterApiGrpcArgs"][:2] == ["--module-name", "orchestration.definitions"]
    assert {"name": "ROOST_DEPLOYMENT", "value": "k8s"} in deployment["env"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    assert launcher["volumeMounts"][0]["mountPath"] == "/roost" and values["dagsterDaemon"]["enabled"] is True


INSTRUCTIONS = {
    "FROM",
    "RUN",
    "CMD",
    "LABEL",
    "EXPOSE",
    "ENV",
    "ADD",
    "COPY",
    "ENTRYPOINT",
    "VOLUME",
    "USER",
    "WORKDIR",
    "ARG",
    "ONBUILD",
    "STOPSIGNAL",
    "HEALTHCHECK",
    "SHELL",
}


def test_dockerfile_parses():
    lines, current = [], ""
    for raw in (REPO / "deploy" / "Dockerfile").read_text().splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        current += raw.rstrip("\\").strip() + " "
        if not raw.rstrip().endswith("\\"):
            lines.append(current.strip())
            current = ""
    assert not current, "a continued line never ends"
    words = [line.split()[0] for line in lines]
    assert words[0] == "FROM" and set(words) <= INSTRUCTIONS, words
    cmd = next(line for line in lines if line.startswith("CMD"))
    assert json.loads(cmd[3:].strip())[:3] == ["dagster", "api", "grpc"] and "orchestration.definitions" in cmd
    assert any("torch==2.13.0" in line for line in lines) and any("pip install -e ." in line for line in lines)
