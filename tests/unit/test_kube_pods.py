"""Hard routing on Kubernetes, submitted for real: the kubernetes client against a small fake API server.

The fake serves just pods and secrets on 127.0.0.1, checks every body it is
sent against the client's own models (as test_kubernetes_pods.py does), and
lets a test play the kubelet by setting a pod's phase. The endpoint's side is
the real one: TypedBlocks, BatchBlocks, ManagerPods and the kubernetes client.
"""

import base64
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

kubernetes = pytest.importorskip("kubernetes")
from kubernetes.client import ApiClient  # noqa: E402
from kubernetes.config import kube_config  # noqa: E402

from compute_endpoint.config import load_yaml_text  # noqa: E402
from compute_endpoint.curve import ENDPOINT, MANAGER, KeyStore  # noqa: E402
from compute_endpoint.endpoint.components import batch_blocks  # noqa: E402
from compute_endpoint.manager.settings import ManagerSettings  # noqa: E402
from compute_endpoint.paths import EndpointDir, write_json  # noqa: E402
from compute_endpoint.protocol import ControlAction  # noqa: E402
from compute_endpoint.providers.batch import BatchBlocks  # noqa: E402
from compute_endpoint.providers.kube_pods import ManagerPods  # noqa: E402
from compute_endpoint.providers.kubernetes import KEYS_MOUNT, secret_name  # noqa: E402
from compute_endpoint.providers.typed import TypedBlocks  # noqa: E402

PY = "podman:docker.io/library/python:3.11"
SOLVER = "docker:registry.example.org/team/solver:1.2"
RAW_IMAGE = "docker.io/example/compute-endpoint:2"
INTERCHANGE = "tcp://10.0.0.5:54000"
ROUTE = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/(?P<kind>pods|secrets)(?:/(?P<name>[^/?]+))?(?:\?.*)?$")
MODELS = {"pods": "V1Pod", "secrets": "V1Secret"}

CONFIG = f"""
engine:
  address: 10.0.0.5
  worker_port: 54000
  scheduler_mode: hard
  strategy: none
  provider: {{type: KubernetesProvider, image: {RAW_IMAGE}, namespace: compute, init_blocks: 1, max_blocks: 2}}
containers:
  py311: {PY}
  solver: {SOLVER}
"""


def _status(code: int, reason: str, message: str) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "reason": reason,
            "code": code}


class FakeKubeApi:
    """Pods and secrets by (namespace, kind) and name; every request recorded as (method, path)."""

    def __init__(self):
        self.objects: dict[tuple[str, str], dict[str, dict]] = {}
        self.requests: list[tuple[str, str]] = []
        self.invalid: list[str] = []  # bodies the client's models would not take back unchanged
        self.refuse_pods: tuple[int, str, str] | None = None  # (code, reason, message) for the next pod POSTs
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def pods(self, namespace: str = "compute") -> dict[str, dict]:
        return self.objects.setdefault((namespace, "pods"), {})

    def secrets(self, namespace: str = "compute") -> dict[str, dict]:
        return self.objects.setdefault((namespace, "secrets"), {})

    def set_phase(self, name: str, phase: str, **container_state) -> None:
        """Play the kubelet: the pod's phase, and its manager container's state (waiting=..., terminated=...)."""
        status: dict = {"phase": phase}
        if container_state:
            status["containerStatuses"] = [{"name": "manager", "image": "x", "imageID": "", "ready": False,
                                            "restartCount": 0, "state": container_state}]
        self.pods()[name]["status"] = status

    def count(self, method: str, kind: str) -> int:
        return sum(m == method and f"/{kind}" in p for m, p in self.requests)

    def answer(self, method: str, path: str, body: dict | None) -> tuple[int, dict]:
        self.requests.append((method, path))
        route = ROUTE.match(path)
        if not route:
            return 404, _status(404, "NotFound", f"the fake serves no {path}")
        store, name = self.objects.setdefault((route["ns"], route["kind"]), {}), route["name"]
        if body is not None and method in ("POST", "PUT"):
            self._validate(body, MODELS[route["kind"]])
        if method == "POST":
            return self._create(store, route["kind"], body or {})
        if name not in store:
            return 404, _status(404, "NotFound", f'{route["kind"]} "{name}" not found')
        if method == "PUT":
            store[name] = body or {}
        return 200, store.pop(name) if method == "DELETE" else store[name]

    def _create(self, store: dict, kind: str, body: dict) -> tuple[int, dict]:
        name = body["metadata"]["name"]
        if kind == "pods" and self.refuse_pods:
            return self.refuse_pods[0], _status(*self.refuse_pods)
        if name in store:
            return 409, _status(409, "AlreadyExists", f'{kind} "{name}" already exists')
        store[name] = {**body, "status": {"phase": "Pending"}} if kind == "pods" else body
        return 201, store[name]

    def _validate(self, body: dict, model: str) -> None:
        api = ApiClient()
        if api.sanitize_for_serialization(api.deserialize(json.dumps(body), model, "application/json")) != body:
            self.invalid.append(json.dumps(body))

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                text = self.rfile.read(length) if length else b""
                body = json.loads(text) if text.strip() else None
                code, answer = fake.answer(self.command, self.path, body)
                data = json.dumps(answer).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

            def log_message(self, *args):
                pass

        return Handler


