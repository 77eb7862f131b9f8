"""Keys of upstream endpoint configs that operators rely on, working: accelerators, working_dir, the
endpoint's setup and teardown commands, an address this host lacks, worker_debug."""

import os

from ..support.broker import wait_for


def devices():
    import os
    import time
    time.sleep(0.2)  # so that both workers take a share
    return os.environ.get("CUDA_VISIBLE_DEVICES"), os.environ.get("ROCR_VISIBLE_DEVICES"), os.getpid()


def where_am_i():
    import os
    return os.getcwd()


def test_each_worker_sees_its_own_accelerator(endpoint_factory):
    ep = endpoint_factory(config={"engine": {"max_workers_per_node": 4, "available_accelerators": ["gpu-a", "gpu-b"]}})
    with ep.executor() as ex:
        seen = [f.result(timeout=60) for f in [ex.submit(devices) for _ in range(12)]]
    assert ep.status()["workers"] == 2, "one worker per accelerator"
    by_pid = {pid: (cuda, rocr) for cuda, rocr, pid in seen}
    assert sorted(cuda for cuda, _ in by_pid.values()) == ["gpu-a", "gpu-b"]
    assert all(cuda == rocr for cuda, rocr in by_pid.values())


def test_working_dir_is_where_tasks_run(endpoint_factory, tmp_path):
    workdir = tmp_path / "scratch"
    workdir.mkdir()
    ep = endpoint_factory(config={"engine": {"working_dir": str(workdir)}})
    with ep.executor() as ex:
        assert ex.submit(where_am_i).result(timeout=60) == str(workdir)


def test_endpoint_setup_runs_before_start_and_teardown_after_stop(endpoint_factory, tmp_path):
    marks = tmp_path / "marks"
    ep = endpoint_factory(config={"endpoint_setup": f"echo setup >> {marks}",
                                  "endpoint_teardown": f"echo teardown >> {marks}"})
    assert marks.read_text() == "setup\n"
    assert ep.stop().returncode == 0
    wait_for(lambda: marks.read_text() == "setup\nteardown\n", timeout=10, what="the teardown")


def test_a_failing_endpoint_setup_stops_the_start_with_its_output(endpoint_factory):
    ep = endpoint_factory(config={"endpoint_setup": "echo 'no scratch space left' >&2; exit 4"}, start=False)
    done = ep.cli("start", ep.name)
    assert done.returncode != 0
    assert "endpoint_setup exited with 4: no scratch space left" in done.stderr, done.stderr
    assert ep.state() != "Running" and not (ep.dir / "daemon.pid").exists()


def test_start_refuses_an_interface_this_host_lacks_naming_the_ones_it_has(endpoint_factory):
    ep = endpoint_factory(config={"engine": {"address": {"type": "address_by_interface", "ifname": "hsn0"}}},
                          start=False)
    done = ep.cli("start", ep.name)
    assert done.returncode != 0
    assert "engine.address: address_by_interface(hsn0): this host has no IPv4 address on interface 'hsn0'" \
        in done.stderr and "its interfaces are: " in done.stderr and "lo" in done.stderr


def test_worker_debug_makes_managers_log_at_debug(endpoint_factory):
    ep = endpoint_factory(config={"engine": {"worker_debug": True}})
    with ep.executor() as ex:
        ex.submit(where_am_i).result(timeout=60)
    manager_log = next((ep.dir / "logs").glob("manager-*.log")).read_text()
    assert " DEBUG " in manager_log or "DEBUG" in manager_log
    assert os.path.exists(ep.dir / "logs")
