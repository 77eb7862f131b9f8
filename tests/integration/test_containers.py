"""Managers and their workers in real containers: podman (runc, an image imported offline) and Charliecloud.

The image is this source tree installed into a debootstrapped Debian 12 root
(scripts/worker-image.sh); tasks report what only the inside of the image has.
"""

import json
import os
import subprocess

import pytest

from compute_endpoint.sdk import InvalidTaskError

from ..support.broker import wait_for
from ..support.tasks import where_am_i
from .conftest import IMAGE_PYTHON


def container_config(runtime: str, image: str, **engine) -> dict:
    return {"engine": {"max_workers_per_node": 2, "container_type": runtime, "container_uri": image,
                       "container_python": IMAGE_PYTHON, "worker_env": {"USER": "root"}, **engine}}


def containers_of(ep) -> list[str]:
    listing = subprocess.run(["podman", "ps", "--all", "--format=json",
                              f"--filter=label=compute-endpoint.state-dir={ep.dir}"],
                             capture_output=True, text=True, check=True, timeout=60)
    return [c["Names"][0] for c in json.loads(listing.stdout or "[]")]


def test_podman_runs_the_pool_in_the_image_and_stop_leaves_no_container(images, endpoint_factory):
    ep = endpoint_factory("in-podman", config=container_config("podman", images["podman"]))
    with ep.executor() as ex:
        inside = [f.result(timeout=120) for f in [ex.submit(where_am_i) for _ in range(4)]]
    assert {r["image"] for r in inside} == {f"compute-endpoint worker image {images['podman'].split(':')[-1]}"}
    assert all(r["containerenv"] and r["python"] == IMAGE_PYTHON for r in inside)
    assert all("catatonit" in r["pid1"] or "init" in r["pid1"] for r in inside), "--init: the pool is not PID 1"
    (name,) = containers_of(ep)
    assert name.startswith("ce-in-podman-block-0-")
    assert ep.stop().returncode == 0
    assert containers_of(ep) == []


def test_a_container_left_by_a_killed_endpoint_is_removed_at_the_next_start(images, endpoint_factory):
    ep = endpoint_factory("podman-crash", config=container_config("podman", images["podman"]))
    with ep.executor() as ex:
        assert ex.submit(where_am_i).result(timeout=120)["containerenv"]
    (left,) = containers_of(ep)
    components = ep.components()
    os.kill(components["endpoint"], 9)
    os.kill(components["managers"][0], 9)  # the podman client: its container lives on
    assert containers_of(ep) == [left]
    ep.start()
    with ep.executor() as ex:
        assert ex.submit(where_am_i).result(timeout=120)["containerenv"]
    assert left not in containers_of(ep)
    assert ep.stop().returncode == 0
    assert containers_of(ep) == []


def test_charliecloud_runs_the_pool_in_a_directory_image(images, endpoint_factory):
    ep = endpoint_factory("in-charliecloud", config=container_config("charliecloud", images["charliecloud"]))
    with ep.executor() as ex:
        inside = ex.submit(where_am_i).result(timeout=120)
    assert inside["image"].startswith("compute-endpoint worker image ")
    assert not inside["containerenv"] and inside["python"] == IMAGE_PYTHON
    assert ep.stop().returncode == 0


def test_a_slurm_block_runs_its_manager_in_podman_and_scancel_removes_the_container(images, slurm, endpoint_factory):
    config = container_config("podman", images["podman"], address="127.0.0.1", heartbeat_threshold=6)
    config["engine"].update(max_workers_per_node=1, provider={
        "type": "SlurmProvider", "partition": "debug", "init_blocks": 1, "min_blocks": 0, "max_blocks": 1,
        "walltime": "00:10:00", "launcher": {"type": "SingleNodeLauncher"}},
        job_status_kwargs={"strategy_period": 1, "status_period": 1})
    ep = endpoint_factory("slurm-podman", config=config)
    with ep.executor() as ex:
        assert ex.submit(where_am_i).result(timeout=180)["containerenv"]
    (block,) = [b for b in ep.status()["provider"]["blocks"] if b["state"] == "RUNNING"]
    (name,) = containers_of(ep)
    assert name.startswith("ce-slurm-podman-block-0-")
    subprocess.run(["scancel", block["job_id"]], check=True, timeout=30)
    wait_for(lambda: containers_of(ep) == [], timeout=60, what="the job's trap to remove its container")
    assert ep.stop().returncode == 0


