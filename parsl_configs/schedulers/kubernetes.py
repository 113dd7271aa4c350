"""Parsl config for ``scheduler: kubernetes`` (e.g. a ``kind`` cluster, ``cluster/kind/``).

One block is one pod made by Parsl's :class:`~parsl.providers.KubernetesProvider`; the
interchange runs on the driver, so pods must reach ``machine.extra.address``.  The
``kubernetes`` package is optional and imported lazily.  ``machine.extra`` keys:
``image`` (required), ``namespace``, ``address``, ``init_blocks``/``min_blocks``/
``max_blocks``, ``parallelism``, ``pod_name``, ``secret``, ``persistent_volumes`` (list of
``[pvc, mount_path]``), ``service_account_name``, ``user_id``/``group_id``/
``run_as_non_root``, ``worker_port_range``/``interchange_port_range``, ``encrypted``,
``worker_logdir_root``.

:func:`pod_spec` runs the provider's own ``submit()`` against a recording stand-in for
the kube client, so the manifest follows Parsl's code rather than a copy of it.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import yaml
from omegaconf import OmegaConf
from parsl.config import Config
from parsl.executors import HighThroughputExecutor

from parsl_configs.python_path import ensure_python_on_path
from parsl_configs.scheduler import Scheduler, Submission
from runners.config.schema import MachineConfig

if TYPE_CHECKING:
    from parsl.providers import KubernetesProvider

#: Worker image built by ``cluster/kind/Dockerfile`` (not ``:latest``, which kubelet
#: would try to pull instead of using the image ``kind load`` put on the nodes).
KIND_IMAGE = "parsl-worker:bench"

_OFFLINE_LOCK = threading.Lock()


def _require_kubernetes(machine: MachineConfig) -> None:
    """Raise a clear RuntimeError when the optional ``kubernetes`` package is missing."""
    try:
        import kubernetes  # noqa: F401
    except ImportError:
        raise RuntimeError(f"machine={machine.name} needs the 'kubernetes' package: "
                           "pip install '.[kubernetes]'") from None


def _extra(machine: MachineConfig) -> dict[str, Any]:
    """``machine.extra`` as a plain dict (from a dataclass, DictConfig or namespace)."""
    extra = getattr(machine, "extra", None) or {}
    if OmegaConf.is_config(extra):
        return dict(OmegaConf.to_container(extra, resolve=True))  # type: ignore[arg-type]
    return dict(extra)


def _opt_str(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def make_provider(machine: MachineConfig) -> KubernetesProvider:
    """Build the KubernetesProvider for a machine (loads the kubeconfig, as Parsl does).

    Parameters
    ----------
    machine : MachineConfig or DictConfig
        Uses ``name``, ``nodes``, ``cores_per_node``, ``mem_gb``, ``worker_init`` and
        ``extra``.  CPU and memory requests equal the limits (Guaranteed QoS):
        ``cores_per_node`` cores and ``mem_gb`` GiB; ``mem_gb <= 0`` keeps Parsl's
        defaults (500Mi limit, 250Mi request).

    Returns
    -------
    parsl.providers.KubernetesProvider

    Raises
    ------
    RuntimeError
        If the ``kubernetes`` package is missing (ValueError if ``extra.image`` is unset).
    """
    _require_kubernetes(machine)
    from parsl.providers import KubernetesProvider

    extra = _extra(machine)
    if not extra.get("image"):
        raise ValueError(f"machine={machine.name}: set extra.image (the worker image)")
    resources: dict[str, Any] = {"max_cpu": machine.cores_per_node,
                                 "init_cpu": machine.cores_per_node}
    if float(machine.mem_gb or 0) > 0:
        mem = f"{round(float(machine.mem_gb) * 1024)}Mi"
        resources.update(max_mem=mem, init_mem=mem)
    # Parsl sets the securityContext only when both ids are given; the group defaults
    # to the user id so that a configured user id is never silently ignored.
    user_id = _opt_str(extra.get("user_id"))
    return KubernetesProvider(
        image=str(extra["image"]),
        namespace=str(extra.get("namespace") or "default"),
        nodes_per_block=1,
        init_blocks=int(extra.get("init_blocks", 1)),
        min_blocks=int(extra.get("min_blocks", 0)),
        max_blocks=int(extra.get("max_blocks", machine.nodes)),
        parallelism=float(extra.get("parallelism", 1)),
        worker_init=str(machine.worker_init or ""),
        pod_name=_opt_str(extra.get("pod_name")),
        user_id=user_id,
        group_id=_opt_str(extra.get("group_id")) or user_id,
        run_as_non_root=bool(extra.get("run_as_non_root", False)),
        secret=_opt_str(extra.get("secret")),
        persistent_volumes=[(str(pvc), str(path))
                            for pvc, path in extra.get("persistent_volumes") or []],
        service_account_name=_opt_str(extra.get("service_account_name")),
        **resources,
    )


def config_for(machine: MachineConfig, run_dir: str = "runinfo") -> Config:
    """Build the Kubernetes Parsl config: one HTEX whose blocks are pods.

    Parameters
    ----------
    machine : MachineConfig or DictConfig
        See :func:`make_provider`; also ``max_workers`` and ``strategy_period``.
    run_dir : str
        Parsl's run directory (on the driver).

    Returns
    -------
    parsl.config.Config

    Notes
    -----
    ``encrypted`` defaults to False here: HTEX writes its CurveZMQ certificates under
    the driver's run directory and passes that path to the workers, which a pod cannot
    read unless the run directory is mounted at the same path (``persistent_volumes``).
    Worker logs go to ``extra.worker_logdir_root`` (``/tmp/parsl``) inside the pod.
    """
    extra = _extra(machine)
    provider = make_provider(machine)
    ensure_python_on_path()  # the interchange runs on the driver
    ports: dict[str, Any] = {key: (int(extra[key][0]), int(extra[key][1]))
             for key in ("worker_port_range", "interchange_port_range") if extra.get(key)}
    executor = HighThroughputExecutor(
        label=str(machine.name),
        address=_opt_str(extra.get("address")),  # None: workers probe all driver addresses
        max_workers_per_node=int(machine.max_workers),
        encrypted=bool(extra.get("encrypted", False)),
        worker_logdir_root=str(extra.get("worker_logdir_root", "/tmp/parsl")),
        provider=provider,
        **ports,
    )
    return Config(executors=[executor], run_dir=run_dir,
                  strategy_period=float(machine.strategy_period), usage_tracking=0,
                  initialize_logging=True)


@contextlib.contextmanager
def _without_kubeconfig() -> Iterator[None]:
    """Let ``KubernetesProvider()`` be built with no kubeconfig and no cluster.

    Its constructor calls ``config.load_kube_config()``, which needs a kubeconfig and
    replaces the kube client's process-wide default Configuration.  Only the ``config``
    name inside Parsl's ``kube`` module is swapped, under a lock, for the duration.
    """
    from parsl.providers.kubernetes import kube

    real = kube.config
    stand_in = SimpleNamespace(load_kube_config=lambda *a, **k: None,
                               config_exception=real.config_exception)
    with _OFFLINE_LOCK:
        kube.config = stand_in
        try:
            yield
        finally:
            kube.config = real


class _RecordingCoreV1Api:
    """Stands in for ``kubernetes.client.CoreV1Api``: keeps the pods it is asked to create."""

    def __init__(self) -> None:
        self.created: list[tuple[str, Any]] = []

    def create_namespaced_pod(self, namespace: str, body: Any, **_: Any) -> Any:
        self.created.append((namespace, body))
        return SimpleNamespace(status=None)


def pod_spec(machine: MachineConfig, command: str, job_name: str = "parsl.kube") -> dict[str, Any]:
    """The pod manifest Parsl's KubernetesProvider creates for ``submit(command, 1, job_name)``.

    Parameters
    ----------
    machine : MachineConfig or DictConfig
        As for :func:`make_provider`.
    command : str
        The worker command (HTEX passes ``process_worker_pool.py ...``).
    job_name : str
        HTEX passes ``parsl.<label>.block-<n>``; ``extra.pod_name`` overrides it.

    Returns
    -------
    dict
        ``apiVersion``, ``kind``, ``metadata`` (name, namespace, labels) and ``spec``, as
        ``kubectl apply -f`` takes it.  The body is exactly what the provider sends;
        apiVersion, kind and namespace are added (the API call carries them implicitly).
        The 8-hex job id in the name, label and container name is random per call.
    """
    _require_kubernetes(machine)
    from kubernetes.client import ApiClient

    with _without_kubeconfig():
        provider = make_provider(machine)
    recorder = _RecordingCoreV1Api()
    provider.kube_client = recorder
    provider.submit(command, 1, job_name)
    ((namespace, pod),) = recorder.created
    with ApiClient() as api:
        body = api.sanitize_for_serialization(pod)
    metadata = body.pop("metadata")
    metadata = {"name": metadata.pop("name"), "namespace": namespace, **metadata}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata,
            **{k: v for k, v in body.items() if k not in ("apiVersion", "kind")}}


class _Dumper(yaml.SafeDumper):
    """Safe dumper writing multi-line strings (the ``bash -c`` script) as ``|`` blocks."""


_Dumper.add_representer(str, lambda dumper, text: dumper.represent_scalar(
    "tag:yaml.org,2002:str", text, style="|" if "\n" in text else None))


def render_submission(machine: MachineConfig, command: str, job_name: str = "parsl.kube") -> str:
    """YAML of :func:`pod_spec` (what ``dry_run=true`` prints for a Kubernetes machine)."""
    spec = pod_spec(machine, command, job_name)
    return (f"# Pod KubernetesProvider.submit() would create for machine={machine.name}; "
            "the 8-hex job id differs per block\n"
            + yaml.dump(spec, Dumper=_Dumper, sort_keys=False, default_flow_style=False))


def fresh_config() -> Config:
    """Config for ``parsl-perf --config parsl_configs/schedulers/kubernetes.py`` on
    ``cluster/kind``.

    Up to 2 pods (one per kind worker) of 1 core / 1 GiB in namespace ``parsl``, image
    ``$BENCH_KIND_IMAGE`` (default :data:`KIND_IMAGE`); ``$BENCH_KIND_ADDRESS`` sets the
    interchange address the pods use (default: they probe all the driver's addresses).
    """
    extra = {"image": os.environ.get("BENCH_KIND_IMAGE", KIND_IMAGE), "namespace": "parsl",
             "address": os.environ.get("BENCH_KIND_ADDRESS"), "pod_name": "parsl-perf",
             "init_blocks": 1, "min_blocks": 0, "max_blocks": 2}
    return config_for(MachineConfig(name="kind", env_root="", nodes=2, cores_per_node=1,
                                    mem_gb=1.0, max_workers=1, worker_init="",
                                    strategy_period=0.5, extra=extra))


def render(machine: MachineConfig, fs_name: str | None = None) -> Submission:
    """A dry run's submission: the pod spec of one block (its job id shown as ``<job-id>``)."""
    text = render_submission(machine, "<worker command>", "bench.block-0")
    m = re.search(r"parsl-job-id: '?([0-9a-f]+)'?", text)
    if m:    # YAML quotes an id that looks like a number (e.g. all digits)
        text = text.replace(f"'{m.group(1)}'", "<job-id>").replace(m.group(1), "<job-id>")
    return Submission(text)


SCHEDULER = Scheduler(name="kubernetes", config=lambda machine, run_dir, fs: config_for(
    machine, run_dir), python_modules=("kubernetes",), render=render)