@pytest.fixture
def api(tmp_path, monkeypatch):
    fake = FakeKubeApi()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(f"""
apiVersion: v1
kind: Config
clusters: [{{name: fake, cluster: {{server: "{fake.url}"}}}}]
users: [{{name: fake, user: {{token: not-a-real-token}}}}]
contexts: [{{name: fake, context: {{cluster: fake, user: fake}}}}]
current-context: fake
""")
    # The client reads KUBECONFIG once, when it is imported: the environment alone would not reach it now.
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(kubeconfig))
    yield fake
    fake.server.shutdown()
    fake.server.server_close()
    assert fake.invalid == [], "bodies the API's models do not take as they are"


@pytest.fixture
def ep(tmp_path):
    endpoint = EndpointDir("lab-ep", tmp_path / "config", tmp_path / "state")
    store = KeyStore(endpoint.keys_dir)
    store.ensure_pair(ENDPOINT)
    store.ensure_pair(MANAGER)
    return endpoint


def typed(ep, text: str = CONFIG) -> TypedBlocks:
    config = load_yaml_text(text, "config.yaml")
    config.engine.job_status_kwargs.status_period = 1e-6  # every tick asks the API
    return TypedBlocks.batch(ep, config, INTERCHANGE)


def manager(pod: dict) -> ManagerSettings:
    command = pod["spec"]["containers"][0]["command"]
    assert command[:3] == ["python3", "-m", "compute_endpoint.manager"]
    return ManagerSettings.from_argv(command[3:])


def test_each_type_gets_pods_of_its_own_image_and_one_keys_secret(api, ep):
    blocks = typed(ep)
    for pool in blocks.pools.values():
        pool.begin()

    assert all(isinstance(pool.provider, ManagerPods) for pool in blocks.pools.values())
    pods = {pod["metadata"]["annotations"]["compute-endpoint.container-type"]: pod for pod in api.pods().values()}
    images = {ctype: pod["spec"]["containers"][0]["image"] for ctype, pod in pods.items()}
    assert images == {"RAW": RAW_IMAGE, PY: "docker.io/library/python:3.11",
                      SOLVER: "registry.example.org/team/solver:1.2"}
    ids = {ctype: (manager(pod).worker_type, manager(pod).block_id) for ctype, pod in pods.items()}
    assert ids == {"RAW": ("RAW", "raw-0"), PY: (PY, "c1-0"), SOLVER: (SOLVER, "c2-0")}  # (aliases in order)
    for pod in pods.values():
        assert manager(pod).interchange == INTERCHANGE and str(manager(pod).keys_dir) == KEYS_MOUNT
        (mount,) = pod["spec"]["containers"][0]["volumeMounts"]
        (volume,) = pod["spec"]["volumes"]
        assert mount == {"name": volume["name"], "mountPath": KEYS_MOUNT, "readOnly": True}
        assert volume["secret"]["secretName"] == secret_name("lab-ep")
    assert api.count("POST", "secrets") == 1 and list(api.secrets()) == [secret_name("lab-ep")]
    assert {b["job_id"] for b in blocks.describe()["blocks"]} == set(api.pods())


def test_pod_phases_become_block_states(api, ep):
    pool = typed(ep).pools[PY]
    pool.begin()
    (job,) = api.pods()

    def state_after(now: float) -> str:
        pool.tick(now)
        return {b["job_id"]: b for b in pool.describe()["blocks"]}[job]["state"]

    assert state_after(1.0) == "PENDING"
    api.set_phase(job, "Running")
    assert state_after(2.0) == "RUNNING"
    api.set_phase(job, "Unknown")
    assert state_after(3.0) == "UNKNOWN"
    api.set_phase(job, "Failed", terminated={"exitCode": 1, "reason": "Error",
                                             "message": "No module named compute_endpoint"})
    assert state_after(4.0) == "FAILED"
    (failed,) = [b for b in pool.describe()["blocks"] if b["job_id"] == job]
    assert "exit code 1" in failed["failure"] and "No module named compute_endpoint" in failed["failure"]
    assert f"kubectl logs -n compute {job}" in failed["failure"]


