"""Site configs in the shapes the upstream endpoint documents (Polaris, Perlmutter, Frontera, OSPool, ...), with
their placeholders filled in as a user would: each passes `check-config` and names its provider.

They are written for login nodes this machine is not: an interface it lacks is a warning, not an error.
"""

import subprocess
import sys

import pytest

SLURM_SITE = """
engine:
  type: GlobusComputeEngine
  max_workers_per_node: 2
  worker_debug: false
  address: {{type: address_by_interface, ifname: {ifname}}}
  provider:
    type: SlurmProvider
    partition: normal
    account: my-allocation
    launcher: {{type: SrunLauncher{overrides}}}
    scheduler_options: "#SBATCH --constraint=cpu"
    worker_init: "module load python; source ~/compute-env/bin/activate"
    cmd_timeout: 60
    nodes_per_block: 2
    init_blocks: 0
    min_blocks: 0
    max_blocks: 1
    walltime: "00:30:00"
"""

SITES = {
    "perlmutter": (SLURM_SITE.format(ifname="hsn0", overrides=", overrides: '-c 128'"), "SlurmProvider"),
    "frontera": (SLURM_SITE.format(ifname="ib0", overrides=""), "SlurmProvider"),
    "anvil": ("amqp_port: 443\n" + SLURM_SITE.format(ifname="ib0", overrides=""), "SlurmProvider"),
    "polaris": ("""
engine:
  type: GlobusComputeEngine
  max_workers_per_node: 4
  address: {type: address_by_interface, ifname: hsn0}
  provider:
    type: PBSProProvider
    launcher: {type: MpiExecLauncher, bind_cmd: --cpu-bind, overrides: --depth=64 --ppn 1}
    account: my-allocation
    queue: debug-scaling
    cpus_per_node: 32
    select_options: ngpus=4
    scheduler_options: "#PBS -l filesystems=home:grand:eagle"
    worker_init: "module use /soft/modulefiles; module load conda; conda activate compute"
    walltime: "01:00:00"
    nodes_per_block: 1
    init_blocks: 0
    min_blocks: 0
    max_blocks: 2
""", "PBSProProvider"),
    "faster": ("""
amqp_port: 443
engine:
  type: GlobusComputeEngine
  worker_debug: false
  strategy: {type: SimpleStrategy, max_idletime: 90}
  address: {type: address_by_interface, ifname: eno8303}
  provider:
    type: SlurmProvider
    partition: cpu
    mem_per_node: 128
    launcher: {type: SrunLauncher}
    worker_init: "source ~/compute-env/bin/activate"
    cmd_timeout: 120
    init_blocks: 0
    max_blocks: 1
    walltime: "00:10:00"
""", "SlurmProvider"),
    "ospool": ("""
engine:
  type: GlobusComputeEngine
  max_workers_per_node: 1
  worker_logdir_root: /tmp/logs
  working_dir: /tmp/tasks_dir
  encrypted: false
  provider:
    type: CondorProvider
    init_blocks: 1
    max_blocks: 1
    min_blocks: 0
    scheduler_options: |
      +ProjectName = "my-project"
      Requirements = HAS_SINGULARITY == True
""", "CondorProvider"),
    "midway": ("""
engine:
  type: GlobusComputeEngine
  label: Midway@RCC
  max_workers_per_node: 2
  address: {type: address_by_interface, ifname: bond0}
  provider:
    type: SlurmProvider
    launcher: {type: SrunLauncher}
    account: my-allocation
    partition: caslake
    nodes_per_block: 2
    init_blocks: 0
    max_blocks: 1
    walltime: "00:30:00"
""", "SlurmProvider"),
    "midway_apptainer": ("""
engine:
  type: GlobusComputeEngine
  max_workers_per_node: 2
  address: {type: address_by_interface, ifname: bond0}
  container_type: apptainer
  container_uri: /project/my-group/images/worker.sif
  container_cmd_options: -B /project
  provider:
    type: SlurmProvider
    launcher: {type: SrunLauncher}
    partition: caslake
    nodes_per_block: 1
    init_blocks: 0
    max_blocks: 1
    walltime: "00:30:00"
""", "SlurmProvider"),
    "expanse_mpi": ("""
engine:
  type: GlobusMPIEngine
  mpi_launcher: srun
  address: {type: address_by_interface, ifname: ib0}
  provider:
    type: SlurmProvider
    partition: compute
    account: my-allocation
    launcher: {type: SimpleLauncher}
    worker_init: "module load cpu/0.17.3b; source ~/compute-env/bin/activate"
    nodes_per_block: 4
    init_blocks: 0
    max_blocks: 1
    walltime: "00:05:00"
""", "SlurmProvider"),
    "worker_pinning": ("""
engine:
  type: GlobusComputeEngine
  max_workers_per_node: 4
  available_accelerators: 4
  provider: {type: LocalProvider, init_blocks: 1, min_blocks: 0, max_blocks: 1}
""", "LocalProvider"),
    "by_route": ("""
heartbeat_period: 15
heartbeat_threshold: 200
engine:
  max_workers_per_node: 1
  address: {type: address_by_route}
  provider: {type: TorqueProvider, account: my-allocation, init_blocks: 0, max_blocks: 2, walltime: "00:20:00"}
""", "TorqueProvider"),
    "lsf": ("""
engine:
  address: {type: address_by_hostname}
  provider:
    type: LSFProvider
    project: my-project
    queue: batch
    nodes_per_block: 2
    launcher: {type: JsrunLauncher, overrides: "-g 1"}
    init_blocks: 0
    walltime: "00:30:00"
""", "LSFProvider"),
}


def check(tmp_path, name: str, text: str) -> subprocess.CompletedProcess:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return subprocess.run([sys.executable, "-m", "compute_endpoint.cli.main", "check-config", str(path)],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("site", sorted(SITES))
def test_documented_site_configs_pass_check_config_and_name_their_provider(tmp_path, site):
    text, provider = SITES[site]
    done = check(tmp_path, site, text)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "valid" in done.stdout and f"Provider  {provider}" in done.stdout
    assert "Blocks" in done.stdout and "Address" in done.stdout


def test_an_interface_this_host_lacks_is_a_warning_naming_the_ones_it_has(tmp_path):
    done = check(tmp_path, "polaris", SITES["polaris"][0])
    assert "WARNING: address_by_interface(hsn0)" in done.stdout and "its interfaces are: " in done.stdout
    assert "lo" in done.stdout.split("its interfaces are: ")[1]


def test_encrypted_false_is_a_note_not_an_error(tmp_path):
    done = check(tmp_path, "ospool", SITES["ospool"][0])
    assert "Note      encrypted: false is ignored: managers always connect over CurveZMQ" in done.stdout


def test_amqp_port_replaces_the_port_of_the_broker_url(tmp_path):
    done = check(tmp_path, "anvil", SITES["anvil"][0])
    assert "Broker    amqp://127.0.0.1:443/%2F" in done.stdout
