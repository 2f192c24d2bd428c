"""subinterp_rs.SharedDict (issue #19, item 4): a native concurrent mapping every interpreter
opens by name."""

from __future__ import annotations

import functools
import itertools
import threading
from typing import Any

import pytest
import support_shared_dict as ssd
from _helpers import run_threads
from hypothesis import given, settings
from hypothesis import strategies as st
from subinterp_rs import (
    NotShareableError,
    SharedDict,
    SharedDictClosedError,
    SharedDictFullError,
    Subinterpreter,
)
from subinterp_rs.futures import InterpreterPoolExecutor

_names = itertools.count()


def fresh(maxsize: int = 0) -> SharedDict:
    return SharedDict(f"test-{next(_names)}", maxsize)


def test_mapping_operations() -> None:
    d = fresh()
    value = (1, 2.5, "s", b"b", None, True, (2**70, -3))
    d["a"] = value
    assert d["a"] == value and d.get("a") == value and "a" in d
    assert d.get("missing") is None and d.get("missing", 7) == 7 and "missing" not in d
    with pytest.raises(KeyError):
        d["missing"]
    assert d.setdefault("s", "first") == "first" and d.setdefault("s", "second") == "first"
    assert d.increment("n") == 1 and d.increment("n", 5) == 6 and d.increment("f", 0.5) == 0.5
    assert d.increment("f", 1) == 1.5
    assert len(d) == 4 and set(d) == {"a", "s", "n", "f"}
    assert d.to_dict() == {"a": value, "s": "first", "n": 6, "f": 1.5}
    assert sorted(d.values(), key=repr) == sorted([value, "first", 6, 1.5], key=repr)
    assert d.pop("n") == 6 and d.pop("n", None) is None
    with pytest.raises(KeyError):
        d.pop("n")
    del d["f"]
    with pytest.raises(KeyError):
        del d["f"]
    d.update({"x": 1}, y=2)
    assert d["x"] == 1 and d["y"] == 2
    # Keys: str, int, bytes, tuples of these; True is the key 1, as in a dict.
    d[1] = "one"
    d[b"k"] = "bytes"
    d[("t", 2)] = "tuple"
    assert d[True] == "one" and d[b"k"] == "bytes" and d[("t", 2)] == "tuple"
    d.clear()
    assert len(d) == 0 and d.items() == []
    assert repr(d).endswith("0 keys>")


def test_containers_cross_as_data() -> None:
    d = fresh()
    value = [1, {"a": (2, [3.5, None])}, {4, 5}, frozenset({"x"}), bytearray(b"ba"), 1 + 2j]
    d["c"] = value
    got = d["c"]
    assert got == value and got is not value
    assert d.setdefault("c", []) == value
    assert d.compare_and_set("c", value, {"new": [1]}) and d["c"] == {"new": [1]}
    with Subinterpreter.create() as si:
        assert si.call(ssd.get_by_name, d.name, "c") == {"new": [1]}
    with pytest.raises(TypeError, match="increment needs"):
        d.increment("c")


def test_compare_and_set() -> None:
    d = fresh()
    assert d.compare_and_set("k", SharedDict.ABSENT, 1)
    assert not d.compare_and_set("k", SharedDict.ABSENT, 2)
    assert d.compare_and_set("k", 1, 2) and d["k"] == 2
    assert not d.compare_and_set("k", 1, 3) and d["k"] == 2
    assert not d.compare_and_set("k", 2.0, 3)  # compared as data: 2 is not 2.0
    assert not d.compare_and_set("other", None, 1)  # None is a value, not "absent"
    d["none"] = None
    assert d.compare_and_set("none", None, 5) and d["none"] == 5


def test_the_same_mapping_everywhere_by_name() -> None:
    d = fresh()
    d["from main"] = 1
    with Subinterpreter.create() as si:
        # By name inside, and the object itself crosses (by name).
        assert si.call(ssd.get_by_name, d.name, "from main") == 1
        assert si.call(ssd.increment_through, d, "from inside") == 1
    assert d["from inside"] == 1
    assert SharedDict(d.name)["from main"] == 1


def test_closing_an_interpreter_loses_nothing() -> None:
    d = fresh()
    si = Subinterpreter.create()
    assert si.call(ssd.write_and_leave, d.name, 500) == 500
    si.close()
    assert len(d) == 500 and d["k499"] == (499, 499.0, "499", bytes([499 % 256]))


def test_size_bound() -> None:
    d = fresh(maxsize=2)
    assert d.maxsize == 2
    d["a"] = 1
    d.increment("b")
    d["a"] = 2  # replacing a key is fine at the bound
    with pytest.raises(SharedDictFullError, match="at most 2 keys"):
        d["c"] = 3
    for op in (
        lambda: d.setdefault("c", 1),
        lambda: d.increment("c"),
        lambda: d.compare_and_set("c", SharedDict.ABSENT, 1),
    ):
        with pytest.raises(SharedDictFullError):
            op()
    assert len(d) == 2
    del d["a"]
    d["c"] = 3
    assert sorted(d) == ["b", "c"]
    # The bound is the creator's: opening the name again keeps it.
    assert SharedDict(d.name, 100).maxsize == 2


