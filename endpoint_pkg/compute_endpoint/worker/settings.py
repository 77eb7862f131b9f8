"""A worker's settings, carried on the command line its manager starts it with."""

from dataclasses import dataclass

from ..cmdline import CommandLine, option
from ..protocol.codec import DEFAULT_MAX_PAYLOAD_BYTES


@dataclass
class WorkerSettings(CommandLine):
    MODULE = "compute_endpoint.worker"
    DESCRIPTION = "Run tasks sent by a manager, one at a time."

    fd: int = option(help="the stream socket to the manager, inherited as this file descriptor")
    parent_pid: int = option(0, help="exit when this process (the manager) dies")
    max_result_bytes: int = option(DEFAULT_MAX_PAYLOAD_BYTES, help="largest result to return")
    manager_id: str = option("", help="recorded in each result")
    plain_arguments: bool = option(False, help="load arguments as plain data only (set with allowed_functions)")
    memory_limit: int = option(0, help="bytes of address space for this worker and what it starts (0: unlimited)")
    process_limit: int = option(0, help="processes this worker's user may have (0: unlimited)")
    workdir: str = option("", help="start in this directory (its own user's home, which its manager cannot enter)")
