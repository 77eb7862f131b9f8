"""A bad config, met through the command line: `start` and `check-config` name its file, line and key."""


def test_start_refuses_a_bad_config_with_file_line_and_key(endpoint_factory):
    ep = endpoint_factory(start=False)
    config = ep.dir / "config.yaml"
    config.write_text(config.read_text().replace("max_workers_per_node: 2", "max_workers_per_node: -1"))
    done = ep.cli("start", "default")
    assert done.returncode == 78  # EX_CONFIG
    line = next(i for i, text in enumerate(config.read_text().splitlines(), 1) if "max_workers_per_node" in text)
    assert f"{config}:{line}: engine.max_workers_per_node: expected an integer of at least 1, got -1" in done.stderr
    assert "Traceback" not in done.stderr
    assert ep.state() == "Initialized"


def test_check_config_command(endpoint_factory, tmp_path):
    ep = endpoint_factory(start=False)
    good = ep.cli("check-config", str(ep.dir / "config.yaml"))
    assert good.returncode == 0 and "valid" in good.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("engine:\n  provider:\n    type: KubernetsProvider\n")
    done = ep.cli("check-config", str(bad))
    assert done.returncode == 78 and f"{bad}:3: engine.provider.type" in done.stderr