def test_what_cannot_go_in() -> None:
    d = fresh()

    class MyList(list[int]):
        pass

    for bad in (object(), memoryview(b"x"), (1, object()), MyList([1]), [threading.Lock()]):
        with pytest.raises(NotShareableError, match="must be None, bool, int"):
            d["k"] = bad
        with pytest.raises(NotShareableError):
            d.setdefault("k", bad)
    for bad_key in ([1], 1.5, 2**70, None, ("a", 1.5)):
        with pytest.raises(NotShareableError, match="key must be a str"):
            d[bad_key] = 1
        with pytest.raises(NotShareableError):
            d.get(bad_key)
    d["s"] = "text"
    with pytest.raises(TypeError, match="increment needs an int or float"):
        d.increment("s")
    with pytest.raises(TypeError, match="increment needs an int or float"):
        d.increment("n", "1")  # type: ignore[arg-type]
    d["big"] = 2**63 - 1
    with pytest.raises(OverflowError):
        d.increment("big")
    assert d["big"] == 2**63 - 1 and len(d) == 2


def test_bad_names() -> None:
    with pytest.raises(TypeError, match="name must be a str"):
        SharedDict(b"x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must not be empty"):
        SharedDict("")
    with pytest.raises(ValueError, match="maxsize must be >= 0"):
        SharedDict("x", -1)
    with pytest.raises(TypeError, match="maxsize must be an int"):
        SharedDict("x", 1.5)  # type: ignore[arg-type]


def test_closed() -> None:
    d = fresh()
    d["a"] = 1
    other = SharedDict(d.name)
    d.close()
    assert d.closed and other.closed and repr(d).endswith("closed>")
    ops: list[Any] = [
        lambda: d["a"],
        lambda: d.get("a"),
        lambda: d.__setitem__("a", 1),
        lambda: d.pop("a"),
        lambda: d.setdefault("a"),
        lambda: d.increment("a"),
        lambda: d.compare_and_set("a", 1, 2),
        lambda: len(d),
        lambda: d.items(),
        lambda: d.clear(),
        lambda: d.close(),
        lambda: other["a"],
    ]
    for op in ops:
        with pytest.raises(SharedDictClosedError, match="is closed"):
            op()
    again = SharedDict(d.name)  # a new, empty one
    assert len(again) == 0 and not again.closed and d.closed


def test_concurrent_increments_from_interpreters_lose_nothing() -> None:
    d = fresh()
    keys = ("a", "b", "c")
    with InterpreterPoolExecutor(max_workers=4) as pool:
        made = sum(pool.map(ssd.increment_many, [d.name] * 8, [keys] * 8, [500] * 8))
        d_cas = fresh()
        retries = sum(pool.map(ssd.cas_increment_many, [d_cas.name] * 4, ["k"] * 4, [500] * 4))
    assert made == 8 * 500 * 3
    assert d.to_dict() == {"a": 4000, "b": 4000, "c": 4000}
    assert d_cas["k"] == 2000, retries
    # Threads of main alongside.
    run_threads(*[functools.partial(ssd.increment_many, d.name, keys, 300)] * 4)
    assert d.to_dict() == {"a": 5200, "b": 5200, "c": 5200}


_keys = st.one_of(st.text(max_size=3), st.integers(-3, 3), st.binary(max_size=2))
_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**80), 2**80),
    st.floats(allow_nan=False),
    st.text(max_size=5),
    st.binary(max_size=5),
    st.tuples(st.integers(), st.text(max_size=2)),
)
_ops = st.lists(
    st.one_of(
        st.tuples(st.just("set"), _keys, _values),
        st.tuples(st.just("pop"), _keys, st.none()),
        st.tuples(st.just("setdefault"), _keys, _values),
        st.tuples(st.just("incr"), _keys, st.integers(-5, 5)),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(_ops)
def test_behaves_like_a_dict(ops: list[tuple[str, Any, Any]]) -> None:
    d = fresh()
    model: dict[Any, Any] = {}
    for op, key, arg in ops:
        if op == "set":
            d[key] = arg
            model[key] = arg
        elif op == "pop":
            assert d.pop(key, "none") == model.pop(key, "none")
        elif op == "setdefault":
            assert d.setdefault(key, arg) == model.setdefault(key, arg)
        else:
            current = model.get(key, 0)
            if (type(current) is int and abs(current + arg) < 2**63) or type(current) is float:
                model[key] = current + arg
                assert d.increment(key, arg) == model[key]
        assert len(d) == len(model)
    assert d.to_dict() == model
    d.close()
