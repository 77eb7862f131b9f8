"""Where an endpoint's files live: every path in an endpoint's directories is named here.

Per-user (the default): everything under ``~/.compute_endpoint/NAME/`` (or
``$COMPUTE_ENDPOINT_HOME/NAME/``). System-wide (``COMPUTE_ENDPOINT_SYSTEM=1``,
as the packaged systemd units set): config in ``/etc/compute-endpoint/NAME/``
and state and logs in ``/var/lib/compute-endpoint/NAME/``.
"""

import json
import os
import re
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import EndpointError, NoPermissionError, NotFoundError

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
SYSTEM_CONFIG_ROOT = Path("/etc/compute-endpoint")
SYSTEM_STATE_ROOT = Path("/var/lib/compute-endpoint")
SERVICE_USER = "compute-endpoint"


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name or ""):
        raise EndpointError(
            f"invalid endpoint name {name!r}: use up to 64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


@dataclass(frozen=True)
class EndpointHome:
    """The root under which endpoints are kept."""

    config_root: Path
    state_root: Path
    system: bool = False

    @classmethod
    def resolve(cls) -> "EndpointHome":
        if os.environ.get("COMPUTE_ENDPOINT_SYSTEM") == "1":
            return cls(SYSTEM_CONFIG_ROOT, SYSTEM_STATE_ROOT, system=True)
        root = Path(os.environ.get("COMPUTE_ENDPOINT_HOME") or Path.home() / ".compute_endpoint")
        return cls(root, root)

    @property
    def key_file(self) -> Path:
        """Key of the encrypted credential stores (kept apart from the ciphertext)."""
        override = os.environ.get("COMPUTE_ENDPOINT_KEY_FILE")
        if override:
            return Path(override)
        # System-wide the key is root's alone; the units receive it as a systemd credential.
        return (self.config_root if self.system else self.state_root) / "credentials.key"

    def endpoint(self, name: str) -> "EndpointDir":
        check_name(name)
        return EndpointDir(name, self.config_root / name, self.state_root / name)

    def existing(self, name: str) -> "EndpointDir":
        ep = self.endpoint(name)
        if not ep.is_configured():
            raise NotFoundError(f"endpoint {name!r} is not configured; run `compute-endpoint configure {name}`")
        return ep

    def name_of(self, name_or_id: str) -> str:
        """The name of the endpoint called ``name_or_id``, or else whose endpoint id (UUID) it is."""
        if NAME_PATTERN.match(name_or_id or "") and self.endpoint(name_or_id).is_configured():
            return name_or_id
        wanted = name_or_id.strip().lower()
        for name in self.names():
            if str(self.endpoint(name).read_info().get("endpoint_id") or "").lower() == wanted:
                return name
        raise NotFoundError(f"endpoint {name_or_id!r} is not configured, and no endpoint under {self.config_root} "
                            f"has the id {name_or_id!r}: `compute-endpoint list` shows their names and ids; "
                            f"create one with `compute-endpoint configure`")

    def names(self) -> list[str]:
        if not self.config_root.is_dir():
            return []
        return sorted(
            p.name for p in self.config_root.iterdir()
            if p.is_dir() and NAME_PATTERN.match(p.name) and EndpointDir(p.name, p, p).is_configured()
        )


def service_ids() -> tuple[int, int] | None:
    """(uid, gid) of the packaged service user, or None where it does not exist."""
    import grp
    import pwd

    try:
        return pwd.getpwnam(SERVICE_USER).pw_uid, grp.getgrnam(SERVICE_USER).gr_gid
    except KeyError:
        return None


def share_with_service(path: Path, mode: int, owner_is_service: bool = False) -> None:
    """System-wide files: config readable by the service's group, state owned by the service."""
    ids = service_ids()
    if ids is None or os.geteuid() != 0:
        return
    uid, gid = ids
    os.chown(path, uid if owner_is_service else 0, gid)
    os.chmod(path, mode)


@dataclass(frozen=True)
class EndpointDir:
    """The files of one endpoint."""

    name: str
    config_dir: Path
    state_dir: Path

    def config_file(self) -> Path:
        """config.yaml, or config.yml or config.py where one of those is there instead."""
        for candidate in ("config.yaml", "config.yml", "config.py"):
            path = self.config_dir / candidate
            if path.exists():
                return path
        return self.config_dir / "config.yaml"

    def is_configured(self) -> bool:
        return self.config_file().exists()

    def make_private(self) -> None:
        """Per-user: the endpoint's directories are 0700, whatever the umask or an older version left.

        Its config may hold worker environment secrets, its logs task details,
        and its id is all another broker user needs to address it.
        """
        for directory in (self.config_dir, self.state_dir):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            if directory.stat().st_uid == os.geteuid():
                directory.chmod(0o700)

    @property
    def info_file(self) -> Path:
        return self.state_dir / "endpoint.json"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "daemon.pid"

    @property
    def lock_file(self) -> Path:
        return self.state_dir / "daemon.lock"

    @property
    def components_file(self) -> Path:
        return self.state_dir / "components.json"

    @property
    def interchange_record(self) -> Path:
        """Written by the interchange unit: its pid and the port managers connect to."""
        return self.state_dir / "interchange.json"

    @property
    def socket_dir(self) -> Path:
        """The private (0700) directory of the sockets that link this endpoint's co-located processes.

        Its mode is the access control: only the endpoint's user reaches the
        sockets inside. A Unix socket's path is limited to 107 bytes, so an
        endpoint whose state directory is too deep for it gets a directory in
        the temporary one instead, named after that state directory.
        """
        preferred = self.state_dir / "run"
        if len(str(preferred / _LONGEST_SOCKET_NAME)) <= _MAX_SOCKET_PATH:
            return preferred
        import hashlib  # here: loading OpenSSL costs every process 4 MiB, and few ever need this

        digest = hashlib.sha256(str(self.state_dir.resolve()).encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"compute-endpoint-{os.geteuid()}" / digest

    @property
    def interchange_socket(self) -> str:
        """Where the interchange listens for its endpoint daemon."""
        return f"ipc://{self.socket_dir / 'daemon.sock'}"

    @property
    def local_manager_socket(self) -> str:
        """Where the interchange listens for managers on its own host."""
        return f"ipc://{self.socket_dir / 'manager.sock'}"

    @property
    def keys_dir(self) -> Path:
        """CurveZMQ keys of the link to managers on other hosts (see ``curve.py``)."""
        return self.state_dir / "keys"

    @property
    def blocks_dir(self) -> Path:
        """Batch jobs' submit scripts and output: on a filesystem the compute nodes share, as the keys are."""
        return self.state_dir / "blocks"

    @property
    def credentials_file(self) -> Path:
        return self.config_dir / "credentials.enc"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    def log_file(self, component: str) -> Path:
        return self.log_dir / f"{component}.log"

    def stderr_log(self, component: str) -> Path:
        """What a component started in the background wrote to stderr (its last words, if it died)."""
        return self.log_dir / f"{component}.stderr.log"

    def recorded_worker_port(self) -> int | None:
        """The manager port the interchange unit last recorded (see ``interchange_record``), if any."""
        port = (read_json(self.interchange_record) or {}).get("worker_port")
        return port if isinstance(port, int) else None

    def read_info(self) -> dict:
        return read_json(self.info_file) or {}

    def write_info(self, info: dict) -> None:
        write_json(self.info_file, info)


# Short enough that a system-wide endpoint with the longest name fits:
# /var/lib/compute-endpoint/<64 characters>/run/manager.sock is 107 bytes.
_LONGEST_SOCKET_NAME = "manager.sock"
_MAX_SOCKET_PATH = 107


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and a missing parent in the temporary directory) as 0700, or check that it is.

    A directory that exists but is not ours alone is refused, not repaired:
    someone else may already hold a socket in it.
    """
    in_tmp = path.parent.parent == Path(tempfile.gettempdir())
    for directory in (path.parent, path) if in_tmp else (path,):
        try:
            directory.mkdir(mode=0o700, parents=True)
        except FileExistsError:
            pass
        info = directory.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
            raise NoPermissionError(f"{directory} is not a directory owned by this user (uid {os.geteuid()}); "
                                "remove it and start again")
        if stat.S_IMODE(info.st_mode) != 0o700:
            os.chmod(directory, 0o700)  # ours, created before under another umask: make it private
    return path


def read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise EndpointError(f"cannot read {path}: {exc}; remove or repair the file") from None
    return data if isinstance(data, dict) else None


def create_private(path: Path) -> Path:
    """Create ``path`` as an empty 0600 file if it is missing (a log, before it is opened for appending)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600))
    return path


def write_private(path: Path, text: str, mode: int = 0o600) -> None:
    """Write atomically (a reader never sees half a file), readable by its owner alone unless ``mode`` says."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # made 0600
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: dict, mode: int = 0o600) -> None:
    write_private(path, json.dumps(data, indent=2, sort_keys=True) + "\n", mode)
