"""A submitter on another Python version: its lambdas are refused with the reason, importable functions run."""

import operator

import pytest

from compute_endpoint import serialize
from compute_endpoint.sdk import TaskSerializationError


def test_a_submitter_on_another_python_learns_why_its_lambda_did_not_run(endpoint, monkeypatch):
    monkeypatch.setattr(serialize, "python_version", lambda: "3.99")
    with endpoint.executor() as ex:
        refused = ex.submit(lambda v: v + 1, 1)
        by_reference = ex.submit(operator.mul, 6, 7)
        with pytest.raises(TaskSerializationError, match=r"sent by value .* from Python 3\.99, and this endpoint's "
                                                         r"workers run Python 3\.\d+"):
            refused.result(timeout=60)
        assert by_reference.result(timeout=60) == 42
        assert ex.submit(len, "still serving").result(timeout=60) == 13
