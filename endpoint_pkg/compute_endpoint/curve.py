"""CurveZMQ keys for the link between an interchange and managers on other hosts.

An endpoint's keys live in ``<state dir>/keys/`` (0700), one Z85 key per file:

* ``endpoint.key`` / ``endpoint.key_secret``: the interchange's own pair, made
  on first start. On a manager host only ``endpoint.key`` is there, installed
  by the operator (``compute-endpoint keys endpoint NAME --set KEY``), so the
  manager knows it talks to the real interchange.
* ``manager.key`` / ``manager.key_secret``: this host's manager pair. Managers
  in batch jobs find it in the endpoint's directory on the shared filesystem.
* ``authorized/LABEL.key``: the manager keys the interchange admits.

Secret files are 0600; nothing secret ever travels on a command line.
"""

from dataclasses import dataclass
from pathlib import Path

import zmq
from zmq.utils import z85

from .errors import EndpointError
from .paths import NAME_PATTERN, share_with_service, write_private

ENDPOINT = "endpoint"
MANAGER = "manager"


@dataclass(frozen=True)
class KeyPair:
    public: str
    secret: str


def check_public_key(text: str) -> str:
    key = text.strip()
    try:
        valid = len(key) == 40 and len(z85.decode(key)) == 32
    except (ValueError, KeyError):
        valid = False
    if not valid:
        raise EndpointError(f"{key[:60]!r} is not a CurveZMQ public key: expected the 40 Z85 characters that "
                            "`compute-endpoint keys manager NAME` prints")
    return key


def fingerprint(public_key: str) -> str:
    """A short name for a key in logs: the start of its bytes in hex (a key is random already)."""
    try:
        return z85.decode(public_key)[:8].hex()
    except (ValueError, KeyError):
        return "not-a-key"


class KeyStore:
    """One endpoint's keys directory. ``system``: a system-wide endpoint, whose service user must own the keys."""

    def __init__(self, directory: Path, system: bool = False):
        self.directory = directory
        self.system = system

    @property
    def authorized_dir(self) -> Path:
        return self.directory / "authorized"

    # --- pairs -----------------------------------------------------------------

    def pair(self, name: str) -> KeyPair | None:
        public, secret = self._read(f"{name}.key"), self._read(f"{name}.key_secret")
        return KeyPair(public, secret) if public and secret else None

    def ensure_pair(self, name: str) -> tuple[KeyPair, bool]:
        """The pair called ``name``, made now if missing; True when it was made."""
        existing = self.pair(name)
        if existing is not None:
            return existing, False
        public, secret = zmq.curve_keypair()
        made = KeyPair(public.decode(), secret.decode())
        self._write(f"{name}.key_secret", made.secret)
        self._write(f"{name}.key", made.public)
        return made, True

    def endpoint_public_key(self) -> str | None:
        return self._read(f"{ENDPOINT}.key")

    def set_endpoint_public_key(self, key: str) -> bool:
        """On a manager host: the interchange's public key. True when it changed."""
        key = check_public_key(key)
        if self.endpoint_public_key() == key:
            return False
        if self._read(f"{ENDPOINT}.key_secret"):
            raise EndpointError(f"{self.directory} holds this endpoint's own key pair: the endpoint key is set "
                                "only on hosts that run managers for an endpoint elsewhere")
        self._write(f"{ENDPOINT}.key", key)
        return True

    # --- authorized managers -------------------------------------------------------

    def authorized(self) -> dict[str, str]:
        """label -> public key of every authorized manager (unreadable or malformed files are skipped)."""
        found = {}
        for path in sorted(self.authorized_dir.glob("*.key")):
            try:
                found[path.stem] = check_public_key(path.read_text())
            except (OSError, EndpointError):
                continue
        return found

    def authorize(self, label: str, key: str) -> bool:
        """Admit ``key`` under ``label``; True when something changed."""
        if not NAME_PATTERN.match(label):
            raise EndpointError(f"invalid label {label!r}: use up to 64 letters, digits, '.', '_' or '-' "
                                "(a host name, say)")
        key = check_public_key(key)
        if self.authorized().get(label) == key:
            return False
        self._write(f"authorized/{label}.key", key)
        return True

    def revoke(self, label: str) -> bool:
        path = self.authorized_dir / f"{label}.key"
        if not NAME_PATTERN.match(label) or not path.exists():
            return False
        path.unlink()
        return True

    # --- files -------------------------------------------------------------------

    def _read(self, relative: str) -> str | None:
        try:
            return (self.directory / relative).read_text().strip() or None
        except FileNotFoundError:
            return None

    def _write(self, relative: str, text: str) -> None:
        path = self.directory / relative
        for directory in dict.fromkeys((self.directory, path.parent)):  # (once when they are the same)
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            directory.chmod(0o700)
            self._share(directory, 0o700)
        write_private(path, text + "\n")
        self._share(path, 0o600)

    def _share(self, path: Path, mode: int) -> None:
        if self.system:  # written by root (the CLI), read by the interchange and managers
            share_with_service(path, mode, owner_is_service=True)
