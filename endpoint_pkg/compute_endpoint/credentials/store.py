"""An encrypted store for one endpoint's broker credentials.

The ciphertext (Fernet: AES-128-CBC with HMAC-SHA256, authenticated) lives
beside the endpoint's config; the key lives in a separate file that only its
owner may read. Under systemd the key can instead arrive as a credential
(``$CREDENTIALS_DIRECTORY/credentials-key``).
"""

import json
import os
import stat
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from ..errors import EndpointError, ExitCode


class CredentialStoreError(EndpointError):
    pass


class CredentialKeyPermissionError(CredentialStoreError):
    """The key file is readable by others, or not ours."""

    exit_code = ExitCode.NO_PERMISSION


def _systemd_key() -> Path | None:
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if directory and (Path(directory) / "credentials-key").exists():
        return Path(directory) / "credentials-key"
    return None


class CredentialStore:
    def __init__(self, path: Path, key_file: Path):
        self.path = Path(path)
        self.key_file = _systemd_key() or Path(key_file)

    def exists(self) -> bool:
        return self.path.exists()

    def remove(self) -> bool:
        """Delete the stored credentials; False when there were none."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        except PermissionError as exc:
            raise CredentialKeyPermissionError(f"cannot remove {self.path}: {exc.strerror}") from None
        return True

    def save(self, client_id: str, secret: str, group: int | None = None) -> None:
        """Encrypt and write; ``group``: a gid that may read the ciphertext (mode 0640), e.g. the service's."""
        token = self._fernet(create=True).encrypt(json.dumps({"client_id": client_id, "secret": secret}).encode())
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(token)
        if group is not None:
            os.chown(tmp, -1, group)
            os.chmod(tmp, 0o640)
        os.replace(tmp, self.path)

    def load(self) -> tuple[str, str] | None:
        if not self.path.exists():
            return None
        try:
            data = json.loads(self._fernet(create=False).decrypt(self.path.read_bytes()))
        except InvalidToken:
            raise CredentialStoreError(
                f"cannot decrypt {self.path} with the key in {self.key_file} (wrong key or damaged file); "
                "run `compute-endpoint login` again"
            ) from None
        return data["client_id"], data["secret"]

    def _fernet(self, create: bool) -> Fernet:
        if not self.key_file.exists():
            if not create:
                raise CredentialStoreError(
                    f"the credential key {self.key_file} is missing, so {self.path} cannot be read; "
                    "run `compute-endpoint login` again"
                )
            self._create_key()
        self._check_key_permissions()
        return Fernet(self.key_file.read_bytes().strip())

    def _create_key(self) -> None:
        self.key_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another login created it meanwhile
            return
        with os.fdopen(fd, "wb") as handle:
            handle.write(Fernet.generate_key())

    def _check_key_permissions(self) -> None:
        if _systemd_key() == self.key_file:
            return  # systemd guarantees credential files are private to the unit
        info = self.key_file.stat()
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise CredentialKeyPermissionError(
                f"the credential key {self.key_file} is readable by other users "
                f"(mode {stat.S_IMODE(info.st_mode):04o}); run `chmod 600 {self.key_file}`"
            )
        if info.st_uid != os.geteuid():
            raise CredentialKeyPermissionError(
                f"the credential key {self.key_file} belongs to uid {info.st_uid}, not to this user "
                f"(uid {os.geteuid()}); only its owner may use it"
            )
