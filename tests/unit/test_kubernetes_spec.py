"""Tests for :mod:`parsl_configs.kubernetes` and ``cluster/kind`` without a cluster.

No Kubernetes runs here: the pod manifest Parsl's KubernetesProvider would send is
captured with a recording kube client and compared with a golden file.  Re-record it
with ``BENCH_UPDATE_GOLDEN=1 pytest tests/unit/test_kubernetes_spec.py`` (a changed file is
written and the test fails once).  The ``kubernetes`` package is a dev dependency: these
tests fail, never skip, without it.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from parsl_configs.schedulers import kubernetes as kube_cfg
from runners.config.schema import MachineConfig
from tests.support import ROOT, TESTS, check_golden

HERE = TESTS
GOLDEN = HERE / "golden" / "kubernetes" / "kind_pod.yaml"
KIND = ROOT / "cluster" / "kind"
JOB_NAME = "parsl.kind.block-0"
WORKER_INIT = "export OMP_NUM_THREADS=1\nsource /opt/bench/bin/activate"
WORKER_CMD = ("process_worker_pool.py  --max_workers_per_node=2 -a 172.18.0.1 -p 0 -c 1.0 "
              "-m None --poll 10 --port=54123 --cert_dir None --logdir=/tmp/parsl/kind "
              "--block_id=0 --hb_period=30 --hb_threshold=120")


def kind_machine(**extra: Any) -> MachineConfig:
    """A kind machine: 2 worker nodes, 2 cores and 1.5 GiB per pod, namespace parsl."""
    settings: dict[str, Any] = {
        "image": "parsl-worker:bench", "namespace": "parsl", "address": "172.18.0.1",
        "service_account_name": "parsl-worker", "secret": "regcred",
        "persistent_volumes": [["bench-runs", "/runs"]], "user_id": 1000}
    settings.update(extra)
    return MachineConfig(name="kind", scheduler="kubernetes", launcher="mpiexec",
                         nodes=2, cores_per_node=2, mem_gb=1.5, max_workers=2,
                         worker_init=WORKER_INIT, env_root="/tmp/envs", extra=settings)


def normalise(text: str, job_id: str) -> str:
    """Replace the random 8-hex job id (pod name suffix, label, container name)."""
    return text.replace(job_id, "JOBID")


def test_pod_spec_matches_golden() -> None:
    text = kube_cfg.render_submission(kind_machine(), WORKER_CMD, JOB_NAME)
    spec = yaml.safe_load(text)
    job_id = spec["metadata"]["labels"]["parsl-job-id"]
    assert re.fullmatch(r"[0-9a-f]{8}", job_id)
    assert spec["metadata"]["name"] == f"{JOB_NAME}.{job_id}"
    assert spec["spec"]["containers"][0]["name"] == job_id
    text = normalise(text, job_id)
    check_golden(GOLDEN, text)


def test_resources_follow_cores_and_memory() -> None:
    spec = kube_cfg.pod_spec(kind_machine(), WORKER_CMD, JOB_NAME)
    (container,) = spec["spec"]["containers"]
    expected = {"cpu": "2", "memory": "1536Mi"}
    assert container["resources"] == {"limits": expected, "requests": expected}
    machine = kind_machine()
    machine.cores_per_node, machine.mem_gb = 8, 16
    (container,) = kube_cfg.pod_spec(machine, WORKER_CMD, JOB_NAME)["spec"]["containers"]
    assert container["resources"]["limits"] == {"cpu": "8", "memory": "16384Mi"}
    assert container["resources"]["requests"] == {"cpu": "8", "memory": "16384Mi"}


def test_worker_init_runs_before_command() -> None:
    spec = kube_cfg.pod_spec(kind_machine(), WORKER_CMD, JOB_NAME)
    (container,) = spec["spec"]["containers"]
    assert container["command"] == ["/bin/bash"]
    flag, script = container["args"]
    assert flag == "-c"
    assert script.index("export OMP_NUM_THREADS=1") < script.index("source /opt/bench/bin/")
    assert script.index("source /opt/bench/bin/activate") < script.index(WORKER_CMD)
    assert script.rstrip().endswith(WORKER_CMD)


def test_pod_identity_volumes_and_pod_name_prefix() -> None:
    spec = kube_cfg.pod_spec(kind_machine(pod_name="Bench_Perf"), WORKER_CMD, JOB_NAME)
    meta, pod = spec["metadata"], spec["spec"]
    assert (spec["apiVersion"], spec["kind"], meta["namespace"]) == ("v1", "Pod", "parsl")
    assert meta["name"] == f"bench-perf.{meta['labels']['parsl-job-id']}"
    assert pod["serviceAccountName"] == "parsl-worker"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["volumes"] == [{"name": "bench-runs",
                               "persistentVolumeClaim": {"claimName": "bench-runs"}}]
    (container,) = pod["containers"]
    assert container["volumeMounts"] == [{"mountPath": "/runs", "name": "bench-runs"}]
    assert container["securityContext"]["runAsUser"] == 1000
    assert container["securityContext"]["runAsGroup"] == 1000  # defaults to the user id


def test_missing_image_is_an_error() -> None:
    with pytest.raises(ValueError, match="extra.image"):
        kube_cfg.pod_spec(kind_machine(image=""), WORKER_CMD, JOB_NAME)


def test_missing_kubernetes_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "kubernetes", None)  # `import kubernetes` -> ImportError
    message = "machine=kind needs the 'kubernetes' package: pip install '.[kubernetes]'"
    for build in (lambda: kube_cfg.config_for(kind_machine(), "runinfo"),
                  lambda: kube_cfg.pod_spec(kind_machine(), WORKER_CMD, JOB_NAME),
                  lambda: kube_cfg.render_submission(kind_machine(), WORKER_CMD, JOB_NAME)):
        with pytest.raises(RuntimeError) as info:
            build()
        assert str(info.value) == message


@pytest.fixture
def kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A kubeconfig naming an API server on 127.0.0.1:9 that nothing ever contacts."""
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "kind-bench",
        "clusters": [{"name": "kind-bench", "cluster": {"server": "https://127.0.0.1:9"}}],
        "users": [{"name": "kind-bench", "user": {"token": "not-a-real-token"}}],
        "contexts": [{"name": "kind-bench",
                      "context": {"cluster": "kind-bench", "user": "kind-bench"}}]}))
    # load_kube_config() reads this module constant (set from $KUBECONFIG at import) and
    # replaces the client's default Configuration: restore both after the test.
    monkeypatch.setattr(kubernetes.config.kube_config, "KUBE_CONFIG_DEFAULT_LOCATION",
                        str(path))
    monkeypatch.setattr(kubernetes.client.Configuration, "_default", None)
    return path


