"""Kubernetes hard routing: a manager pod per container type, rendered and checked against the API's own models.

No cluster and no network: a kubeconfig naming a cluster nobody contacts is
enough to build Parsl's KubernetesProvider, and the manifests are validated by
loading them into the kubernetes client's models and writing them back.
"""

import base64
import json
import os
import re
import subprocess
import sys
import textwrap

import pytest

kubernetes = pytest.importorskip("kubernetes")
from kubernetes.client import ApiClient  # noqa: E402
from kubernetes.config import kube_config  # noqa: E402

from compute_endpoint.config import ConfigError, load_yaml_text  # noqa: E402
from compute_endpoint.curve import ENDPOINT, MANAGER, KeyStore  # noqa: E402
from compute_endpoint.errors import EndpointError  # noqa: E402
from compute_endpoint.manager.settings import ManagerSettings  # noqa: E402
from compute_endpoint.providers.kubernetes import (  # noqa: E402
    KEYS_MOUNT,
    TYPE_LABEL,
    check_cluster,
    keys_secret,
    label_value,
    pods_for_types,
    secret_name,
)

DIGEST = "sha256:" + "ab" * 32
PINNED = f"registry.example.org:5000/team/solver:1.2@{DIGEST}"
INTERCHANGE = "tcp://10.0.0.5:54000"
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?$")

FAKE_KUBECONFIG = """
apiVersion: v1
kind: Config
clusters: [{name: lab, cluster: {server: "https://192.0.2.1:6443"}}]
users: [{name: lab, user: {token: not-a-real-token}}]
contexts: [{name: lab, context: {cluster: lab, user: lab}}]
current-context: lab
"""

CONFIG = """
engine:
  scheduler_mode: hard
  address: 10.0.0.5
  worker_port: 54000
  max_workers_per_node: 3
  worker_env: {OMP_NUM_THREADS: "1"}
  provider:
    type: KubernetesProvider
    image: docker.io/example/compute-endpoint:2
    namespace: compute
    init_cpu: 0.5
    max_cpu: 2
    init_mem: 512Mi
    max_mem: 2Gi
    secret: registry-credentials
    service_account_name: ce-managers
containers:
  py311: podman:docker.io/library/python:3.11
  solver: docker:{pinned}
"""


def _point_client_at(monkeypatch, path) -> None:
    # The client reads KUBECONFIG once, when it is imported: the environment alone would not reach it now.
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))


@pytest.fixture
def config(tmp_path, monkeypatch):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(FAKE_KUBECONFIG)
    _point_client_at(monkeypatch, kubeconfig)
    return load_yaml_text(CONFIG.replace("{pinned}", PINNED), "config.yaml")


@pytest.fixture
def keys_dir(tmp_path):
    store = KeyStore(tmp_path / "keys")
    store.ensure_pair(ENDPOINT)
    store.ensure_pair(MANAGER)
    return store.directory


def as_model(manifest: dict, kind: str):
    """The manifest as the API's model; written back, it must be unchanged (no key ignored or misspelled)."""
    api = ApiClient()
    model = api.deserialize(json.dumps(manifest), kind, "application/json")
    assert api.sanitize_for_serialization(model) == manifest
    return model


def test_each_container_type_gets_a_valid_manager_pod_in_its_own_image(config):
    pods = pods_for_types(config, "lab-ep")

    assert set(pods) == {"RAW", "podman:docker.io/library/python:3.11", f"docker:{PINNED}"}
    images = {ctype: as_model(pod, "V1Pod").spec.containers[0].image for ctype, pod in pods.items()}
    assert images == {"RAW": "docker.io/example/compute-endpoint:2",
                      "podman:docker.io/library/python:3.11": "docker.io/library/python:3.11",
                      f"docker:{PINNED}": PINNED}


def test_a_pods_command_is_the_manager_serving_its_type_only(config):
    for ctype, pod in pods_for_types(config, "lab-ep").items():
        command = pod["spec"]["containers"][0]["command"]
        assert command[:3] == ["python3", "-m", "compute_endpoint.manager"]
        assert f"--worker-type={ctype}" in command
        settings = ManagerSettings.from_argv(command[3:])
        assert settings.worker_type == ctype
        assert settings.interchange == INTERCHANGE and str(settings.keys_dir) == KEYS_MOUNT
        # The pod is the container: its workers start beside the manager, not in podman inside the pod.
        assert settings.containers() == {} and settings.workers == 3
        assert settings.log_dir is None and settings.log_file is None  # stderr: `kubectl logs`


def test_labels_are_valid_label_values_and_tell_types_apart(config):
    pods = pods_for_types(config, "lab-ep")
    labels = [pod["metadata"]["labels"] for pod in pods.values()]

    for pod_labels in labels:
        assert all(LABEL_VALUE.match(value) for value in pod_labels.values())
        assert pod_labels["compute-endpoint.endpoint"] == "lab-ep"
    assert len({pod_labels[TYPE_LABEL] for pod_labels in labels}) == 3
    assert {pod["metadata"]["annotations"][TYPE_LABEL] for pod in pods.values()} == set(pods)
    assert label_value("x" * 200 + ":" + DIGEST) != label_value("x" * 200 + ":" + "sha256:" + "cd" * 32)
    assert LABEL_VALUE.match(label_value("-:" * 80))


