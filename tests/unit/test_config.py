"""Configuration: config.yaml and config.py load into Config objects; every error names file, line and key."""

import textwrap

import pytest

from compute_endpoint.config import Config, ConfigError, Engine, LocalProvider, load_config, load_yaml_text

from ..support.config_text import error_of, load


def test_the_seed_import_path_resolves():
    from compute_endpoint.endpoint.utils.config import Config as SeedConfig

    assert SeedConfig is Config


def test_defaults_and_our_own_keys():
    config = load("""
        display_name: Laptop
        broker: {url: "amqps://broker.example.org:5671/%2F", tls_ca: /etc/ssl/ca.pem}
        engine:
          max_workers_per_node: 3
          task_walltime: 60
          provider: {init_blocks: 2, max_blocks: 4}
    """)
    assert config.display_name == "Laptop"
    assert config.engine.max_workers_per_node == 3
    assert config.engine.provider.init_blocks == 2
    assert config.broker.tls_ca == "/etc/ssl/ca.pem"
    assert config.heartbeat_period == 30 and config.engine.max_retries_on_system_failure == 1


def test_an_upstream_globus_compute_config_loads():
    config = load("""
        display_name: null
        heartbeat_period: 15
        engine:
          type: GlobusComputeEngine
          max_workers: 4
          max_retries_on_system_failure: 2
          job_status_kwargs: {max_idletime: 60.0, strategy_period: 10.0}
          provider:
            type: LocalProvider
            init_blocks: 1
            min_blocks: 0
            max_blocks: 1
            worker_init: "source ~/venv/bin/activate"
    """)
    assert config.engine.max_workers_per_node == 4
    assert config.engine.job_status_kwargs.max_idletime == 60.0
    assert load("engine: {type: HighThroughputEngine}").engine.type == "HighThroughputEngine"


def test_address_by_interface_resolves():
    config = load("engine: {address: {type: address_by_interface, ifname: lo}}")
    assert config.engine.address == "127.0.0.1"


@pytest.mark.parametrize("text, expected", [
    ("engine:\n  max_workers_per_node: -2\n",
     "config.yaml:2: engine.max_workers_per_node: expected an integer of at least 1, got -2"),
    ("engine:\n  max_workers_per_node: two\n",
     "config.yaml:2: engine.max_workers_per_node: expected an integer of at least 1, got str 'two'"),
    ("engine:\n  provider:\n    type: SlurmProvidr\n",
     "config.yaml:3: engine.provider.type: unknown provider type 'SlurmProvidr'; expected one of: AWSProvider, "),
    ("engine:\n  provider:\n    type: SlurmProvider\n    partitoin: debug\n",
     "config.yaml:4: engine.provider.partitoin: SlurmProvider takes no argument 'partitoin'; it takes: partition, "),
    ("engine:\n  provider:\n    type: SlurmProvider\n    launcher: {type: SrunLauncher, overides: x}\n",
     "config.yaml:4: engine.provider.launcher.overides: SrunLauncher takes no argument 'overides'; it takes: debug, "),
    ("engine:\n  provider:\n    type: SlurmProvider\n    nodes_per_block: two\n",
     "config.yaml:4: engine.provider.nodes_per_block: SlurmProvider refused its arguments: argument "),
    ("engine:\n  provider:\n    init_blocks: 5\n",
     "config.yaml:3: engine.provider.init_blocks: is 5; it must lie between min_blocks (0) and max_blocks (1)"),
    ("cores_per_worker: 2\n", "config.yaml:1: cores_per_worker: is not supported by this endpoint: use max_workers"),
    ("engine:\n  container_type: apptainer\n", "config.yaml:2: engine.container_type: apptainer needs an image to "
                                               "run (container_uri)"),
    ("engine:\n  container_type: lxc\n", "config.yaml:2: engine.container_type: expected one of: docker, podman,"),
    ("engine:\n  available_accelerators: [0, 'a,b']\n", "config.yaml:2: engine.available_accelerators: device ids"),
    ("engine:\n  address: {type: address_by_magic}\n", "config.yaml:2: engine.address: expected an address, or"),
    ("engine:\n  strategy: {type: CleverStrategy}\n", "config.yaml:2: engine.strategy.type: expected one of: "),
    ("engine:\n  colour: blue\n",
     "config.yaml:2: engine.colour: unknown key; expected one of: address, available_accelerators,"),
    ("heartbeat_period: 0\n", "config.yaml:1: heartbeat_period: expected a number greater than 0, got 0"),
    ("broker:\n  url: amqp://me:secret@host/\n", "config.yaml:2: broker.url: must not contain a user name or password"),
    ("broker:\n  url: http://host/\n", "config.yaml:2: broker.url: expected an amqp:// or amqps:// URL"),
    ("engine: [1, 2]\n", "config.yaml:1: engine: expected a mapping of settings, got list"),
    ("engine:\n  type: ThreadPoolEngine\n", "config.yaml:2: engine.type: ThreadPoolEngine is not supported"),
    ("engine:\n  type: Turbo\n", "config.yaml:2: engine.type: unknown engine type 'Turbo'"),
    ("display_name: [\n", "config.yaml:2: invalid YAML"),
    ("- a\n- b\n", "config.yaml:1: expected a mapping of settings at the top level, got list"),
    ("engine:\n  heartbeat_period: 10\n  heartbeat_threshold: 5\n",
     "config.yaml:3: engine.heartbeat_threshold: is 5s; it must exceed heartbeat_period (10s)"),
    ("engine:\n  max_workers: 2\n  max_workers_per_node: 2\n",
     "config.yaml:2: engine.max_workers: set either max_workers or max_workers_per_node, not both"),
    ("allowed_functions: [not-a-hash]\n", "config.yaml:1: allowed_functions: expected function hashes"),
    ("debug: yes please\n", "config.yaml:1: debug: expected true or false, got str 'yes please'"),
])
def test_bad_values_name_file_line_key_and_expectation(text, expected):
    assert error_of(text).startswith(expected)


