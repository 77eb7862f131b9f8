"""Large arguments and results work up to the limit (default 10 MiB); over it, a clear error."""

import os

import pytest

from compute_endpoint.sdk import PayloadTooLargeError

MiB = 2**20


def digest(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def make_blob(size: int) -> bytes:
    return b"x" * size


def test_arguments_and_results_up_to_the_limit_travel(endpoint):
    blob = os.urandom(9 * MiB)
    with endpoint.executor() as ex:
        import hashlib

        assert ex.submit(digest, blob).result(timeout=120) == hashlib.sha256(blob).hexdigest()
        assert len(ex.submit(make_blob, 9 * MiB).result(timeout=120)) == 9 * MiB


def test_an_oversized_argument_fails_at_once_for_the_submitter(endpoint):
    with endpoint.executor() as ex:
        future = ex.submit(len, b"x" * (11 * MiB))
        with pytest.raises(PayloadTooLargeError, match=r"11.0 MiB, over the limit of 10.0 MiB"):
            future.result(timeout=5)
        assert ex.submit(len, b"fine").result(timeout=60) == 4


def test_an_oversized_result_comes_back_as_an_error(endpoint):
    with endpoint.executor() as ex, pytest.raises(PayloadTooLargeError, match=r"the result is 11.0 MiB, over"):
        ex.submit(make_blob, 11 * MiB).result(timeout=120)


def test_the_endpoints_own_limit_applies_to_tasks_it_receives(endpoint_factory):
    ep = endpoint_factory(config={"max_payload_bytes": 1 * MiB})
    with ep.executor() as ex:  # the SDK's limit (10 MiB) lets this through; the endpoint refuses it
        with pytest.raises(PayloadTooLargeError, match=r"over the endpoint's limit of 1.0 MiB"):
            ex.submit(len, b"x" * (2 * MiB)).result(timeout=60)
        with pytest.raises(PayloadTooLargeError, match=r"the result is 2.0 MiB, over the endpoint's limit of 1.0"):
            ex.submit(make_blob, 2 * MiB).result(timeout=60)