def test_keys_are_mounted_read_only_from_the_endpoints_secret(config):
    spec = as_model(pods_for_types(config, "lab-ep")["RAW"], "V1Pod").spec

    (mount,) = spec.containers[0].volume_mounts
    (volume,) = spec.volumes
    assert mount.mount_path == KEYS_MOUNT and mount.read_only is True
    assert volume.name == mount.name and volume.secret.secret_name == secret_name("lab-ep")


def test_resources_accounts_and_restarts_come_from_the_provider(config):
    pod = as_model(pods_for_types(config, "lab-ep")["podman:docker.io/library/python:3.11"], "V1Pod")

    resources = pod.spec.containers[0].resources
    assert resources.requests == {"cpu": "500m", "memory": "512Mi"}
    assert resources.limits == {"cpu": "2", "memory": "2Gi"}
    assert pod.spec.restart_policy == "Never"
    assert pod.spec.service_account_name == "ce-managers"
    assert [s.name for s in pod.spec.image_pull_secrets] == ["registry-credentials"]
    assert pod.metadata.namespace == "compute"
    assert [(e.name, e.value) for e in pod.spec.containers[0].env] == [("OMP_NUM_THREADS", "1")]


def test_worker_init_runs_before_the_manager_replaces_the_shell(config):
    config.engine.provider.worker_init = "source /opt/venv/bin/activate"

    command = as_model(pods_for_types(config, "lab-ep")["RAW"], "V1Pod").spec.containers[0].command
    assert command[:2] == ["/bin/sh", "-c"] and command[2].startswith("source /opt/venv/bin/activate\n")
    assert command[4:7] == ["python3", "-m", "compute_endpoint.manager"]


def test_the_secret_holds_what_a_manager_needs_and_never_the_interchanges_secret_key(keys_dir):
    store = KeyStore(keys_dir)
    secret = keys_secret(keys_dir, "lab-ep", "compute")

    model = as_model(secret, "V1Secret")
    assert model.type == "Opaque" and model.metadata.name == secret_name("lab-ep")
    files = {name: base64.b64decode(value).decode().strip() for name, value in secret["data"].items()}
    assert files == {"manager.key": store.pair(MANAGER).public, "manager.key_secret": store.pair(MANAGER).secret,
                     "endpoint.key": store.pair(ENDPOINT).public}
    assert store.pair(ENDPOINT).secret not in json.dumps(secret)


def test_a_secret_needs_the_keys_made_first(tmp_path):
    with pytest.raises(EndpointError, match="compute-endpoint keys endpoint lab-ep"):
        keys_secret(tmp_path / "empty", "lab-ep")


def test_endpoints_named_alike_get_secrets_of_their_own():
    assert secret_name("lab-ep") == "ce-lab-ep-manager-keys"
    assert secret_name("Lab_EP") != secret_name("lab-ep")


@pytest.mark.parametrize("change, complaint", [
    (("scheduler_mode: hard", "scheduler_mode: soft"), "scheduler_mode: .* set scheduler_mode: hard"),
    (("solver: docker:", "solver: charliecloud:/images/"), "containers: solver: a Kubernetes pod runs OCI images only"),
])
def test_a_config_pods_cannot_serve_is_refused_when_it_loads(config, change, complaint):
    with pytest.raises(ConfigError, match=complaint):
        load_yaml_text(CONFIG.replace(*change).replace("{pinned}", PINNED), "config.yaml")


def test_types_a_pod_cannot_run_are_refused_by_name(config):
    with pytest.raises(EndpointError, match="is not one this endpoint allows"):
        pods_for_types(config, "lab-ep", types=["podman:docker.io/library/ruby:3"])


def test_an_alias_names_its_container_type(config):
    pods = pods_for_types(config, "lab-ep", types=["py311"])
    assert list(pods) == ["podman:docker.io/library/python:3.11"]


def no_cluster(tmp_path, monkeypatch):
    _point_client_at(monkeypatch, tmp_path / "nowhere" / "kubeconfig")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)


def test_check_cluster_names_what_to_set(tmp_path, monkeypatch, config):
    assert check_cluster(config.engine.provider) is None
    no_cluster(tmp_path, monkeypatch)

    problem = check_cluster()
    assert "no Kubernetes cluster configured" in problem and "KUBECONFIG" in problem
    assert str(tmp_path / "nowhere" / "kubeconfig") in problem
    assert check_cluster(object()) is None  # other providers need no cluster


def test_a_kubernetes_config_without_a_cluster_is_refused_clearly(tmp_path, monkeypatch):
    no_cluster(tmp_path, monkeypatch)

    with pytest.raises(ConfigError) as caught:
        load_yaml_text(CONFIG.replace("{pinned}", PINNED), "config.yaml")
    message = str(caught.value)
    assert message.startswith("config.yaml:9: engine.provider.type: KubernetesProvider: no Kubernetes cluster")
    assert "set KUBECONFIG" in message and "run the endpoint in a pod" in message


def test_check_config_without_a_cluster_says_what_to_set(tmp_path, monkeypatch):
    no_cluster(tmp_path, monkeypatch)
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(CONFIG.replace("{pinned}", PINNED)))

    done = subprocess.run([sys.executable, "-m", "compute_endpoint.cli.main", "check-config", str(path)],
                          capture_output=True, text=True, env=dict(os.environ), timeout=120)
    assert done.returncode != 0
    output = " ".join((done.stdout + done.stderr).split())  # (rich wraps long lines)
    assert "no Kubernetes cluster configured: set KUBECONFIG" in output
    assert "Traceback" not in output
