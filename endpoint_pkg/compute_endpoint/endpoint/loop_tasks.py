"""Work the daemon schedules on its ioloop besides broker and interchange callbacks: periodic tasks and signals."""

import logging
import signal
from collections.abc import Callable

from pika.adapters.select_connection import IOLoop

log = logging.getLogger(__name__)


def every(ioloop: IOLoop, period: float | Callable[[], float], action: Callable[[], None],
          on_error: Callable[[], None]) -> None:
    """Run ``action`` periodically; ``period`` may be a callable, read afresh each time (reload).

    An exception in ``action`` is logged with its traceback and counted (``on_error``); the next run still comes.
    """
    interval = period if callable(period) else (lambda: period)

    def tick():
        try:
            action()
        except Exception:  # a bug in one periodic task must not stop the endpoint serving the others
            on_error()
            log.exception("internal error in %s; carrying on", getattr(action, "__name__", action))
        ioloop.call_later(interval(), tick)

    ioloop.call_later(interval(), tick)


def install_signals(ioloop: IOLoop, request_stop: Callable[[str], None], reload: Callable[[], None]) -> None:
    """SIGTERM and SIGINT ask for a stop (once), SIGHUP for a reload, each run on the ioloop."""
    stopping: list[str] = []

    def on_signal(signum, _frame):
        # Once only: a second signal arriving inside add_callback_threadsafe would wait on its lock forever.
        if not stopping:
            stopping.append(f"received {signal.Signals(signum).name}")
            ioloop.add_callback_threadsafe(lambda: request_stop(stopping[0]))

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, lambda _s, _f: ioloop.add_callback_threadsafe(reload))
