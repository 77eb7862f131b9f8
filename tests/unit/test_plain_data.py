"""Arguments of allowed functions are loaded as plain data: nothing in them can name code to run."""

import collections
import datetime
import pickle

import cloudpickle
import pytest

from compute_endpoint.serialize import dump_arguments, function_hash, load_plain_data

PLAIN = ([1, 2.5, 3 + 4j, "text", b"bytes", bytearray(b"ba"), None, True, (1, (2,))],
         {"set": {1, 2}, "frozen": frozenset({"a"}), "nested": {"k": [{"deep": 1.0}]}, "big": 10**40})


def test_plain_data_loads_as_it_was():
    assert load_plain_data(dump_arguments(*PLAIN)) == PLAIN


@pytest.mark.parametrize("value", [datetime.date(2026, 1, 1), collections.OrderedDict(a=1), len, print,
                                   type("Local", (), {})()])
def test_anything_that_names_a_class_or_function_is_refused(value):
    with pytest.raises(pickle.UnpicklingError, match="is not plain data"):
        load_plain_data(cloudpickle.dumps(((value,), {})))


def test_a_function_hash_is_of_its_bytes():
    assert function_hash(b"abc") == function_hash(b"abc") != function_hash(b"abd")
    assert len(function_hash(b"")) == 32
