"""Endpoints installed as systemd units, so that the CLI and systemctl never disagree.

Two installations exist:

* the packaged appliance (DEB/RPM): template units ``compute-endpoint@NAME``,
  ``compute-interchange@NAME`` and ``compute-manager@NAME``, grouped by
  ``compute-endpoint-stack@NAME.target``, for endpoints under /etc/compute-endpoint;
* a per-user endpoint made persistent with ``enable-on-boot``: one unit,
  ``compute-endpoint-USER-NAME.service``, running the whole endpoint as that user.

When either exists, ``start``/``stop``/``restart`` go through systemctl.
"""

import os
import pwd
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .errors import EndpointError, ExitCode
from .paths import EndpointDir, EndpointHome

UNIT_DIRS = (Path("/etc/systemd/system"), Path("/lib/systemd/system"), Path("/usr/lib/systemd/system"))
BOOT_UNIT_DIR = Path("/etc/systemd/system")


def systemd_running() -> bool:
    """True when this machine was booted with systemd (sd_booted)."""
    return Path("/run/systemd/system").is_dir()


@dataclass(frozen=True)
class Units:
    """The unit that starts and stops one endpoint, and the services it covers."""

    control: str  # what start/stop act on
    services: tuple[str, ...]

    @property
    def daemon(self) -> str:
        return self.services[0]


def appliance_units(name: str) -> Units:
    return Units(f"compute-endpoint-stack@{name}.target",
                 (f"compute-endpoint@{name}.service", f"compute-interchange@{name}.service",
                  f"compute-manager@{name}.service"))


def boot_unit_name(user: str, name: str) -> str:
    return f"compute-endpoint-{user}-{name}.service"


def installed_units(home: EndpointHome, ep: EndpointDir) -> Units | None:
    """The units this endpoint runs under, if it is installed as units on a systemd host."""
    if not systemd_running():
        return None
    if home.system and any((d / "compute-endpoint@.service").exists() for d in UNIT_DIRS):
        return appliance_units(ep.name)
    unit = boot_unit_name(owner_of(ep), ep.name)
    if (BOOT_UNIT_DIR / unit).exists():
        return Units(unit, (unit,))
    return None


def owner_of(ep: EndpointDir) -> str:
    try:
        return pwd.getpwuid(ep.config_dir.stat().st_uid).pw_name
    except (KeyError, OSError):
        return pwd.getpwuid(os.geteuid()).pw_name


def systemctl(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    done = subprocess.run(["systemctl", *args], capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise EndpointError(f"systemctl {' '.join(args)} failed: {(done.stderr or done.stdout).strip()}")
    return done


def unit_state(unit: str) -> str:
    """systemd's ActiveState: active, activating, deactivating, inactive or failed."""
    return systemctl("show", "-P", "ActiveState", unit, check=False).stdout.strip() or "unknown"


def recent_journal(unit: str, lines: int = 5) -> str:
    done = subprocess.run(["journalctl", "-u", unit, "-n", str(lines), "--no-pager", "-o", "cat"],
                          capture_output=True, text=True, timeout=30)
    return " | ".join(line.strip() for line in done.stdout.splitlines() if line.strip())


def start_units(units: Units) -> None:
    """Start and wait for READY (Type=notify); on failure, say why from the journal.

    The services are named beside the target because systemctl waits only for
    the jobs it was asked for, not for those they pull in.
    """
    done = systemctl("start", *_distinct(units.control, *units.services), check=False)
    failed = done.returncode != 0 or unit_state(units.daemon) not in ("active", "reloading")
    if failed:
        error = EndpointError(f"systemd could not start {units.daemon}: {recent_journal(units.daemon)} "
                              f"(see `journalctl -u {units.daemon}`)")
        status = systemctl("show", "-P", "ExecMainStatus", units.daemon, check=False).stdout.strip()
        if status.isdigit() and int(status) in set(ExitCode) - {ExitCode.OK}:  # the daemon's own verdict
            error.exit_code = int(status)
        raise error


def stop_units(units: Units) -> None:
    systemctl("stop", *_distinct(*units.services, units.control))


def _distinct(*units: str) -> list[str]:
    return list(dict.fromkeys(units))


# --- per-user persistence (enable-on-boot) ------------------------------------

_BOOT_UNIT = """\
# Written by `compute-endpoint enable-on-boot {name}`; remove with `disable-on-boot`.
[Unit]
Description=Compute endpoint {name} of {user}
Wants=network-online.target
After=network-online.target

[Service]
Type=notify
NotifyAccess=main
User={user}
Group={group}
Environment=COMPUTE_ENDPOINT_HOME={home}
ExecStart={python} -m compute_endpoint.endpoint {name}
Restart=on-failure
RestartSec=2
# Already running, refused by the broker, a bad config: a restart cannot fix these (see `--help`).
RestartPreventExitStatus=73 77 78
WatchdogSec=60
# The stop reaches the endpoint alone, which drains, then stops what it started.
KillMode=mixed
TimeoutStopSec={stop_timeout}

NoNewPrivileges=yes
PrivateTmp=yes
ProtectSystem=full

[Install]
WantedBy=multi-user.target
"""


def enable_on_boot(home: EndpointHome, ep: EndpointDir, stop_timeout: float) -> Path:
    if home.system:
        raise EndpointError("endpoints under /etc/compute-endpoint are already systemd units: "
                            f"`systemctl enable compute-endpoint-stack@{ep.name}.target`")
    _require_root_and_systemd()
    user = owner_of(ep)
    if not ep.credentials_file.exists():
        raise EndpointError(f"a service cannot see your shell's COMPUTE_CLIENT_* variables: store the credentials "
                            f"first with `compute-endpoint login {ep.name}` (as {user})")
    entry = pwd.getpwnam(user)
    unit = BOOT_UNIT_DIR / boot_unit_name(user, ep.name)
    unit.write_text(_BOOT_UNIT.format(name=ep.name, user=user, group=entry.pw_gid, home=home.config_root,
                                      python=sys.executable, stop_timeout=int(stop_timeout + 30)))
    systemctl("daemon-reload")
    systemctl("enable", unit.name)
    return unit


def disable_on_boot(home: EndpointHome, ep: EndpointDir) -> str:
    _require_root_and_systemd()
    unit = BOOT_UNIT_DIR / boot_unit_name(owner_of(ep), ep.name)
    if not unit.exists():
        return f"endpoint {ep.name!r} was not enabled on boot"
    systemctl("disable", "--now", unit.name)
    unit.unlink()
    systemctl("daemon-reload")
    return f"endpoint {ep.name!r} will no longer start on boot ({unit.name} removed)"


def _require_root_and_systemd() -> None:
    if not systemd_running():
        raise EndpointError("this machine does not run systemd, so there is nothing to enable on boot")
    if os.geteuid() != 0:
        raise EndpointError("writing a systemd unit needs root: rerun with sudo -E (keeping COMPUTE_ENDPOINT_HOME)")
