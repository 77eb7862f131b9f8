"""The command's contract with scripts: exit codes, endpoints named by name or id, --config-dir, logout."""

import json
import os
from pathlib import Path

import pika
import pytest
from pika.exceptions import ProbableAuthenticationError
from typer.testing import CliRunner

from compute_endpoint import control, systemctl
from compute_endpoint.broker import describe_connection_error
from compute_endpoint.cli.logs import Component, journal_command, unit_of
from compute_endpoint.cli.main import app
from compute_endpoint.config import ConfigError
from compute_endpoint.credentials.identity import MissingCredentialsError
from compute_endpoint.endpoint.refusals import another_daemon, refusal_advice
from compute_endpoint.errors import (
    AlreadyRunningError,
    EndpointError,
    ExitCode,
    NoPermissionError,
    UnavailableError,
    exit_code_of,
)
from compute_endpoint.readiness import Readiness
from compute_endpoint.sdk.errors import BrokerRefusedError, BrokerUnavailableError

ENDPOINT_ID = "6f1d0e4c-2b7a-4c4e-9a51-3f7b2d8c9e10"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A private endpoint home, chosen as the environment chooses it (monkeypatch restores what --config-dir sets)."""
    root = tmp_path / "home"
    monkeypatch.setenv("COMPUTE_ENDPOINT_HOME", str(root))
    monkeypatch.delenv("COMPUTE_ENDPOINT_SYSTEM", raising=False)
    monkeypatch.delenv("COMPUTE_ENDPOINT_KEY_FILE", raising=False)
    monkeypatch.delenv("COMPUTE_CLIENT_ID", raising=False)
    monkeypatch.delenv("COMPUTE_CLIENT_SECRET", raising=False)
    return root


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(app, list(args), input=input)


def configured(home: Path, name: str = "default", endpoint_id: str | None = ENDPOINT_ID) -> Path:
    done = run("configure", name, "--broker-url", "amqp://127.0.0.1:5672/%2F")
    assert done.exit_code == 0, done.output
    info = home / name / "endpoint.json"
    info.write_text(json.dumps({"name": name, "endpoint_id": endpoint_id, "owner": "alice"}))
    return home / name


# --- exit codes ---------------------------------------------------------------------------------------------


def test_the_help_ends_with_the_exit_codes():
    done = run("--help")
    assert done.exit_code == 0
    epilog = done.output[done.output.index("Exit codes"):]
    for code in (0, 1, 2, 69, 70, 73, 77, 78):
        assert f" {code}  " in epilog, code
    assert "already running" in epilog and "configuration" in epilog


@pytest.mark.parametrize(("error", "code"), [
    (EndpointError("x"), 1),
    (ConfigError("engine.provider.type", "unknown"), 78),
    (MissingCredentialsError("no identity"), 78),
    (BrokerUnavailableError("cannot reach"), 69),
    (UnavailableError("cannot reach"), 69),
    (BrokerRefusedError("refused the credentials"), 77),
    (NoPermissionError("not yours"), 77),
    (AlreadyRunningError("already running"), 73),
])
def test_each_error_exits_with_its_code(home, monkeypatch, error, code):
    configured(home)

    def fail(*_args, **_kwargs):
        raise error

    monkeypatch.setattr(control, "start", fail)
    done = run("start", "default")
    assert done.exit_code == code, done.output
    assert str(error) in done.output and "Traceback" not in done.output


def test_an_unexpected_exception_exits_70_and_names_it(home, monkeypatch):
    def broken(_home):
        raise KeyError("surprise")

    monkeypatch.setattr(control, "list_endpoints", broken)
    done = run("list")
    assert done.exit_code == ExitCode.INTERNAL == 70
    assert "unexpected KeyError" in done.output and "--debug" in done.output


def test_a_failed_daemon_start_carries_its_code_through_the_readiness_pipe():
    read_end, write_end = os.pipe()
    Readiness(write_end).failed("config.yaml:3: engine.provider.type: unknown", ExitCode.BAD_CONFIG)
    with os.fdopen(read_end) as pipe:
        line = pipe.readline().strip()
    assert line == "FAILED 78 config.yaml:3: engine.provider.type: unknown"
    assert Readiness.parse_failed(line) == (78, "config.yaml:3: engine.provider.type: unknown")
    assert Readiness.parse_failed("FAILED an older daemon said") == (1, "an older daemon said")


def test_broker_refusals_say_which_code_they_end_the_daemon_with():
    assert exit_code_of(another_daemon("exclusive use")) == ExitCode.ALREADY_RUNNING
    mismatch = refusal_advice(406, "PRECONDITION_FAILED - inequivalent arg", "declaring tasks", was_ready=False,
                              identity="alice", owner="alice", creating_exchanges=False)
    assert mismatch is not None and exit_code_of(mismatch) == ExitCode.BAD_CONFIG
    refused = refusal_advice(403, "ACCESS_REFUSED", "declaring tasks", was_ready=False, identity="bob",
                             owner="alice", creating_exchanges=False)
    assert refused is not None and exit_code_of(refused) == ExitCode.NO_PERMISSION
    params = pika.URLParameters("amqp://127.0.0.1:5672/%2F")
    bad_secret = describe_connection_error(ProbableAuthenticationError("ACCESS_REFUSED"), params, "alice")
    assert bad_secret.fatal and exit_code_of(bad_secret.message) == ExitCode.NO_PERMISSION
    unreachable = describe_connection_error(ConnectionRefusedError(111, "refused"), params, "alice")
    assert not unreachable.fatal
    assert exit_code_of("the interchange could not start: port taken") == ExitCode.FAILED  # no code: 1


def test_systemd_does_not_restart_what_a_restart_cannot_fix():
    assert "RestartPreventExitStatus=73 77 78" in systemctl._BOOT_UNIT
    template = REPO / "roles/compute_common/templates/compute-endpoint@.service.j2"
    assert "RestartPreventExitStatus=73 77 78" in template.read_text()


# --- names and ids ----------------------------------------------------------------------------------------------


def test_an_endpoint_is_found_by_its_id(home):
    configured(home, "alpha")
    configured(home, "beta", endpoint_id="0b7e8a52-1111-4222-8333-444455556666")
    for given in (ENDPOINT_ID, ENDPOINT_ID.upper(), "alpha"):
        done = run("status", given, "--json")
        assert done.exit_code == 0, done.output
        assert json.loads(done.output)["name"] == "alpha"


def test_an_unknown_name_or_id_names_both_possibilities(home):
    configured(home)
    done = run("status", "00000000-0000-4000-8000-000000000000")
    assert done.exit_code == ExitCode.NOT_FOUND == 2
    assert "is not configured" in done.output and "has the id" in done.output
    assert "compute-endpoint list" in done.output


# --- --config-dir -------------------------------------------------------------------------------------------------


def test_config_dir_chooses_the_endpoints_and_is_passed_on(home, tmp_path):
    other = tmp_path / "other"
    done = run("--config-dir", str(other), "configure", "elsewhere")
    assert done.exit_code == 0, done.output
    assert (other / "elsewhere" / "config.yaml").exists() and not (home / "elsewhere").exists()
    # started daemons inherit the environment: the directory reaches them through it
    assert os.environ["COMPUTE_ENDPOINT_HOME"] == str(other)
    listed = run("-c", str(other), "list", "--json")
    assert [row["name"] for row in json.loads(listed.output)] == ["elsewhere"]


# --- logout -------------------------------------------------------------------------------------------------------


def test_logout_removes_stored_credentials_and_says_so_once(home):
    ep = configured(home)
    stored = run("login", "default", "--client-id", "alice", input="s3cret\n")
    assert stored.exit_code == 0, stored.output
    assert (ep / "credentials.enc").exists()
    done = run("logout", ENDPOINT_ID)
    assert done.exit_code == 0, done.output
    assert "Removed the stored credentials of 'alice' for endpoint 'default'" in done.output
    assert not (ep / "credentials.enc").exists()
    again = run("logout")
    assert again.exit_code == 0
    assert "No credentials are stored for endpoint 'default'; nothing to remove." in again.output


def test_logout_all_removes_every_endpoints_credentials_and_the_key(home):
    for name in ("one", "two"):
        configured(home, name, endpoint_id=None)
        assert run("login", name, "--client-id", "alice", input="s3cret\n").exit_code == 0
    done = run("logout", "--all")
    assert done.exit_code == 0, done.output
    assert done.output.count("Removed the stored credentials") == 2
    assert "Removed the credential key" in done.output and not (home / "credentials.key").exists()
    assert "nothing to remove" in run("logout", "--all").output


# --- logs ---------------------------------------------------------------------------------------------------------


def test_logs_of_packaged_units_come_from_each_components_unit():
    units = systemctl.appliance_units("site")
    assert unit_of(units, Component.ENDPOINT) == "compute-endpoint@site.service"
    assert unit_of(units, Component.INTERCHANGE) == "compute-interchange@site.service"
    assert unit_of(units, Component.MANAGER) == "compute-manager@site.service"
    boot = systemctl.Units("compute-endpoint-alice-site.service", ("compute-endpoint-alice-site.service",))
    assert unit_of(boot, Component.ENDPOINT) == "compute-endpoint-alice-site.service"
    assert unit_of(boot, Component.INTERCHANGE) is None  # the one unit's children write their files
    assert journal_command("u.service", 20, True) == ["journalctl", "-u", "u.service", "-n", "20", "--no-pager",
                                                      "-f"]


def test_logs_print_the_last_lines_of_a_file(home):
    ep = configured(home)
    (ep / "logs").mkdir()
    (ep / "logs" / "endpoint.log").write_text("".join(f"line {i}\n" for i in range(10)))
    done = run("logs", "default", "-n", "3")
    assert done.exit_code == 0, done.output
    assert done.output == "line 7\nline 8\nline 9\n"
    missing = run("logs", "default", "--component", "interchange")
    assert missing.exit_code == 2 and "no interchange log yet" in missing.output
