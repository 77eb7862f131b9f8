"""Workers' stdout and stderr, through one pipe into the manager's log, so that they rotate with it.

Written straight to a file, a task that prints in a loop would fill the disk;
as log records they go through the manager's rotating handler, one record
per line, each line cut at ``MAX_LINE`` bytes.
"""

import logging
import os

MAX_LINE = 4096
_READ = 1 << 16

log = logging.getLogger("compute_endpoint.worker.output")


class WorkerOutput:
    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()  # the write end is every worker's stdout and stderr
        os.set_blocking(self.read_fd, False)
        self._partial = b""

    def on_readable(self) -> None:
        try:
            data = os.read(self.read_fd, _READ)
        except BlockingIOError:
            return
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        if len(self._partial) > MAX_LINE:  # a line without end: log what there is
            lines.append(self._partial)
            self._partial = b""
        for line in lines:
            log.info("%s", line[:MAX_LINE].decode(errors="replace"))

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            try:
                os.close(fd)
            except OSError:
                pass
