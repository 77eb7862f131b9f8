"""Which broker identity a process acts as, and how it authenticates."""

import os
from dataclasses import dataclass, field

from ..errors import EndpointError, ExitCode
from ..protocol.broker_names import check_identity
from .store import CredentialStore

ENV_ID = "COMPUTE_CLIENT_ID"
ENV_SECRET = "COMPUTE_CLIENT_SECRET"


class MissingCredentialsError(EndpointError):
    """No identity to connect as: part of setting the endpoint up, as its config is."""

    exit_code = ExitCode.BAD_CONFIG


@dataclass(frozen=True)
class Identity:
    client_id: str
    secret: str = field(repr=False)
    source: str = "environment"

    def __post_init__(self):
        try:
            check_identity(self.client_id)
        except ValueError as exc:
            raise EndpointError(str(exc)) from None


def identity_from_env() -> Identity | None:
    client_id, secret = os.environ.get(ENV_ID), os.environ.get(ENV_SECRET)
    if client_id and secret:
        return Identity(client_id, secret, "environment")
    if client_id or secret:
        missing = ENV_SECRET if client_id else ENV_ID
        present = ENV_ID if client_id else ENV_SECRET
        raise MissingCredentialsError(f"{present} is set but {missing} is not; set both, or neither to use the "
                                      "credentials stored by `compute-endpoint login`")
    return None


def resolve_identity(store: CredentialStore | None, endpoint_name: str = "default") -> Identity:
    """Environment variables first (service identities), then the encrypted store."""
    identity = identity_from_env()
    if identity:
        return identity
    stored = store.load() if store else None
    if store is not None and stored:
        return Identity(stored[0], stored[1], f"store {store.path}")
    raise MissingCredentialsError(
        f"no broker credentials for endpoint {endpoint_name!r}: set {ENV_ID} and {ENV_SECRET}, "
        f"or run `compute-endpoint login {endpoint_name}`"
    )


def environment_without_secrets(env: dict | None = None) -> dict:
    """A copy of the environment with the broker credentials removed, for child processes."""
    clean = dict(os.environ if env is None else env)
    clean.pop(ENV_ID, None)
    clean.pop(ENV_SECRET, None)
    return clean
