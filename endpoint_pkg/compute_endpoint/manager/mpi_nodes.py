"""MPI tasks in a block (GlobusMPIEngine): the block's nodes shared out among the tasks that ask for them.

One manager runs per block, on its first node. A task asks for ``num_nodes``
nodes and ``ranks_per_node`` ranks; the manager waits until that many nodes
are free (tasks are placed in the order they came), then gives the task's
worker the launcher prefix that starts its ranks on exactly those nodes
(``$PARSL_MPI_PREFIX``, as Parsl names it, which ``MPIFunction`` puts before
its command), and takes the nodes back when the task's result comes.
"""

import os
import shlex
import socket
import subprocess

from ..protocol import Task


class MpiRequestError(ValueError):
    """A task asks for what this block can never give it."""


def block_nodes() -> list[str]:
    """The nodes of the batch job this manager runs in (Slurm, PBS), else this host alone."""
    slurm = os.environ.get("SLURM_JOB_NODELIST")
    if slurm:
        done = subprocess.run(["scontrol", "show", "hostnames", slurm], capture_output=True, text=True, timeout=30)
        if done.returncode == 0 and done.stdout.split():
            return done.stdout.split()
    nodefile = os.environ.get("PBS_NODEFILE")
    if nodefile and os.path.exists(nodefile):
        with open(nodefile) as lines:
            return list(dict.fromkeys(line.strip() for line in lines if line.strip()))
    return [socket.gethostname()]


def prefix(launcher: str, nodes: list[str], ranks_per_node: int) -> str:
    ranks = len(nodes) * ranks_per_node
    hosts = ",".join(nodes)
    if launcher == "srun":
        words = ["srun", "-N", str(len(nodes)), "-n", str(ranks), f"--ntasks-per-node={ranks_per_node}",
                 f"--nodelist={hosts}", "--overlap"]
    elif launcher == "aprun":
        words = ["aprun", "-n", str(ranks), "-N", str(ranks_per_node), "-node-list", hosts]
    else:
        words = ["mpiexec", "-n", str(ranks), "-ppn", str(ranks_per_node), "-hosts", hosts]
    return shlex.join(words)


class NodePool:
    def __init__(self, launcher: str, nodes: list[str]):
        self.launcher = launcher
        self.nodes = nodes
        self.free = list(nodes)
        self.held: dict[str, list[str]] = {}  # task id -> its nodes

    def place(self, task_id: str, frame: bytes) -> bytes | None:
        """The task, with the nodes it runs on; None while too few are free."""
        task = Task.unpack(frame)
        wanted = task.num_nodes or 1
        ranks_per_node = task.ranks_per_node or 1
        if wanted > len(self.nodes):
            raise MpiRequestError(f"the task asks for {wanted} nodes; this block has {len(self.nodes)} "
                                  f"({', '.join(self.nodes)}): ask for fewer, or raise the provider's nodes_per_block")
        if wanted > len(self.free):
            return None
        nodes, self.free = self.free[:wanted], self.free[wanted:]
        self.held[task_id] = nodes
        task.mpi_nodes = ",".join(nodes)
        task.mpi_prefix = prefix(self.launcher, nodes, ranks_per_node)
        task.ranks_per_node = ranks_per_node
        task.num_nodes = wanted
        return task.pack()

    def release(self, task_id: str) -> None:
        self.free.extend(self.held.pop(task_id, []))
