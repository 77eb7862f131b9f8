"""Functions that run a command line on the endpoint: ``ShellFunction``, and ``MPIFunction`` for MPI programs.

Submitted like any function (``executor.submit(ShellFunction("echo {name}"), name="x")``); the keyword
arguments fill the command's ``{placeholders}``. The result is a ``ShellResult`` whatever the command's exit
code: the caller decides what a failure is. ``MPIFunction`` needs an endpoint with ``GlobusMPIEngine`` and
the executor's ``resource_specification`` (``num_nodes``, ``ranks_per_node``): its command runs after the
launcher prefix that starts its ranks on the nodes the endpoint gave it.
"""

import os
import subprocess
from dataclasses import dataclass


@dataclass
class ShellResult:
    cmd: str
    returncode: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return self.stdout


class ShellFunction:
    def __init__(self, cmd: str, walltime: float | None = None, snippet_lines: int = 1000, name: str | None = None):
        """``walltime``: seconds before the command is killed (its result then has returncode 124);
        ``snippet_lines``: how many of the last lines of stdout and stderr the result keeps."""
        self.cmd = cmd
        self.walltime = walltime
        self.snippet_lines = snippet_lines
        self.__name__ = name or type(self).__name__

    def command(self, **kwargs: object) -> str:
        return self.cmd.format(**kwargs)

    def __call__(self, **kwargs: object) -> ShellResult:
        cmd = self.command(**kwargs)
        try:
            done = subprocess.run(["/bin/bash", "-c", cmd], capture_output=True, text=True, timeout=self.walltime,
                                  stdin=subprocess.DEVNULL, start_new_session=True)
            code, out, err = done.returncode, done.stdout, done.stderr
        except subprocess.TimeoutExpired as exc:
            code = 124
            out = _text(exc.stdout)
            err = _text(exc.stderr) + f"\nkilled after its walltime of {self.walltime:g}s"
        return ShellResult(cmd, code, self._snippet(out), self._snippet(err))

    def _snippet(self, text: str) -> str:
        lines = text.splitlines()
        return "\n".join(lines[-self.snippet_lines:]) + ("\n" if text.endswith("\n") and lines else "")


class MPIFunction(ShellFunction):
    def command(self, **kwargs: object) -> str:
        launcher = os.environ.get("PARSL_MPI_PREFIX")
        if not launcher:
            raise RuntimeError("MPIFunction runs on an endpoint with GlobusMPIEngine, submitted with a "
                               "resource_specification (num_nodes, ranks_per_node); this worker was given no nodes")
        return f"{launcher} {super().command(**kwargs)}"


def _text(value: bytes | str | None) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value or ""
