"""What to tell the operator when the broker refuses the endpoint something only they can fix."""

from ..broker import ReplyCode
from ..errors import ExitCode, Verdict
from ..protocol.broker_names import RESULT_EXCHANGE, TASK_EXCHANGE


def refusal_advice(code: int, text: str, step: str, *, was_ready: bool, identity: str, owner: str,
                   creating_exchanges: bool) -> str | None:
    """The message for a channel the broker closed with ``code`` while the agent was at ``step``; None when
    trying again can help."""
    if code == ReplyCode.ACCESS_REFUSED and "exclusive use" in text and was_ready:
        return None  # our own consumer on a connection the broker has not yet found dead: it soon will
    if code == ReplyCode.ACCESS_REFUSED:
        return _access_refused(text, step, identity, owner, creating_exchanges)
    if code == ReplyCode.PRECONDITION_FAILED and step.startswith("declaring"):
        queue = step.removeprefix("declaring ")
        return Verdict(f"the broker has a queue {queue} with other arguments than this endpoint declares ({text}); "
                "`compute-endpoint migrate-queues` (with the endpoint stopped) moves its messages into a queue "
                "declared as the config now says; or set broker.queue_type and broker.delivery_limit back",
                       ExitCode.BAD_CONFIG)
    return None


def connection_refused(text: str) -> Verdict:
    return Verdict(f"the broker closed the connection: {text}", ExitCode.NO_PERMISSION)


def another_daemon(detail: str) -> str:
    return Verdict(f"another daemon of this endpoint is already taking its tasks ({detail}): it runs on another "
                   "host sharing this endpoint's directory; stop it there first (`compute-endpoint stop`)",
                   ExitCode.ALREADY_RUNNING)


def _access_refused(text: str, step: str, identity: str, owner: str, creating_exchanges: bool) -> str:
    if "exclusive use" in text:
        return another_daemon(text)
    return Verdict(_access_advice(text, step, identity, owner, creating_exchanges), ExitCode.NO_PERMISSION)


def _access_advice(text: str, step: str, identity: str, owner: str, creating_exchanges: bool) -> str:
    if step.startswith("exchange") and creating_exchanges:
        return (f"the broker has no exchange {TASK_EXCHANGE!r}/{RESULT_EXCHANGE!r} and identity "
                f"{identity!r} may not create them ({text}); an administrator must set up the "
                "broker (see README: Broker setup)")
    if identity != owner:
        return (f"the broker refused identity {identity!r} access to this endpoint, which belongs to "
                f"{owner!r} ({text}); only the owner can start an endpoint: use the owner's credentials")
    return (f"the broker refused identity {identity!r} while {step} ({text}); "
            "check its permissions (see README: Broker setup)")
