"""``compute-endpoint migrate-queues``: an endpoint's queues made what its config now asks for.

After an upgrade, an endpoint started under ``broker.queue_type: auto`` keeps
the classic queues it already had; this moves them, messages and all, to
quorum queues (or to whatever type and delivery limit the config now says).
"""

from collections.abc import Callable

from pika.exceptions import AMQPError

from .control import State, owners_config, state_of
from .credentials import CredentialStore, resolve_identity
from .endpoint.queue_migration import Moved, QueueMigration, QueueMigrationError
from .endpoint.queues import EndpointQueues, QueueSettings
from .errors import EndpointError
from .paths import EndpointHome
from .protocol.broker_names import EndpointNames
from .sdk.client import Client


def migrate_queues(home: EndpointHome, name: str, progress: Callable[[str], None]) -> list[Moved]:
    ep = home.existing(name)
    if state_of(ep) is State.RUNNING:
        raise EndpointError(f"endpoint {name!r} is running: stop it first (`compute-endpoint stop {name}`); its "
                            "queues cannot move while it consumes them")
    info = ep.read_info()
    if not info.get("endpoint_id"):
        raise EndpointError(f"endpoint {name!r} has never started: it has no queues on the broker yet")
    urls, tls_ca, settings = owners_config(ep, lambda config: (
        config.broker.urls, config.broker.tls_ca, (config.broker.queue_type, config.broker.delivery_limit)))
    identity = resolve_identity(CredentialStore(ep.credentials_file, home.key_file), name)
    client = Client(urls, identity.client_id, identity.secret, tls_ca)
    names = EndpointNames(info.get("owner") or identity.client_id, info["endpoint_id"])
    queues = EndpointQueues(names, QueueSettings(*settings))
    with client.connect() as connection:
        node = client.node
        refusal = queues.choose_type(client.server, node)
        if refusal:
            raise EndpointError(refusal)
        progress(f"connected to the broker at {node}")
        try:
            return QueueMigration(connection, names, queues, progress).run()
        except (AMQPError, QueueMigrationError) as exc:
            raise EndpointError(f"the broker stopped the move ({exc}); nothing was lost: run `compute-endpoint "
                                f"migrate-queues {name}` again to finish it") from None
