"""Shell and MPI functions through a real endpoint: ShellFunction anywhere, MPIFunction under GlobusMPIEngine,
its ranks started by MPICH's mpiexec on the nodes the manager gave the task (this host, here)."""

import pytest

from compute_endpoint.sdk import InvalidTaskError, MPIFunction, ShellFunction

MPI = {"engine": {"type": "GlobusMPIEngine", "mpi_launcher": "mpiexec", "max_workers_per_block": 2}}


def test_shell_function_returns_code_stdout_and_stderr(endpoint):
    with endpoint.executor() as ex:
        result = ex.submit(ShellFunction("echo hello {who}; echo warning >&2; exit 2"), who="alice").result(60)
    assert (result.returncode, result.stdout, result.stderr) == (2, "hello alice\n", "warning\n")


def test_mpi_function_runs_the_ranks_it_asked_for(endpoint_factory):
    ep = endpoint_factory("mpi", config=MPI)
    with ep.executor(resource_specification={"num_nodes": 1, "ranks_per_node": 3}) as ex:
        # Each rank expands its own variables: the outer shell only starts mpiexec.
        result = ex.submit(MPIFunction("sh -c 'echo rank $PMI_RANK of $PMI_SIZE on {where}'"),
                           where="$PARSL_MPI_NODELIST").result(60)
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.splitlines()) == [f"rank {r} of 3 on {ep.status()['hostname']}" for r in range(3)]
    assert result.cmd.startswith("mpiexec -n 3 -ppn 3 -hosts ")


def test_an_mpi_task_asking_for_more_nodes_than_a_block_has_is_refused(endpoint_factory):
    ep = endpoint_factory("mpi-big", config=MPI)
    with ep.executor(resource_specification={"num_nodes": 4, "ranks_per_node": 1}) as ex, \
            pytest.raises(InvalidTaskError, match="asks for 4 nodes and 1 ranks per node; a block here has 1"):
        ex.submit(MPIFunction("hostname")).result(60)


def test_an_mpi_task_to_an_endpoint_without_mpi_is_refused(endpoint):
    with endpoint.executor(resource_specification={"num_nodes": 1, "ranks_per_node": 2}) as ex, \
            pytest.raises(InvalidTaskError, match="runs no MPI tasks"):
        ex.submit(MPIFunction("hostname")).result(60)
