"""Which managers on other hosts the interchange admits: CurveZMQ, with a ZAP handler of our own.

The TCP manager socket is a CURVE server: the link is encrypted, and in the
handshake each manager proves it holds the secret half of its public key.
libzmq asks our ZAP socket about every handshake; we admit the keys listed in
the endpoint's ``keys/authorized/`` directory, which is read again whenever
it changes, so ``compute-endpoint keys authorize`` and ``revoke`` take effect
without a restart. The admitted key comes back on every message as its
``User-Id``, which the interchange checks against the key that registered the
manager, so an admitted manager cannot speak for another.
"""

import logging
import time
from typing import TYPE_CHECKING

import zmq
from zmq.utils import z85

from ..curve import ENDPOINT, MANAGER, KeyStore, fingerprint
from ..zmq_sockets import bind, make_socket

if TYPE_CHECKING:
    from .settings import InterchangeSettings

log = logging.getLogger(__name__)

ZAP_ENDPOINT = "inproc://zeromq.zap.01"  # where libzmq looks for the handler (RFC 27)
DOMAIN = b"compute-endpoint"
_RELOAD_CHECK_SECONDS = 1.0
_RELOAD_ANYWAY_SECONDS = 30.0  # in case a change kept the directory's timestamp
_REFUSAL_LOG_SECONDS = 60.0


def curve_listener(ctx: zmq.Context, settings: "InterchangeSettings") -> tuple["ManagerAuth", zmq.Socket, int]:
    """The interchange's TCP socket for managers, a CURVE server, with its ZAP handler and the port it got."""
    if settings.keys_dir is None:
        raise ValueError("managers on other hosts need CurveZMQ keys: give the interchange --keys-dir")
    auth = ManagerAuth(ctx, KeyStore(settings.keys_dir), settings.keys_dir.parent.name)
    sock = make_socket(ctx, zmq.ROUTER)
    # A second connection under an identity in use is refused, not handed over: handing over would give
    # one authorized manager another's tasks. ZMTP heartbeats close a dead manager's connection, so that
    # its restart on a rebooted host gets its identity back.
    sock.setsockopt(zmq.ROUTER_HANDOVER, 0)
    sock.setsockopt(zmq.HEARTBEAT_IVL, int(settings.heartbeat_period * 1000))
    sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, int(settings.heartbeat_threshold * 1000))
    auth.secure(sock)
    bind(sock, f"tcp://{settings.worker_address}:{settings.worker_port or '*'}")
    return auth, sock, int(sock.getsockopt_string(zmq.LAST_ENDPOINT).rsplit(":", 1)[1])


