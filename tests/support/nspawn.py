"""Real systemd hosts for tests: Debian 12 (or 13) containers booted with systemd-nspawn.

Each host is an overlayfs snapshot of the cached debootstrap root
(scripts/nspawn-base.sh SUITE), booted with ``systemd-nspawn -b --register=no
--keep-unit``, and reached with ``nsenter`` into its systemd's namespaces.
Without a bridge the host shares this machine's network, so it reaches the
test broker on 127.0.0.1. nspawn mounts a tmpfs on the container's /tmp, so
files are handed in through /root or /var/tmp instead.
"""

import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

from . import REPO

CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def base_root(suite: str = "bookworm") -> Path:
    done = subprocess.run([str(REPO / "scripts" / "nspawn-base.sh"), suite], capture_output=True, text=True,
                          timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"could not build the {suite} base root: {done.stderr[-2000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


def _needs_unified_cgroups(root: Path) -> bool:
    """systemd 256 and later boot only on cgroup v2; this machine's nspawn (252) on a cgroup v1 host
    would give them v1 unless told otherwise (trixie has 257)."""
    for shared in root.glob("usr/lib/*/systemd/libsystemd-shared-*.so"):
        version = shared.name.removeprefix("libsystemd-shared-").removesuffix(".so").split(".")[0]
        if version.isdigit() and int(version) >= 256:
            return True
    return False


class NspawnHost:
    def __init__(self, name: str, base: Path, workdir: Path):
        self.name = name
        self.base = base
        self.dir = workdir / name
        self.root = self.dir / "root"
        self.process: subprocess.Popen | None = None
        self.leader: int | None = None

    # --- life ------------------------------------------------------------------

    def boot(self, timeout: float = 120, mask: tuple[str, ...] = ("ssh.service",)) -> "NspawnHost":
        """Boot and wait until systemd reports running (or degraded); ``mask`` units never start."""
        for sub in ("upper", "work", "root"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        f"lowerdir={self.base},upperdir={self.dir / 'upper'},workdir={self.dir / 'work'}",
                        str(self.root)], check=True, timeout=30)
        (self.root / "etc/machine-id").write_text(uuid.uuid4().hex + "\n")
        (self.root / "etc/hostname").write_text(self.name + "\n")
        for unit in mask:
            link = self.root / "etc/systemd/system" / unit
            link.unlink(missing_ok=True)
            link.symlink_to("/dev/null")
        console = open(self.dir / "console.log", "wb")  # noqa: SIM115 - nspawn writes to it until poweroff
        env = dict(os.environ)
        if _needs_unified_cgroups(self.base):
            env["SYSTEMD_NSPAWN_UNIFIED_HIERARCHY"] = "1"
        self.process = subprocess.Popen(
            ["systemd-nspawn", "-D", str(self.root), "-b", "--register=no", "--keep-unit", f"--machine={self.name}",
             "--console=passive"], stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
            start_new_session=True, env=env)
        console.close()
        self.leader = self._find_leader(timeout)
        deadline = time.monotonic() + timeout
        state = ""
        while state not in ("running", "degraded"):  # empty until the container's bus answers
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not boot: {state!r}\n{self.console()}")
            state = self.run("systemctl", "is-system-running", "--wait", check=False, timeout=timeout).stdout.strip()
            time.sleep(0.1)
        return self

    def _find_leader(self, timeout: float) -> int:
        """The container's PID 1, seen from here: the child of nspawn whose NSpid ends in 1."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for child in _children(self.process.pid):
                status = Path(f"/proc/{child}/status").read_text()
                nspid = next((line.split()[1:] for line in status.splitlines() if line.startswith("NSpid:")), [])
                if len(nspid) == 2 and nspid[1] == "1":
                    return child
            if self.process.poll() is not None:
                raise RuntimeError(f"systemd-nspawn exited: {self.console()}")
            time.sleep(0.05)
        raise RuntimeError(f"{self.name}: no PID 1 after {timeout}s")

    def poweroff(self, timeout: float = 60) -> None:
        if self.process and self.process.poll() is None:
            os.kill(self.leader, signal.SIGRTMIN + 4)  # systemd: orderly poweroff
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        subprocess.run(["umount", str(self.root)], capture_output=True, timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- inside ----------------------------------------------------------------

    def run(self, *cmd: str, check: bool = True, input: str | None = None, timeout: float = 300,
            env: dict | None = None) -> subprocess.CompletedProcess:
        """Run a command inside the container, as root, with a clean environment."""
        environment = {"PATH": CONTAINER_PATH, "HOME": "/root", "LANG": "C.UTF-8", **(env or {})}
        argv = ["nsenter", "-t", str(self.leader), "-a", "--", "env", "-i",
                *[f"{k}={v}" for k, v in environment.items()], *cmd]
        done = subprocess.run(argv, capture_output=True, text=True, input=input, timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(f"{self.name}$ {' '.join(cmd)} -> {done.returncode}\n{done.stdout}\n{done.stderr}")
        return done

    def put(self, source: Path, destination: str) -> None:
        """Copy a file in (not under /tmp: the container sees its own tmpfs there)."""
        target = self.root / destination.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)

    def path(self, inside: str) -> Path:
        """A file of the container's disk, seen from here."""
        return self.root / inside.lstrip("/")

    def live_path(self, inside: str) -> Path:
        """A path in the running container's mount namespace (its /proc, /run, /tmp)."""
        return Path(f"/proc/{self.leader}/root") / inside.lstrip("/")

    def unit(self, unit: str, *properties: str) -> dict:
        out = self.run("systemctl", "show", unit, *[f"-p{p}" for p in properties]).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def console(self) -> str:
        try:
            return (self.dir / "console.log").read_text(errors="replace")[-3000:]
        except OSError:
            return ""


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