def test_a_task_asking_for_a_container_the_endpoint_does_not_list_is_refused_with_the_list(endpoint_factory):
    ep = endpoint_factory("registry", config={"containers": {"py": "podman:localhost/compute-endpoint-worker:x"}})
    refused = r"is not one this endpoint allows; it allows: py \(podman:"
    with ep.executor(container="podman:docker.io/evil/miner:latest") as ex, pytest.raises(InvalidTaskError,
                                                                                          match=refused):
        ex.submit(where_am_i).result(timeout=60)
    with ep.executor() as ex:  # the endpoint serves on
        assert ex.submit(sum, [1, 2]).result(timeout=60) == 3


def test_each_function_runs_in_the_container_it_asked_for_and_stop_removes_them(images, endpoint_factory):
    config = {"containers": {"py": {"runtime": "podman", "image": images["podman"]},
                             "hpc": f"charliecloud:{images['charliecloud']}"},
              "engine": {"max_workers_per_node": 2, "container_python": IMAGE_PYTHON, "worker_env": {"USER": "root"}}}
    ep = endpoint_factory("per-function", config=config)
    with ep.executor(container="py") as ex:
        in_podman = ex.submit(where_am_i).result(timeout=120)
        for _ in range(5):  # one after another: the warm worker takes each
            ex.submit(where_am_i).result(timeout=120)
    placements = wait_for(lambda: ep.status()["container_placements"].get("warm", 0) >= 5 and
                          ep.status()["container_placements"], what="five warm hits in status")
    assert placements["cold"] == 1, placements
    with ep.executor(container=f"charliecloud:{images['charliecloud']}") as ex:
        in_charliecloud = ex.submit(where_am_i).result(timeout=120)
    with ep.executor() as ex, pytest.raises(FileNotFoundError):  # no container: the host, which has no image marker
        ex.submit(where_am_i).result(timeout=120)
    assert in_podman["containerenv"] and in_podman["python"] == IMAGE_PYTHON
    assert not in_charliecloud["containerenv"] and in_charliecloud["image"] == in_podman["image"]
    assert ep.stop().returncode == 0
    leftover = subprocess.run(["podman", "ps", "--all", "--format={{.Names}}"], capture_output=True, text=True,
                              check=True).stdout.split()
    assert [name for name in leftover if name.startswith("ce-worker-")] == []


def test_hard_routing_starts_managers_of_a_type_as_its_tasks_come_and_each_serves_only_its_type(images,
                                                                                                  endpoint_factory):
    hpc = f"charliecloud:{images['charliecloud']}"
    py = f"podman:{images['podman']}"
    config = {"containers": {"py": py, "hpc": hpc},
              "engine": {"max_workers_per_node": 1, "container_python": IMAGE_PYTHON, "worker_env": {"USER": "root"},
                         "scheduler_mode": "hard", "strategy": "simple", "heartbeat_period": 1,
                         "provider": {"type": "LocalProvider", "init_blocks": 0, "min_blocks": 0, "max_blocks": 1},
                         "job_status_kwargs": {"strategy_period": 0.2, "max_idletime": 600}}}
    ep = endpoint_factory("hard", config=config)
    with ep.executor(container="hpc") as ex:
        in_hpc = [f.result(timeout=120) for f in [ex.submit(where_am_i) for _ in range(3)]]
    assert all(not r["containerenv"] for r in in_hpc)  # Charliecloud, not podman
    status = ep.status()
    assert [b["container_type"] for b in status["provider"]["blocks"]] == [hpc], "only the type asked for"
    (manager,) = status["manager_details"]
    assert manager["container_types"] == [hpc]
    wait_for(lambda: ep.status()["manager_details"][0]["containers"] == {hpc: {"warm": 1, "idle": 1, "busy": 0}},
             what="the manager's idle Charliecloud worker in status (its next heartbeat)")
    with ep.executor(container="py") as ex:
        assert ex.submit(where_am_i).result(timeout=120)["containerenv"]
    with ep.executor() as ex, pytest.raises(FileNotFoundError):  # RAW: its own manager, on the host
        ex.submit(where_am_i).result(timeout=120)
    status = wait_for(lambda: next((s for s in [ep.status()] if len(s["manager_details"]) == 3), None),
                      what="a manager per type")
    assert sorted(m["container_types"][0] for m in status["manager_details"]) == sorted(["RAW", hpc, py])
    # Each container's worker started once; the counts come with each manager's next heartbeat.
    wait_for(lambda: ep.status()["container_starts"] == {"cold": 2, "warm": 4}, what="2 cold starts, 4 warm hits")
    table = ep.cli("status", ep.name).stdout
    assert "2 cold starts, 4 warm hits" in table and "Container workers by manager" in table
    assert "Container type" in table and "c1-0" in table  # the blocks of hpc, the first alias
    assert ep.stop().returncode == 0
    assert containers_of(ep) == []
