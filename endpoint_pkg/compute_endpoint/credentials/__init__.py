"""Broker credentials: where they come from and how they are kept."""

from .identity import Identity, MissingCredentialsError, environment_without_secrets, resolve_identity
from .store import CredentialStore, CredentialStoreError

__all__ = ["CredentialStore", "CredentialStoreError", "Identity", "MissingCredentialsError",
           "environment_without_secrets", "resolve_identity"]
