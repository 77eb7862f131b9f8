"""Hard routing on Kubernetes: manager pods of each container type, submitted through the Kubernetes API.

Parsl's ``KubernetesProvider.submit`` builds a pod of its own, in its one
image, and cannot mount the endpoint's keys. ``ManagerPods`` is a provider of
ours in its place, one per container type: each block is one pod rendered by
kubernetes.py (the type's own image, the manager serving that type, the keys
mounted from a Secret). It takes its options (namespace, image, resources,
accounts, blocks) from the configured KubernetesProvider and talks to the
cluster with the API client Parsl built from the kubeconfig it loaded.

Only what BatchBlocks uses is offered: ``submit``, ``status``, ``cancel``,
the block counts, and ``manager_command``, through which a block's id reaches
its pod's command line.
"""

import json
import logging
import shlex
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes.client.exceptions import ApiException
from parsl.jobs.states import JobState, JobStatus

from ..config import Config
from ..errors import EndpointError
from ..paths import EndpointDir
from .kubernetes import keys_secret, manager_command, manager_pod, secret_name

log = logging.getLogger(__name__)

TIMEOUT = 30.0  # seconds for one API call: a hung API server must not stall the blocks thread for good

# Waiting reasons the kubelet does not get out of by itself: the pod would stay Pending for ever.
STUCK = ("ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName", "CreateContainerConfigError")

PHASES = {"Pending": JobState.PENDING, "Running": JobState.RUNNING, "Succeeded": JobState.COMPLETED,
          "Failed": JobState.FAILED}


class KubernetesError(EndpointError):
    """The Kubernetes API refused a request; the message is its own."""


def api_message(exc: ApiException) -> str:
    """The API's own words: the ``message`` of the Status it answered, else its HTTP status."""
    try:
        message = json.loads(exc.body or "").get("message")
    except (ValueError, AttributeError):
        message = None
    return f"{exc.status} {exc.reason}: {message or exc.body or 'no detail'}"


def _refused(what: str, exc: ApiException) -> KubernetesError:
    return KubernetesError(f"the Kubernetes API refused to {what}: {api_message(exc)}")


class KeysSecret:
    """The Secret with the endpoint's manager keys, applied once a run for every type's pods.

    Applied, not just created: a Secret an earlier run left may hold keys since
    replaced (`compute-endpoint keys manager`), and managers must get today's.
    """

    def __init__(self, api: Any, keys_dir: Path, endpoint: str, namespace: str):
        self.api = api
        self.keys_dir = keys_dir
        self.endpoint = endpoint
        self.namespace = namespace
        self._lock = threading.Lock()  # each type's pool submits from a thread of its own
        self._applied = False

    def ensure(self) -> None:
        with self._lock:
            if self._applied:
                return
            body = keys_secret(self.keys_dir, self.endpoint, self.namespace)
            name = secret_name(self.endpoint)
            try:
                self.api.create_namespaced_secret(self.namespace, body, _request_timeout=TIMEOUT)
            except ApiException as exc:
                if exc.status != 409:
                    raise _refused(f"create Secret {self.namespace}/{name}", exc) from None
                self._replace(name, body)
            self._applied = True
            log.info("manager keys in Secret %s/%s", self.namespace, name)

    def _replace(self, name: str, body: dict) -> None:
        try:
            self.api.replace_namespaced_secret(name, self.namespace, body, _request_timeout=TIMEOUT)
        except ApiException as exc:
            raise _refused(f"replace Secret {self.namespace}/{name}", exc) from None