def test_a_connected_block_whose_pod_succeeds_completes(api, ep):
    pool = typed(ep).pools["RAW"]
    pool.begin()
    (job,) = api.pods()
    api.set_phase(job, "Running")
    pool.observe([{"manager_id": "block-raw-0.pod", "block_id": "raw-0", "tasks": 0}])
    api.set_phase(job, "Succeeded", terminated={"exitCode": 0, "reason": "Completed"})
    pool.tick(1.0)
    assert [b["state"] for b in pool.describe()["blocks"]] == ["COMPLETED"]


def test_an_image_that_cannot_be_pulled_fails_the_block_and_removes_the_pod(api, ep):
    pool = typed(ep).pools[SOLVER]
    pool.begin()
    (job,) = api.pods()
    api.set_phase(job, "Pending", waiting={"reason": "ImagePullBackOff",
                                           "message": 'Back-off pulling image "registry.example.org/team/solver"'})
    pool.tick(1.0)
    (block,) = pool.describe()["blocks"]
    assert block["state"] == "FAILED" and "ImagePullBackOff: Back-off pulling image" in block["failure"]
    assert api.pods() == {}
    (request,) = pool.take_requests()  # init_blocks 1: one failure and this type's waiting tasks fail
    assert request.action == ControlAction.FAIL_QUEUED and request.container_types == [SOLVER]


def test_cancel_deletes_the_pod_and_a_pod_deleted_elsewhere_fails_its_block(api, ep):
    blocks = typed(ep)
    raw, py = blocks.pools["RAW"], blocks.pools[PY]
    raw.begin()
    py.begin()
    raw_job, py_job = list(api.pods())

    raw.stop(0)
    assert api.count("DELETE", "pods") == 1 and list(api.pods()) == [py_job]
    assert raw.provider.status([raw_job])[0].state.name == "CANCELLED"

    del api.pods()[py_job]  # kubectl delete pod, or an eviction
    py.tick(1.0)
    (block,) = py.describe()["blocks"]
    assert block["state"] == "FAILED" and "is gone" in block["failure"]


def test_a_secret_left_by_an_earlier_run_is_replaced_with_todays_keys(api, ep):
    api.secrets()[secret_name("lab-ep")] = {"metadata": {"name": secret_name("lab-ep")}, "data": {"old": "eA=="}}
    pool = typed(ep).pools["RAW"]
    pool.begin()

    assert api.count("POST", "secrets") == 1 and api.count("PUT", "secrets") == 1
    data = api.secrets()[secret_name("lab-ep")]["data"]
    assert base64.b64decode(data["endpoint.key"]).decode().strip() == KeyStore(ep.keys_dir).endpoint_public_key()
    assert len(api.pods()) == 1


def test_a_pod_the_api_refuses_is_a_failed_block_with_the_apis_words(api, ep):
    api.refuse_pods = (403, "Forbidden", 'pods is forbidden: User "system:serviceaccount:ce:ep" cannot create '
                                         'resource "pods" in API group "" in the namespace "compute"')
    pool = typed(ep).pools[PY]
    pool.begin()

    (block,) = pool.describe()["blocks"]
    assert block["state"] == "FAILED" and block["job_id"] is None
    assert "ManagerPods could not submit it" in block["failure"]
    assert "403 Forbidden: pods is forbidden: User \"system:serviceaccount:ce:ep\"" in block["failure"]
    assert pool.describe()["degraded"]


def test_pods_a_crashed_run_left_are_deleted_at_start(api, ep):
    blocks = typed(ep)
    pool = blocks.pools["RAW"]
    pool.begin()
    (left,) = api.pods()
    write_json(pool.jobs_file, {"provider": "ManagerPods", "jobs": [left]})

    again = typed(ep).pools["RAW"]
    again.begin()
    assert left not in api.pods() and len(api.pods()) == 1


def test_without_hard_routing_parsls_own_provider_submits(api, ep):
    config = load_yaml_text(CONFIG.split("containers:")[0], "config.yaml")
    blocks = batch_blocks(ep, config, INTERCHANGE)
    assert isinstance(blocks, BatchBlocks)
    assert type(blocks.provider).__name__ == "KubernetesProvider"
