"""Each component's settings: one constructor from the config, one form on the command line."""

import subprocess
import sys
from pathlib import Path

import pytest

from compute_endpoint.config import load_yaml_text
from compute_endpoint.endpoint.main import DaemonSettings
from compute_endpoint.interchange.settings import InterchangeSettings
from compute_endpoint.manager.settings import ManagerSettings
from compute_endpoint.worker.settings import WorkerSettings

CONFIG = load_yaml_text("""
max_payload_bytes: 2048
log_level: DEBUG
engine:
  max_workers_per_node: 3
  prefetch_capacity: 0
  heartbeat_period: 2
  heartbeat_threshold: 9
  task_walltime: 30
  max_retries_on_system_failure: 4
  address: 10.1.2.3
""", "config.yaml")


@pytest.mark.parametrize("settings", [
    ManagerSettings.from_config(CONFIG, "tcp://10.1.2.3:54000", "node7.ep.block-2", parent_pid=42,
                                log_file=Path("/var/log/m.log")),
    ManagerSettings(interchange="tcp://h:1", workers=1, manager_id="m"),
    InterchangeSettings.from_config(CONFIG, "ipc:///run/ep/daemon.sock", "ipc:///run/ep/manager.sock", 54000,
                                    parent_pid=7),
    WorkerSettings(fd=5, parent_pid=9, max_result_bytes=100, manager_id="m"),
    DaemonSettings("demo", ready_fd=4, identity_stdin=True),
    DaemonSettings("demo", components="units", log_to_stderr=True),
], ids=["manager", "manager-defaults", "interchange", "worker", "daemon", "daemon-units"])
def test_settings_survive_their_command_line(settings):
    assert type(settings).from_argv(settings.to_argv()) == settings


def test_the_manager_takes_every_engine_setting_from_the_config():
    s = ManagerSettings.from_config(CONFIG, "tcp://10.1.2.3:54000", "m1")
    assert (s.workers, s.prefetch, s.heartbeat_period, s.heartbeat_threshold, s.walltime, s.max_result_bytes,
            s.log_level) == (3, 0, 2, 9, 30, 2048, "DEBUG")


def test_the_interchange_takes_every_engine_setting_from_the_config():
    s = InterchangeSettings.from_config(CONFIG, "ipc:///x", "ipc:///y", 0)
    assert (s.worker_address, s.heartbeat_period, s.heartbeat_threshold, s.max_retries, s.log_level) == (
        "10.1.2.3", 2, 9, 4, "DEBUG")


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.1.1", "localhost", "::1"])
def test_an_interchange_for_this_host_only_opens_no_tcp_port(address):
    config = load_yaml_text(f"engine: {{address: '{address}', worker_port: 54000}}", "config.yaml")
    s = InterchangeSettings.from_config(config, "ipc:///x", "ipc:///y", 54000)
    assert (s.local_managers, s.worker_address, s.worker_port) == ("ipc:///y", "", 0)


def test_the_manager_command_is_what_a_batch_job_would_run():
    s = ManagerSettings(interchange="tcp://10.0.0.1:54000", workers=4, manager_id="n1.ep.block-0", walltime=60.0)
    assert s.command(python="/opt/ce/bin/python") == [
        "/opt/ce/bin/python", "-m", "compute_endpoint.manager", "--interchange=tcp://10.0.0.1:54000",
        "--workers=4", "--manager-id=n1.ep.block-0", "--drain-after=0.0", "--prefetch=0", "--heartbeat-period=5.0",
        "--heartbeat-threshold=20.0", "--walltime=60.0", "--max-result-bytes=10485760", "--memory-limit=0",
        "--process-limit=0", "--cpu-limit=0.0", "--worker-type=RAW", "--container-python=python3",
        "--container-idle-timeout=600.0", "--parent-pid=0",
        "--log-level=INFO"]


def test_a_value_that_looks_like_a_flag_is_still_a_value():
    s = ManagerSettings(interchange="tcp://h:1", workers=1, manager_id="-odd --id")
    assert ManagerSettings.from_argv(s.to_argv()).manager_id == "-odd --id"


def test_every_manager_setting_is_documented_in_its_help():
    done = subprocess.run([sys.executable, "-m", "compute_endpoint.manager", "--help"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0
    for flag in ManagerSettings(interchange="x", workers=1).to_argv():
        assert flag.partition("=")[0] in done.stdout


def test_a_bad_command_line_names_the_flag():
    done = subprocess.run([sys.executable, "-m", "compute_endpoint.manager", "--interchange", "tcp://h:1",
                           "--workers", "many"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--workers: invalid int value: 'many'" in done.stderr


def test_a_system_endpoint_with_the_longest_name_keeps_its_sockets_in_its_state_directory():
    from compute_endpoint.paths import EndpointHome

    ep = EndpointHome(Path("/etc/compute-endpoint"), Path("/var/lib/compute-endpoint"), system=True).endpoint("n" * 64)
    assert ep.socket_dir == ep.state_dir / "run", "each unit has its own /tmp: the sockets must not go there"