class ManagerPods:
    """A provider of pods whose manager serves one container type; a job id is a pod's name."""

    def __init__(self, provider: Any, config: Config, endpoint: str, ctype: str, interchange: str,
                 secret: KeysSecret):
        """``provider``: the configured KubernetesProvider, whose options and API client the pods use."""
        self.config = config
        self.endpoint = endpoint
        self.ctype = ctype
        self.interchange = interchange
        self.secret = secret
        self.namespace: str = provider.namespace
        self.api = provider.kube_client  # a CoreV1Api on the configuration Parsl loaded (kubeconfig or in-cluster)
        self.init_blocks: int = provider.init_blocks
        self.min_blocks: int = provider.min_blocks
        self.max_blocks: int = provider.max_blocks
        self.parallelism: float = provider.parallelism
        self.worker_init: str = provider.worker_init
        self.status_polling_interval: float = provider.status_polling_interval
        # One pod a block, as Parsl's own submits, whatever nodes_per_block says: slots are counted by it.
        self.nodes_per_block = 1
        self.script_dir: str | None = None  # (BatchBlocks sets it; pods need no scripts)
        self._cancelled: set[str] = set()

    @property
    def label(self) -> str:
        return "kubernetes"

    def manager_command(self, block_id: str) -> str:
        """The command line of block ``block_id``'s manager, as its pod runs it (BatchBlocks asks)."""
        return shlex.join(manager_command(self.config, self.ctype, self.interchange, block_id))

    def submit(self, command: str, tasks_per_node: int, job_name: str = "") -> str:
        """Create a pod running ``command`` (manager_command's) in the type's image; its name is the job id."""
        self.secret.ensure()  # before the pod: a pod whose Secret is missing waits, mounting nothing
        pod = manager_pod(self.config, self.endpoint, self.ctype, self.interchange, shlex.split(command))
        name = pod["metadata"]["name"]
        if job_name:  # for people reading the pod: which block of which endpoint it is
            pod["metadata"]["annotations"]["compute-endpoint.job-name"] = job_name
        try:
            self.api.create_namespaced_pod(self.namespace, pod, _request_timeout=TIMEOUT)
        except ApiException as exc:
            raise _refused(f"create pod {self.namespace}/{name} ({pod['spec']['containers'][0]['image']})",
                           exc) from None
        return name

    def status(self, job_ids: list[str]) -> list[JobStatus]:
        return [self._status(name) for name in job_ids]

    def _status(self, name: str) -> JobStatus:
        try:
            pod = self.api.read_namespaced_pod(name, self.namespace, _request_timeout=TIMEOUT)
        except ApiException as exc:
            if exc.status != 404:  # BatchBlocks keeps the states it knew and asks again later
                raise _refused(f"read pod {self.namespace}/{name}", exc) from None
            if name in self._cancelled:
                return JobStatus(JobState.CANCELLED)
            return JobStatus(JobState.FAILED, message=f"pod {self.namespace}/{name} is gone (deleted by someone "
                                                      "else, or evicted and removed)")
        return self._from_pod(name, pod.status)

    def _from_pod(self, name: str, status: Any) -> JobStatus:
        phase = getattr(status, "phase", None) or "Unknown"
        state = PHASES.get(phase, JobState.UNKNOWN)  # Unknown: the node stopped reporting; it may come back
        waiting, ended = _container_states(status)
        if state == JobState.PENDING and waiting is not None and waiting.reason in STUCK:
            self._delete(name)  # it would wait for ever; the block fails and the strategy decides what next
            detail = f"{waiting.reason}: {waiting.message}" if waiting.message else waiting.reason
            return JobStatus(JobState.FAILED, message=f"pod {self.namespace}/{name} cannot start its manager: {detail}")
        if state not in (JobState.FAILED, JobState.COMPLETED):
            return JobStatus(state)
        code = getattr(ended, "exit_code", None)
        why = getattr(status, "message", None) or getattr(ended, "message", None) or \
            getattr(status, "reason", None) or getattr(ended, "reason", None)
        logs = f"see `kubectl logs -n {self.namespace} {name}`"
        return JobStatus(state, message=f"{why}; {logs}" if why else logs, exit_code=code)

    def cancel(self, job_ids: list[str]) -> list[bool]:
        return [self._delete(name) for name in job_ids]

    def _delete(self, name: str) -> bool:
        self._cancelled.add(name)
        try:
            self.api.delete_namespaced_pod(name, self.namespace, _request_timeout=TIMEOUT)
        except ApiException as exc:
            if exc.status == 404:
                return True  # already gone
            log.warning("could not delete pod %s/%s: %s", self.namespace, name, api_message(exc))
            return False
        return True


def _container_states(status: Any) -> tuple[Any, Any]:
    """(the manager container's waiting state, its terminated state), each None when it is not in it."""
    containers = getattr(status, "container_statuses", None) or []
    state = getattr(containers[0], "state", None) if containers else None
    return getattr(state, "waiting", None), getattr(state, "terminated", None)


def pods_per_type(ep: EndpointDir, config: Config, interchange: str) -> Callable[[str], ManagerPods]:
    """What gives each type's pool its ManagerPods: one keys Secret shared by them all."""
    provider = config.engine.provider
    secret = KeysSecret(provider.kube_client, ep.keys_dir, ep.name, provider.namespace)
    return lambda ctype: ManagerPods(provider, config, ep.name, ctype, interchange, secret)
