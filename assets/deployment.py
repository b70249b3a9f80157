"""Where the steps run: ``ROOST_DEPLOYMENT`` = ``local`` (default: Dagster's default executor,
in-process or multiprocess, CPU or a local GPU) or ``k8s`` (dagster-k8s's ``k8s_job_executor``:
each step in its own pod).

Under ``k8s`` the heavy assets carry ``dagster-k8s/config`` tags: the GPU assets
(``deployment.gpus`` in params.yaml: streetclip, geocell_model, prototypes, benchmark_report)
request ``nvidia.com/gpu``, CPU and memory, with the node selector and tolerations of
``deployment``; ``location_images`` gets a CPU pod when its source calls an API (streetview).
A training step with ``processes`` > 1 starts torchrun inside its pod (one process per GPU).
"""

import os
from dataclasses import dataclass
from typing import ClassVar

from ml.config import load_config
from ml.paths import Paths
from ml.settings import ImagesConfig

DEPLOYMENTS = ("local", "k8s")
K8S_CONFIG = "dagster-k8s/config"


@dataclass(frozen=True)
class PodSize:
    cpu: str
    memory: str


@dataclass(frozen=True)
class DeploymentConfig:
    SECTION: ClassVar[str] = "deployment"

    image: str  # the code-location / run-worker image (deploy/Dockerfile)
    namespace: str
    gpus: dict[str, int]  # asset -> nvidia.com/gpu per pod
    gpu_pod: PodSize
    api_pod: PodSize  # location_images when it calls the Street View API
    node_selector: dict[str, str]  # for GPU pods
    tolerations: list[dict]  # for GPU pods
    data_claim: str  # the PersistentVolumeClaim holding the project (params, data/, data/cache/)
    mount_path: str  # where it is mounted: the project root in every pod
    env_secrets: list[str]  # Kubernetes secrets exposed as environment variables (API key, DVC remote)


def deployment() -> str:
    value = os.environ.get("ROOST_DEPLOYMENT", "local").strip() or "local"
    if value not in DEPLOYMENTS:
        raise ValueError(f"ROOST_DEPLOYMENT={value!r}: use one of {', '.join(DEPLOYMENTS)}")
    return value


def _config() -> DeploymentConfig:
    return load_config(DeploymentConfig, Paths.from_env().params)


def _calls_api() -> bool:
    return load_config(ImagesConfig, Paths.from_env().params).source == "streetview"


def pod_tags(asset: str) -> dict:
    """The asset's op tags: its pod's resources under k8s, nothing under local."""
    if deployment() != "k8s":
        return {}
    cfg = _config()
    if asset in cfg.gpus:
        gpu = str(cfg.gpus[asset])
        resources = {"cpu": cfg.gpu_pod.cpu, "memory": cfg.gpu_pod.memory, "nvidia.com/gpu": gpu}
        pod_spec = {"node_selector": cfg.node_selector, "tolerations": cfg.tolerations}
    elif asset == "location_images" and _calls_api():
        resources = {"cpu": cfg.api_pod.cpu, "memory": cfg.api_pod.memory}
        pod_spec = {}
    else:
        return {}
    return {
        K8S_CONFIG: {
            "container_config": {"resources": {"requests": resources, "limits": resources}},
            "pod_spec_config": pod_spec,
        }
    }


def executor():
    """None (Dagster's default) under local; the configured k8s_job_executor under k8s."""
    if deployment() != "k8s":
        return None
    from dagster_k8s import k8s_job_executor

    return k8s_job_executor.configured(executor_config(_config()))


def executor_config(cfg: DeploymentConfig) -> dict:
    return {
        "job_namespace": cfg.namespace,
        "job_image": cfg.image,
        "env_vars": ["ROOST_DEPLOYMENT=k8s", f"ROOST_ROOT={cfg.mount_path}", f"DAGSTER_HOME={cfg.mount_path}/.dagster"],
        "env_secrets": list(cfg.env_secrets),
        "volumes": [{"name": "roost-data", "persistentVolumeClaim": {"claimName": cfg.data_claim}}],
        "volume_mounts": [{"name": "roost-data", "mountPath": cfg.mount_path}],
    }
