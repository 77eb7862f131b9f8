"""Managers as Kubernetes pods, one kind of pod per container type (hard routing).

On Kubernetes the pod is the container: tasks of type ``podman:IMAGE`` are
served by a manager running inside IMAGE itself, its workers plain processes
beside it, since a pod has no container runtime to start them in. So each
container type gets pods of its own (as funcX gave each type a provider of its
own), and a manager in one serves that type only (``--worker-type``); RAW
tasks go to pods of the provider's own ``image``.

Everything here renders plain dicts, the manifests ``kubectl apply`` takes:
pods can be inspected and tested with no cluster, and nothing here talks to
one (kube_pods.py submits them). Managers reach the interchange over CurveZMQ with the keys of a Secret
mounted read-only where their ``--keys-dir`` points.
"""

import base64
import hashlib
import os
import re
import uuid
from pathlib import Path
from typing import Any

from ..config import Config
from ..config.parsl_objects import NO_KUBERNETES_CLUSTER
from ..containers.registry import RAW
from ..containers.runtimes import ENGINES, LABEL, ContainerError
from ..curve import ENDPOINT, MANAGER, KeyStore
from ..errors import EndpointError
from ..manager.settings import ManagerSettings

KEYS_MOUNT = "/etc/compute-endpoint/keys"
TYPE_LABEL = "compute-endpoint.container-type"
APP_LABEL = "app.kubernetes.io/name"
APP = "compute-endpoint-manager"
SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")

_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?$")


# --- names -----------------------------------------------------------------------

def label_value(text: str) -> str:
    """``text`` as a label value (up to 63 of [A-Za-z0-9._-], alphanumeric at both ends).

    A container type such as ``podman:docker.io/library/python:3.11`` is not one:
    it is kept readable where it can be, and a digest of the whole keeps two
    types apart however alike their readable parts.
    """
    if _LABEL_VALUE.match(text):
        return text
    readable = re.sub(r"[^A-Za-z0-9._-]+", "-", text)[:50].strip("._-")
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    return f"{readable}-{digest}" if readable else digest


def _slug(text: str, limit: int) -> str:
    """Lower-case alphanumerics and '-', as resource names allow."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].strip("-") or "x"


def secret_name(endpoint: str) -> str:
    """The Secret with one endpoint's manager keys."""
    slug = _slug(endpoint, 40)
    # Endpoint names that differ in case or punctuation only (My_EP, my-ep) must not share a secret.
    tail = "" if slug == endpoint else "-" + hashlib.sha256(endpoint.encode()).hexdigest()[:8]
    return f"ce-{slug}{tail}-manager-keys"


def _pod_name(endpoint: str, ctype: str) -> str:
    # Readable only: the labels say exactly whose and which type it is, the random tail keeps names apart.
    image = ctype.rpartition("/")[2]
    return f"ce-{_slug(endpoint, 20)}-{_slug(image, 24)}-{uuid.uuid4().hex[:6]}"


# --- the manager in a pod -----------------------------------------------------------

def _kubernetes_provider(config: Config) -> Any:
    provider = config.engine.provider
    if type(provider).__name__ != "KubernetesProvider":
        raise EndpointError(f"engine.provider is a {type(provider).__name__}: manager pods need a KubernetesProvider")
    return provider


def image_for(config: Config, ctype: str) -> tuple[str, str]:
    """(the type's RUNTIME:IMAGE, or RAW; the image its pods run) for a type or alias the config lists."""
    if ctype == RAW:
        return RAW, _kubernetes_provider(config).image
    try:
        container = config.container_registry.resolve(ctype)
    except ContainerError as exc:
        raise EndpointError(str(exc)) from None
    assert container is not None  # (only RAW resolves to no container)
    if container.runtime not in ENGINES:
        raise EndpointError(f"{ctype}: Kubernetes pulls OCI images, as docker and podman entries name; "
                            f"a {container.runtime} image cannot run in a pod")
    return container.key, container.image