class ManagerAuth:
    def __init__(self, ctx: zmq.Context, store: KeyStore, endpoint_name: str = "NAME"):
        self.store = store
        self.endpoint_name = endpoint_name
        self.zap = ctx.socket(zmq.REP)
        self.zap.setsockopt(zmq.LINGER, 0)
        self.zap.bind(ZAP_ENDPOINT)  # before any CURVE socket binds, so no handshake goes unchecked
        self.labels: dict[str, str] = {}  # authorized public key -> its label
        self.refused = 0
        self._stamp: int | None = None
        self._reloaded_at = 0.0
        self._next_check = 0.0
        self._refusal_logged = -1e9
        self.reload()

    def secure(self, sock: zmq.Socket) -> str:
        """Make ``sock`` a CURVE server with the endpoint's pair (made now if missing); returns its public key.

        The endpoint's own manager pair is made too, for the managers it starts
        in batch jobs, which read it from the endpoint's directory.
        """
        if self.store.ensure_pair(MANAGER)[1]:
            self.reload()
        pair, made = self.store.ensure_pair(ENDPOINT)
        if made:
            log.info("made the endpoint's CurveZMQ key pair; managers on other hosts need its public key: %s",
                     pair.public)
        sock.curve_secretkey = pair.secret.encode()
        sock.curve_publickey = pair.public.encode()
        sock.curve_server = True
        sock.zap_domain = DOMAIN
        return pair.public

    def admits(self, key: str | None) -> bool:
        return key is not None and key in self.labels

    def label(self, key: str) -> str:
        return self.labels.get(key, f"key {fingerprint(key)}")

    # --- the allow-list ----------------------------------------------------------

    def reload(self) -> set[str]:
        """Read the authorized keys again; returns the keys no longer admitted."""
        before = set(self.labels)
        self._stamp = self._directory_stamp()  # first: a change while we read is seen next time
        self._reloaded_at = time.monotonic()
        self.labels = {key: label for label, key in self.store.authorized().items()}
        own = self.store.pair(MANAGER)
        if own is not None:  # the endpoint's own managers (batch jobs) use the pair in its directory
            self.labels[own.public] = "this endpoint's own manager key"
        revoked = before - set(self.labels)
        added = set(self.labels) - before
        if before and (revoked or added):
            log.info("manager keys: %d authorized (%d added, %d revoked)", len(self.labels), len(added), len(revoked))
        return revoked

    def reload_if_changed(self, now: float) -> set[str]:
        if now < self._next_check:
            return set()
        self._next_check = now + _RELOAD_CHECK_SECONDS
        if self._directory_stamp() != self._stamp or now - self._reloaded_at > _RELOAD_ANYWAY_SECONDS:
            return self.reload()
        return set()

    def _directory_stamp(self) -> int | None:
        try:
            return self.store.authorized_dir.stat().st_mtime_ns
        except FileNotFoundError:
            return None

    # --- ZAP -----------------------------------------------------------------------

    def handle_requests(self) -> None:
        """Answer every handshake waiting for a verdict."""
        while True:
            try:
                request = self.zap.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self.zap.send_multipart(self._verdict(request))

    def _verdict(self, request: list[bytes]) -> list[bytes]:
        version, request_id, _domain, address, _identity, mechanism = request[:6]
        reply = [version, request_id]
        if mechanism != b"CURVE" or len(request) < 7:
            return reply + [b"400", b"CURVE required", b"", b""]
        key = z85.encode(request[6]).decode()
        if key in self.labels:
            return reply + [b"200", b"OK", key.encode(), b""]
        self.refused += 1
        self._log_refusal(key, address.decode(errors="replace"))
        return reply + [b"400", b"manager key not authorized", b"", b""]

    def _log_refusal(self, key: str, address: str) -> None:
        now = time.monotonic()
        if now - self._refusal_logged < _REFUSAL_LOG_SECONDS:
            return  # one line a minute, however often and with however many keys it is knocked on
        self._refusal_logged = now
        log.warning("refused a manager from %s: its key %s (fingerprint %s) is not authorized; to admit it, run "
                    "`compute-endpoint keys authorize %s LABEL '%s'`", address, key, fingerprint(key),
                    self.endpoint_name, key)

    def close(self) -> None:
        self.zap.close()


class ManagerKeys:
    """The key each registered manager came with (None: this host), and what managers were refused."""

    def __init__(self, auth: ManagerAuth | None):
        self.auth = auth
        self.keys: dict[str, str | None] = {}
        self.refused = 0
        self._logged: dict[str, float] = {}

    def bind(self, manager_id: str, key: str | None) -> None:
        self.keys[manager_id] = key

    def forget(self, manager_id: str) -> None:
        self.keys.pop(manager_id, None)

    def conflict(self, manager_id: str, key: str | None) -> str | None:
        """Why ``key`` may not speak for ``manager_id``, which is registered; None when it may."""
        held = self.keys.get(manager_id)
        if held == key:
            return None
        return f"manager id {manager_id!r} is held by {self.describe(held)}, not {self.describe(key)}"

    def using(self, revoked: set[str]) -> list[str]:
        return [manager_id for manager_id, key in self.keys.items() if key in revoked]

    def describe(self, key: str | None) -> str:
        if key is None:
            return "a manager on this host"
        return self.auth.label(key) if self.auth is not None else f"key {fingerprint(key)}"

    def refuse(self, manager_id: str, what: str) -> None:
        """Count a dropped message; log one line a minute per registered manager id, however much it sends."""
        self.refused += 1
        now = time.monotonic()
        if now - self._logged.get(manager_id, -1e9) >= _REFUSAL_LOG_SECONDS:
            if len(self._logged) > 1000:  # ids come from peers: keep the table bounded
                self._logged.clear()
            self._logged[manager_id] = now
            log.warning("dropped a message from manager %r: %s (%d dropped so far)", manager_id[:100], what,
                        self.refused)