def test_config_py_defining_config_loads(tmp_path):
    path = tmp_path / "config.py"
    path.write_text(textwrap.dedent("""
        from compute_endpoint.endpoint.utils.config import Config
        from compute_endpoint.config import GlobusComputeEngine, LocalProvider

        config = Config(
            display_name="from python",
            engine=GlobusComputeEngine(max_workers_per_node=2, provider=LocalProvider(init_blocks=1)),
        )
    """))
    config = load_config(path)
    assert config.display_name == "from python" and config.engine.max_workers_per_node == 2


def test_config_py_errors_name_the_line(tmp_path):
    path = tmp_path / "config.py"
    path.write_text("from compute_endpoint.config import Config, Engine\n\n"
                    "config = Config(engine=Engine(max_workers_per_node=0))\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}:3: max_workers_per_node: expected an integer of at least 1, got 0"

    path.write_text("x = 1\n")
    with pytest.raises(ConfigError, match="must define `config = Config"):
        load_config(path)
    path.write_text("config = Config(\n")
    with pytest.raises(ConfigError, match=r"config.py:1: SyntaxError"):
        load_config(path)


def test_objects_validate_when_built_directly():
    with pytest.raises(ConfigError, match="min_blocks: is 3, above max_blocks"):
        LocalProvider(min_blocks=3, max_blocks=1)
    with pytest.raises(ConfigError, match="provider: expected a LocalProvider or a Parsl provider"):
        Engine(provider="slurm")


def test_turning_allowed_functions_on_or_off_needs_a_restart_but_changing_the_list_does_not():
    from compute_endpoint.endpoint.reload import apply_reload

    running = load_yaml_text("allowed_functions: null\n", "config.yaml")
    changes = apply_reload(running, load_yaml_text("allowed_functions: [" + "a" * 32 + "]\n", "config.yaml"))
    assert changes.need_restart == ["allowed_functions"] and running.allowed_functions is None
    running = load_yaml_text("allowed_functions: [" + "a" * 32 + "]\n", "config.yaml")
    changes = apply_reload(running, load_yaml_text("allowed_functions: [" + "b" * 32 + "]\n", "config.yaml"))
    assert changes.applied == ["allowed_functions"] and running.allowed_functions == ["b" * 32]


@pytest.mark.parametrize("url", ["amqp://broker.example.org/", "amqp://10.0.0.5:5672/%2F"])
def test_plain_amqp_to_another_host_is_refused_unless_allowed(url):
    with pytest.raises(ConfigError, match="would send the broker password and every task in clear"):
        load_yaml_text(f"broker: {{url: '{url}'}}\n", "config.yaml")
    assert load_yaml_text(f"broker: {{url: '{url}', allow_plaintext: true}}\n", "config.yaml").broker.allow_plaintext


@pytest.mark.parametrize("url", ["amqp://127.0.0.1/", "amqp://localhost:5672/%2F", "amqp://[::1]/",
                                 "amqps://broker.example.org/"])
def test_loopback_and_tls_brokers_need_no_permission(url):
    assert load_yaml_text(f"broker: {{url: '{url}'}}\n", "config.yaml").broker.url == url


def test_allowed_submitters_are_broker_identities():
    config = load_yaml_text("allowed_submitters: [bob, carol-2]\n", "config.yaml")
    assert config.allowed_submitters == ["bob", "carol-2"]
    with pytest.raises(ConfigError, match="allowed_submitters: expected broker identities"):
        load_yaml_text("allowed_submitters: ['bob.evil']\n", "config.yaml")


def test_a_broker_cluster_is_a_list_of_urls_each_checked_and_amqp_port_applies_to_every_node():
    config = load_yaml_text("broker:\n  url: [amqps://q1/%2F, amqps://q2:5671/%2F, amqps://q3/%2F]\n"
                            "  tls_ca: /etc/ssl/ca.pem\namqp_port: 5999\n", "config.yaml")
    assert config.broker.urls == ["amqps://q1:5999/%2F", "amqps://q2:5999/%2F", "amqps://q3:5999/%2F"]
    assert config.broker.queue_type == "auto" and config.broker.delivery_limit == 10


@pytest.mark.parametrize(("url", "error"), [
    ("[amqps://q1/%2F, 'amqp://alice:pw@q2/%2F']", "must not contain a user name or password"),
    ("[amqps://q1/%2F, amqp://q2/%2F]", "amqp:// to q2 would send the broker password"),
    ("[amqps://q1/%2F, 5]", "expected URLs"),
    ("[]", "names no broker"),
    ("{a: 1}", "expected a URL or a list of URLs"),
])
def test_every_node_of_a_broker_cluster_is_checked_and_a_bad_one_named(url, error):
    with pytest.raises(ConfigError, match=error):
        load_yaml_text(f"broker:\n  url: {url}\n", "config.yaml")


def test_queue_type_and_delivery_limit_are_checked():
    with pytest.raises(ConfigError, match="expected one of: auto, quorum, classic"):
        load_yaml_text("broker: {queue_type: mirrored}\n", "config.yaml")
    with pytest.raises(ConfigError, match="at least 1"):
        load_yaml_text("broker: {delivery_limit: 0}\n", "config.yaml")