def manager_command(config: Config, ctype: str, interchange: str, block_id: str = "") -> list[str]:
    """The command of a manager in a pod serving ``ctype`` only (``block_id``: the endpoint's block it is)."""
    settings = ManagerSettings.from_config(config, interchange, "", keys_dir=Path(KEYS_MOUNT))
    settings.block_id = block_id
    # The pod is the type's container: workers start beside the manager, never in a runtime nested in the pod.
    settings.worker_type, settings.worker_containers = ctype, ""
    # Logs go to stderr, where `kubectl logs` finds them: the endpoint's log directory is not in the pod.
    settings.log_dir = settings.log_file = None
    argv = settings.command(python=config.engine.container_python)
    init = (config.engine.provider.worker_init or "").strip()
    if not init:
        return argv
    # worker_init prepares the image's environment (a venv, a module); the manager then replaces the shell.
    return ["/bin/sh", "-c", f'{init}\nexec "$@"', "manager", *argv]


def _cpu(cores: float) -> str:
    return str(int(cores)) if float(cores).is_integer() else f"{round(cores * 1000)}m"


def _resources(provider: Any) -> dict:
    """Parsl's init_* are what the scheduler reserves for a pod (requests), max_* what it may use (limits)."""
    return {"requests": {"cpu": _cpu(provider.init_cpu), "memory": provider.init_mem, **provider.extra_requests},
            "limits": {"cpu": _cpu(provider.max_cpu), "memory": provider.max_mem, **provider.extra_limits}}


def _security_context(provider: Any) -> dict:
    context: dict[str, Any] = {}
    for key, value in (("runAsUser", provider.user_id), ("runAsGroup", provider.group_id)):
        if value is None:
            continue
        if not str(value).isdigit():
            raise EndpointError(f"provider user_id and group_id must be numeric ids, got {value!r}")
        context[key] = int(value)
    if provider.run_as_non_root:
        context["runAsNonRoot"] = True
    return context


def _volumes(provider: Any, endpoint: str) -> tuple[list[dict], list[dict]]:
    """(the pod's volumes, the manager's mounts): its keys, and the provider's persistent volumes."""
    # 0444: whatever user the image runs as must read them, and the pod holds only the manager and its workers.
    volumes = [{"name": "manager-keys", "secret": {"secretName": secret_name(endpoint), "defaultMode": 0o444}}]
    mounts = [{"name": "manager-keys", "mountPath": KEYS_MOUNT, "readOnly": True}]
    for index, (claim, path) in enumerate(provider.persistent_volumes):
        volumes.append({"name": f"volume-{index}", "persistentVolumeClaim": {"claimName": claim}})
        mounts.append({"name": f"volume-{index}", "mountPath": path})
    return volumes, mounts


def pod_spec(config: Config, endpoint: str, ctype: str, interchange: str, command: list[str] | None = None) -> dict:
    """The spec of a pod whose one container is a manager serving ``ctype`` (RAW or RUNTIME:IMAGE).

    ``command``: the manager's command line, when the caller built it (a block's, with its id).
    """
    provider = _kubernetes_provider(config)
    ctype, image = image_for(config, ctype)
    volumes, mounts = _volumes(provider, endpoint)
    container: dict[str, Any] = {"name": "manager", "image": image,
                                 "command": command or manager_command(config, ctype, interchange),
                                 "resources": _resources(provider), "volumeMounts": mounts}
    env = config.engine.worker_environment()
    if env:
        container["env"] = [{"name": key, "value": value} for key, value in env.items()]
    # Never: a manager that leaves (drained, idle) is done; replacing it is the endpoint's decision, not the kubelet's.
    spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [container], "volumes": volumes}
    if provider.service_account_name:
        spec["serviceAccountName"] = provider.service_account_name
    if provider.secret:
        spec["imagePullSecrets"] = [{"name": provider.secret}]
    if security := _security_context(provider):
        spec["securityContext"] = security
    return spec