def test_config_for_builds_one_htex_with_kubernetes_provider(kubeconfig: Path) -> None:
    from parsl.executors import HighThroughputExecutor
    from parsl.providers import KubernetesProvider

    machine = kind_machine(worker_port_range=[54000, 54100], max_blocks=3)
    config = kube_cfg.config_for(machine, "/tmp/runinfo")
    (executor,) = config.executors
    assert isinstance(executor, HighThroughputExecutor)
    assert executor.label == "kind" and executor.address == "172.18.0.1"
    assert executor.worker_port_range == (54000, 54100)
    assert executor.encrypted is False and executor.max_workers_per_node == 2
    provider = executor.provider
    assert isinstance(provider, KubernetesProvider)
    assert (provider.namespace, provider.image) == ("parsl", "parsl-worker:bench")
    assert (provider.init_blocks, provider.min_blocks, provider.max_blocks) == (1, 0, 3)
    assert provider.worker_init == WORKER_INIT
    assert provider.kube_client.api_client.configuration.host == "https://127.0.0.1:9"
    assert (config.run_dir, config.usage_tracking, config.strategy_period) == (
        "/tmp/runinfo", 0, 0.5)
    default = kube_cfg.config_for(kind_machine(address=None), "runinfo").executors[0]
    assert isinstance(default, HighThroughputExecutor)
    assert isinstance(default.provider, KubernetesProvider)
    assert default.provider.max_blocks == 2  # machine.nodes
    assert default.address is None  # Parsl's default: workers probe all driver addresses


def test_fresh_config_has_kind_defaults(kubeconfig: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from parsl.executors import HighThroughputExecutor
    from parsl.providers import KubernetesProvider

    monkeypatch.setenv("BENCH_KIND_ADDRESS", "172.18.0.1")
    (executor,) = kube_cfg.fresh_config().executors
    assert isinstance(executor, HighThroughputExecutor)
    assert executor.label == "kind" and executor.address == "172.18.0.1"
    provider = executor.provider
    assert isinstance(provider, KubernetesProvider)
    assert (provider.namespace, provider.image) == ("parsl", kube_cfg.KIND_IMAGE)
    assert provider.max_blocks == 2


def test_kind_cluster_config() -> None:
    cluster = yaml.safe_load((KIND / "kind-config.yaml").read_text())
    assert cluster["kind"] == "Cluster"
    assert cluster["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    roles = [node["role"] for node in cluster["nodes"]]
    assert roles == ["control-plane", "worker", "worker"]


def test_rbac_manifest() -> None:
    docs = {doc["kind"]: doc for doc in yaml.safe_load_all((KIND / "rbac.yaml").read_text())}
    assert set(docs) == {"Namespace", "ServiceAccount", "Role", "RoleBinding"}
    assert docs["Namespace"]["metadata"]["name"] == "parsl"
    assert {doc["metadata"].get("namespace") for kind, doc in docs.items()
            if kind != "Namespace"} == {"parsl"}
    rules = {resource: set(rule["verbs"]) for rule in docs["Role"]["rules"]
             for resource in rule["resources"]}
    assert rules == {"pods": {"create", "get", "list", "watch", "delete"},
                     "pods/log": {"get"}}
    binding = docs["RoleBinding"]
    assert binding["roleRef"]["name"] == docs["Role"]["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "namespace": "parsl",
                                    "name": docs["ServiceAccount"]["metadata"]["name"]}]
