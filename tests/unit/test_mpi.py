"""MPI tasks: a block's nodes shared out among them, the launcher prefix, and what the SDK asks for."""

import shlex

import pytest

from compute_endpoint.config import Config, Engine, LocalProvider
from compute_endpoint.endpoint.admission import Admission
from compute_endpoint.manager.mpi_nodes import MpiRequestError, NodePool, prefix
from compute_endpoint.protocol import Task
from compute_endpoint.sdk import MPIFunction, ShellFunction
from compute_endpoint.sdk.executor import mpi_request
from compute_endpoint.worker.worker import mpi_environment


def task(task_id: str, nodes: int = 0, ranks: int = 0, **extra) -> Task:
    return Task(task_id=task_id, fn_hash="ab" * 8, fn_len=0, reply_to="alice.s1", num_nodes=nodes,
                ranks_per_node=ranks, **extra)


@pytest.mark.parametrize("launcher, expected", [
    ("srun", "srun -N 2 -n 8 --ntasks-per-node=4 --nodelist=n1,n2 --overlap"),
    ("mpiexec", "mpiexec -n 8 -ppn 4 -hosts n1,n2"),
    ("aprun", "aprun -n 8 -N 4 -node-list n1,n2"),
])
def test_each_launcher_starts_the_ranks_on_the_nodes_given(launcher, expected):
    assert prefix(launcher, ["n1", "n2"], 4) == expected


def test_tasks_get_disjoint_nodes_wait_their_turn_and_give_them_back():
    pool = NodePool("srun", ["n1", "n2", "n3"])
    first = Task.unpack(pool.place("a", task("a", 2, 2).pack()))
    assert first.mpi_nodes == "n1,n2" and first.mpi_prefix.startswith("srun -N 2 -n 4")
    assert pool.place("b", task("b", 2, 1).pack()) is None, "only one node is free"
    single = Task.unpack(pool.place("c", task("c").pack()))
    assert single.mpi_nodes == "n3" and single.num_nodes == 1 and single.ranks_per_node == 1
    pool.release("a")
    assert Task.unpack(pool.place("b", task("b", 2, 1).pack())).mpi_nodes == "n1,n2"


def test_a_task_asking_for_more_nodes_than_the_block_has_is_refused():
    with pytest.raises(MpiRequestError, match="asks for 4 nodes; this block has 2"):
        NodePool("mpiexec", ["n1", "n2"]).place("a", task("a", 4, 1).pack())


def test_the_worker_sees_its_placement_only_while_its_task_runs(monkeypatch):
    monkeypatch.delenv("PARSL_MPI_PREFIX", raising=False)
    placed = task("a", 2, 3, mpi_nodes="n1,n2", mpi_prefix="mpiexec -n 6 -ppn 3 -hosts n1,n2")
    import os
    with mpi_environment(placed):
        assert os.environ["PARSL_NUM_RANKS"] == "6" and os.environ["PARSL_MPI_NODELIST"] == "n1,n2"
        assert MPIFunction("./solver --size {n}").command(n=9) == "mpiexec -n 6 -ppn 3 -hosts n1,n2 ./solver --size 9"
    assert "PARSL_MPI_PREFIX" not in os.environ


def test_mpi_function_outside_an_mpi_endpoint_says_what_it_needs(monkeypatch):
    monkeypatch.delenv("PARSL_MPI_PREFIX", raising=False)
    with pytest.raises(RuntimeError, match="GlobusMPIEngine"):
        MPIFunction("hostname")()


def test_shell_function_returns_code_output_and_keeps_the_last_lines():
    result = ShellFunction("for i in 1 2 3 4; do echo line $i; done; echo oops >&2; exit {code}",
                           snippet_lines=2)(code=3)
    assert result.returncode == 3 and result.stdout == "line 3\nline 4\n" and result.stderr.strip() == "oops"
    slow = ShellFunction("sleep 5", walltime=0.2)()
    assert slow.returncode == 124 and "walltime of 0.2s" in slow.stderr


@pytest.mark.parametrize("spec, expected", [
    (None, (0, 0)), ({"num_nodes": 2, "ranks_per_node": 4}, (2, 4)), ({"num_nodes": 2, "num_ranks": 8}, (2, 4)),
    ({"num_ranks": 3}, (1, 3)),
])
def test_resource_specification_becomes_nodes_and_ranks(spec, expected):
    assert mpi_request(spec) == expected


@pytest.mark.parametrize("spec, message", [
    ({"num_nodes": 0}, "above 0"), ({"gpus": 1}, "not gpus"), ({"num_nodes": 2, "num_ranks": 3}, "multiple"),
    ({"num_nodes": 2, "ranks_per_node": 2, "num_ranks": 5}, "must equal"),
])
def test_a_bad_resource_specification_is_refused_at_once(spec, message):
    with pytest.raises(ValueError, match=message):
        mpi_request(spec)


def test_the_endpoint_refuses_mpi_requests_it_cannot_serve():
    plain = Admission("alice", Config())
    assert "runs no MPI tasks" in plain.mpi_problem(task("a", 1, 2))
    mpi = Admission("alice", Config(engine=Engine(type="GlobusMPIEngine", provider=LocalProvider())))
    assert mpi.mpi_problem(task("a", 1, 2)) is None
    assert "a block here has 1 nodes" in mpi.mpi_problem(task("a", 3, 1))
    assert "set by the manager" in mpi.mpi_problem(task("a", 1, 1, mpi_prefix="rm -rf /"))
    assert shlex.split(prefix("mpiexec", ["n1"], 1))[0] == "mpiexec"