def manager_pod(config: Config, endpoint: str, ctype: str, interchange: str,
                command: list[str] | None = None) -> dict:
    """The Pod manifest of one manager serving ``ctype``, for endpoint ``endpoint`` (``command``: as pod_spec)."""
    provider = _kubernetes_provider(config)
    ctype = image_for(config, ctype)[0]
    spec = pod_spec(config, endpoint, ctype, interchange, command)
    labels = {APP_LABEL: APP, LABEL: label_value(endpoint), TYPE_LABEL: label_value(ctype)}
    # Annotations take any text: the exact type, for people and tools reading the pod.
    annotations = {**(provider.annotations or {}), TYPE_LABEL: ctype}
    metadata = {"name": _pod_name(endpoint, ctype), "namespace": provider.namespace, "labels": labels,
                "annotations": annotations}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def pods_for_types(config: Config, endpoint: str, interchange: str | None = None,
                   types: list[str] | None = None) -> dict[str, dict]:
    """One manager pod per container type (default: RAW and every container the config lists), by type."""
    interchange = interchange or interchange_address(config)
    wanted = types if types is not None else [RAW, *(c.key for c in config.container_registry.entries.values())]
    return {image_for(config, t)[0]: manager_pod(config, endpoint, t, interchange) for t in wanted}


def interchange_address(config: Config) -> str:
    """Where pods find the interchange: engine.address must be reachable from them, on a fixed port."""
    if config.engine.worker_port is None:
        raise EndpointError("engine.worker_port is not set: manager pods are rendered ahead of time and need "
                            "the interchange's port fixed")
    return f"tcp://{config.engine.address}:{config.engine.worker_port}"


# --- the keys ---------------------------------------------------------------------------

def keys_secret(keys_dir: Path, endpoint: str, namespace: str = "default") -> dict:
    """The Secret holding what a manager needs: its key pair and the interchange's public key.

    Never the interchange's secret key: with it, anyone who can read the
    Secret could pose as the interchange to every manager.
    """
    store = KeyStore(keys_dir)
    pair, server = store.pair(MANAGER), store.endpoint_public_key()
    if pair is None or server is None:
        raise EndpointError(f"{keys_dir} lacks the manager key pair or the endpoint's public key: run "
                            f"`compute-endpoint keys endpoint {endpoint}` and `compute-endpoint keys manager "
                            f"{endpoint}` (or start the endpoint once), then render the secret again")
    files = {f"{MANAGER}.key": pair.public, f"{MANAGER}.key_secret": pair.secret, f"{ENDPOINT}.key": server}
    data = {name: base64.b64encode(f"{text}\n".encode()).decode() for name, text in files.items()}
    metadata = {"name": secret_name(endpoint), "namespace": namespace,
                "labels": {APP_LABEL: APP, LABEL: label_value(endpoint)}}
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": metadata, "data": data}


# --- the cluster ------------------------------------------------------------------------

def check_cluster(provider: object = None) -> str | None:
    """Why no Kubernetes cluster can be reached from here, naming what to set; None when one is configured.

    Looks where the Kubernetes client looks (KUBECONFIG, ~/.kube/config, a
    pod's service account) without loading anything. Other providers need no
    cluster: None.
    """
    if provider is not None and type(provider).__name__ != "KubernetesProvider":
        return None
    listed = [Path(p).expanduser() for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    files = listed or [Path("~/.kube/config").expanduser()]
    if any(path.is_file() for path in files):
        return None
    if os.environ.get("KUBERNETES_SERVICE_HOST") and SERVICE_ACCOUNT_TOKEN.is_file():
        return None
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    in_pod = f"KUBERNETES_SERVICE_HOST is set but {SERVICE_ACCOUNT_TOKEN} is missing" if host else \
        "not in a pod (KUBERNETES_SERVICE_HOST is unset)"
    return f"{NO_KUBERNETES_CLUSTER} (no {', '.join(map(str, files))}; {in_pod})"
