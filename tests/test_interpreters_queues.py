"""The PEP 734 facade's cross-interpreter queues.

A port of CPython's ``Lib/test/test_interpreters/test_queues.py`` (3.14) to pytest, plus what
the stdlib gets wrong and we must not: float timeouts honoured exactly (the stdlib truncates
them to whole seconds) and blocking calls woken at once (the stdlib polls every 10 ms).
"""

import copy
import gc
import os
import pickle
import queue as queue_module
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence

import pytest

try:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    HAVE_HYPOTHESIS = True
except ImportError:
    # This module is imported in subinterpreters too (its functions cross by name), where
    # hypothesis's native module refuses to load; its tests only run in the main one.
    HAVE_HYPOTHESIS = False
from _helpers import (
    clean_interpreters,  # noqa: F401  (fixture)
    run_output,
    run_snippet,
    stable_id,
    wait_for,
)
from subinterp_rs import _native, _queues, interpreters
from subinterp_rs._unbound import UnboundItem, UnboundOp
from subinterp_rs.interpreters import (
    UNBOUND,
    UNBOUND_ERROR,
    UNBOUND_REMOVE,
    ItemInterpreterDestroyed,
    NotShareableError,
    QueueEmpty,
    QueueError,
    QueueFull,
    QueueNotFoundError,
)

pytestmark = pytest.mark.usefixtures("clean_interpreters")

HUGE_TIMEOUT = 3600


def queue_ids() -> set[int]:
    return {qid for qid, *_ in _native.queue_list_all()}


# -- the low-level functions the facade stands on -----------------------------------------------


def test_native_create_release() -> None:
    qid = _native.queue_create(2, _native.UNBOUND_REPLACE)
    assert qid in queue_ids()
    _native.queue_release(qid)
    assert qid not in queue_ids()
    with pytest.raises(QueueNotFoundError):
        _native.queue_get(qid, False, None)
    with pytest.raises(QueueNotFoundError):
        _native.queue_release(qid)


def test_native_bind_release() -> None:
    qid = _native.queue_create(2, _native.UNBOUND_REPLACE)
    _native.queue_bind(qid)
    _native.queue_bind(qid)
    _native.queue_release(qid)
    _native.queue_release(qid)
    assert qid in queue_ids()
    _native.queue_release(qid)
    assert qid not in queue_ids()


def test_highlevel_reloaded() -> None:
    # gh-115490: reloading the module in a subinterpreter must keep working.
    interp = interpreters.create()
    interp.exec(
        "import importlib\n"
        "from subinterp_rs import _queues as queues\n"
        "importlib.reload(queues)\n"
        "q = queues.create()\n"
        "q.put(1)\n"
        "assert q.get() == 1\n"
    )


def test_not_destroyed_at_exit() -> None:
    # A queue left alive at exit is cleaned up silently.
    proc = run_snippet(
        """
        from subinterp_rs import interpreters
        q = interpreters.create_queue(2)
        q.put(b'left behind')
        interp = interpreters.create()
        interp.prepare_main(q=q)
        interp.exec("q.put('from there')")
        """
    )
    assert proc.stdout == ""
    # The interpreter left open warns, as the stdlib's does; the queue is silent.
    assert proc.stderr.splitlines() == [
        "<sys>:0: RuntimeWarning: remaining subinterpreters; close them with Interpreter.close()"
    ]


# -- Queue objects ------------------------------------------------------------------------------


@pytest.mark.parametrize("maxsize", [0, 3, 100])
def test_create_maxsize(maxsize: int) -> None:
    q = interpreters.create_queue(maxsize)
    assert q.maxsize == maxsize


def test_create_default_maxsize() -> None:
    assert interpreters.create_queue().maxsize == 0


def test_create_negative_maxsize() -> None:
    # Like the stdlib: kept as given, and unbounded.
    q = interpreters.create_queue(-10)
    assert q.maxsize == -10
    for i in range(20):
        q.put_nowait(i)
    assert not q.full()


@pytest.mark.parametrize("bad", ["1", 1.0, None, [1]])
def test_create_bad_maxsize(bad: object) -> None:
    before = queue_ids()
    with pytest.raises(TypeError):
        interpreters.create_queue(bad)  # type: ignore[arg-type]  # deliberately not an int
    assert queue_ids() == before


def test_create_keyword_only_unbounditems() -> None:
    with pytest.raises(TypeError):
        interpreters.create_queue(0, UNBOUND)  # type: ignore[call-arg]  # deliberately positional


def test_shareable() -> None:
    queue1 = interpreters.create_queue()
    interp = interpreters.create()
    interp.exec(
        f"from subinterp_rs import interpreters\nqueue1 = interpreters.Queue({queue1.id})\n"
    )
    # same interpreter
    queue2 = interpreters.create_queue()
    queue1.put(queue2)
    queue3 = queue1.get()
    assert queue3 is queue2
    # from the current interpreter
    queue4 = interpreters.create_queue()
    queue1.put(queue4)
    out = run_output(interp, "queue4 = queue1.get()\nprint(queue4.id)")
    assert int(out) == queue4.id
    # from the subinterpreter
    out = run_output(
        interp,
        """
        queue5 = interpreters.create_queue()
        queue1.put(queue5)
        print(queue5.id)
        """,
    )
    queue5 = queue1.get()
    assert queue5.id == int(out)
    assert type(queue5) is interpreters.Queue


def test_queue_type_in_subinterpreter() -> None:
    q = interpreters.create_queue()
    interp = interpreters.create()
    interp.prepare_main(q=q)
    out = run_output(
        interp,
        """
        from subinterp_rs import interpreters
        print(type(q) is interpreters.Queue, q.id)
        """,
    )
    assert out.split() == ["True", str(q.id)]


def test_id_type() -> None:
    assert type(interpreters.create_queue().id) is int


def test_custom_id() -> None:
    with pytest.raises(QueueNotFoundError):
        interpreters.Queue(1_000_000)


@pytest.mark.parametrize("bad", ["1", 1.0, None, object()])
def test_bad_id_type(bad: object) -> None:
    with pytest.raises(TypeError, match="id must be an int"):
        interpreters.Queue(bad)  # type: ignore[arg-type]  # deliberately not an int


def test_bad_id_value() -> None:
    unraisable: list[sys.UnraisableHookArgs] = []
    old = sys.unraisablehook
    sys.unraisablehook = unraisable.append
    try:
        with pytest.raises(ValueError, match="non-negative"):
            interpreters.Queue(-1)
        gc.collect()
    finally:
        sys.unraisablehook = old
    # (The stdlib leaves a half-made object whose __del__ complains.)
    assert unraisable == []


def test_id_readonly() -> None:
    q = interpreters.create_queue()
    with pytest.raises(AttributeError):
        q.id = 1_000_000  # type: ignore[misc]  # deliberately: read-only


def test_maxsize_readonly() -> None:
    q = interpreters.create_queue(10)
    with pytest.raises(AttributeError):
        q.maxsize = 1_000_000  # type: ignore[misc]  # deliberately: read-only
    assert q.maxsize == 10


def test_hashable() -> None:
    q = interpreters.create_queue()
    assert hash(q) == hash(q.id)


def test_equality() -> None:
    queue1 = interpreters.create_queue()
    queue2 = interpreters.create_queue()
    assert queue1 == queue1
    assert queue1 != queue2
    assert interpreters.Queue(queue1.id) is queue1


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickle(protocol: int) -> None:
    q = interpreters.create_queue()
    unpickled = pickle.loads(pickle.dumps(q, protocol))
    assert unpickled == q
    assert unpickled is q


def test_repr() -> None:
    q = interpreters.create_queue()
    assert repr(q) == f"Queue({q.id})"


def test_freed_with_last_object() -> None:
    q = interpreters.create_queue()
    qid = q.id
    q.put(b"item")
    assert qid in queue_ids()
    del q
    gc.collect()
    assert qid not in queue_ids()
    with pytest.raises(QueueNotFoundError):
        interpreters.Queue(qid)


def test_outlives_creating_interpreter() -> None:
    interp = interpreters.create()
    out = run_output(
        interp,
        """
        from subinterp_rs import interpreters
        q = interpreters.create_queue()
        q.put(('from', 'there'))
        print(q.id)
        """,
    )
    q = interpreters.Queue(int(out))
    interp.close()
    assert q.qsize() == 1
    # The item was shareable data: it outlives its interpreter... but is unbound (UNBOUND).
    assert q.get_nowait() is UNBOUND


def test_list_all() -> None:
    before = {q.id for q in _queues.list_all()}
    q1 = interpreters.create_queue()
    q2 = interpreters.create_queue(5, unbounditems=UNBOUND_ERROR)
    listed = {q.id: q for q in _queues.list_all()}
    assert set(listed) == before | {q1.id, q2.id}
    assert listed[q1.id] is q1
    assert listed[q2.id].unbounditems is UNBOUND_ERROR


# -- UNBOUND markers ----------------------------------------------------------------------------


def test_unbound_markers() -> None:
    assert repr(UNBOUND) == "subinterp_rs.interpreters.UNBOUND"
    assert repr(UNBOUND_ERROR) == "subinterp_rs.interpreters.UNBOUND_ERROR"
    assert repr(UNBOUND_REMOVE) == "subinterp_rs.interpreters.UNBOUND_REMOVE"
    assert len({id(UNBOUND), id(UNBOUND_ERROR), id(UNBOUND_REMOVE)}) == 3
    assert type(UNBOUND)() is UNBOUND
    for marker in (UNBOUND, UNBOUND_ERROR, UNBOUND_REMOVE):
        assert copy.copy(marker) is marker
        assert copy.deepcopy(marker) is marker
        for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
            assert pickle.loads(pickle.dumps(marker, protocol)) is marker


@pytest.mark.parametrize("unbounditems", [UNBOUND, UNBOUND_ERROR, UNBOUND_REMOVE])
def test_unbounditems_default(unbounditems: UnboundItem | UnboundOp) -> None:
    q = interpreters.create_queue(unbounditems=unbounditems)
    assert q.unbounditems is unbounditems
    interp = interpreters.create()
    interp.prepare_main(q=q)
    out = run_output(interp, "print(repr(q.unbounditems))")
    assert out.strip() == repr(unbounditems)
    assert interpreters.create_queue().unbounditems is UNBOUND


@pytest.mark.parametrize("bad", [None, 3, "UNBOUND", object(), [UNBOUND]])
def test_unbounditems_bad(bad: object) -> None:
    # (bad: deliberately not an unbounditems value)
    before = queue_ids()
    with pytest.raises(NotImplementedError):
        interpreters.create_queue(unbounditems=bad)  # type: ignore[arg-type]
    assert queue_ids() == before
    q = interpreters.create_queue()
    if bad is not None:  # put()'s default: the queue's unbounditems
        with pytest.raises(NotImplementedError):
            q.put(1, unbounditems=bad)  # type: ignore[arg-type]
        with pytest.raises(NotImplementedError):
            q.put_nowait(1, unbounditems=bad)  # type: ignore[arg-type]
    assert q.qsize() == 0
    q.put(1, unbounditems=None)
    q.put_nowait(2, unbounditems=None)
    assert [q.get_nowait(), q.get_nowait()] == [1, 2]


# -- operations ---------------------------------------------------------------------------------


def test_empty() -> None:
    q = interpreters.create_queue()
    before = q.empty()
    q.put(None)
    during = q.empty()
    q.get()
    after = q.empty()
    assert (before, during, after) == (True, False, True)


@pytest.mark.parametrize("maxsize", [1, 3, 11])
def test_full(maxsize: int) -> None:
    expected = [False] * (maxsize * 2 + 3)
    expected[maxsize] = True
    expected[maxsize + 1] = True
    q = interpreters.create_queue(maxsize)
    actual = []
    empty = [q.empty()]
    for _ in range(maxsize):
        actual.append(q.full())
        q.put_nowait(None)
    actual.append(q.full())
    with pytest.raises(QueueFull):
        q.put_nowait(None)
    empty.append(q.empty())
    for _ in range(maxsize):
        actual.append(q.full())
        q.get_nowait()
    actual.append(q.full())
    with pytest.raises(QueueEmpty):
        q.get_nowait()
    actual.append(q.full())
    empty.append(q.empty())
    assert actual == expected
    assert empty == [True, False, True]


@pytest.mark.parametrize("args", [(), (0,), (-1,), (-10,)])
def test_full_no_maxsize(args: tuple[int, ...]) -> None:
    num_to_add = 13
    q = interpreters.create_queue(*args)
    actual = []
    for _ in range(num_to_add):
        actual.append(q.full())
        q.put_nowait(None)
    actual.append(q.full())
    for _ in range(num_to_add):
        actual.append(q.full())
        q.get_nowait()
    actual.append(q.full())
    with pytest.raises(QueueEmpty):
        q.get_nowait()
    assert actual == [False] * (num_to_add * 2 + 2)


def test_qsize() -> None:
    expected = [0, 1, 2, 3, 2, 3, 2, 1, 0, 1, 0]
    actual = []
    q = interpreters.create_queue()
    for _ in range(3):
        actual.append(q.qsize())
        q.put(None)
    actual.append(q.qsize())
    q.get()
    actual.append(q.qsize())
    q.put(None)
    actual.append(q.qsize())
    for _ in range(3):
        q.get()
        actual.append(q.qsize())
    q.put(None)
    actual.append(q.qsize())
    q.get()
    actual.append(q.qsize())
    assert actual == expected


def test_put_get_main() -> None:
    q = interpreters.create_queue()
    for i in range(20):
        q.put(i)
    assert [q.get() for _ in range(20)] == list(range(20))


def test_put_timeout() -> None:
    q = interpreters.create_queue(2)
    q.put(None)
    q.put(None)
    with pytest.raises(QueueFull):
        q.put(None, timeout=0.1)
    with pytest.raises(QueueFull):
        q.put(None, HUGE_TIMEOUT, 0.1)  # type: ignore[arg-type]  # (block=3600 is true)
    q.get()
    q.put(None)
    assert q.qsize() == 2


def test_put_nowait() -> None:
    q = interpreters.create_queue(2)
    q.put_nowait(None)
    q.put_nowait(None)
    with pytest.raises(QueueFull):
        q.put_nowait(None)
    with pytest.raises(QueueFull):
        q.put(None, False)
    start = time.monotonic()
    with pytest.raises(QueueFull):
        q.put(None, False, timeout=HUGE_TIMEOUT)
    assert time.monotonic() - start < 1
    q.get()
    q.put_nowait(None)
    assert q.qsize() == 2


@pytest.mark.parametrize(
    "obj",
    [None, True, 10, "spam", b"spam", (0, "a"), [1, 2, 3], {"a": 13, "b": 17}],
    ids=stable_id,
)
def test_put_full_fallback(obj: object) -> None:
    q = interpreters.create_queue()
    q.put(obj)
    obj2 = q.get()
    assert obj2 == obj
    q.put(obj)
    obj2 = q.get_nowait()
    assert obj2 == obj


def test_get_timeout() -> None:
    q = interpreters.create_queue()
    with pytest.raises(QueueEmpty):
        q.get(timeout=0.1)
    with pytest.raises(QueueEmpty):
        q.get(HUGE_TIMEOUT, 0.1)  # type: ignore[arg-type]  # (block=3600 is true)


def test_get_nowait() -> None:
    q = interpreters.create_queue()
    with pytest.raises(QueueEmpty):
        q.get_nowait()
    with pytest.raises(QueueEmpty):
        q.get(False)
    start = time.monotonic()
    with pytest.raises(QueueEmpty):
        q.get(False, timeout=HUGE_TIMEOUT)
    assert time.monotonic() - start < 1


def test_empty_full_are_stdlib_queue_exceptions() -> None:
    q = interpreters.create_queue(1)
    with pytest.raises(queue_module.Empty):
        q.get_nowait()
    q.put_nowait(1)
    with pytest.raises(queue_module.Full):
        q.put_nowait(2)
    with pytest.raises(QueueError):
        q.put_nowait(2)


def test_put_get_full_fallback() -> None:
    q = interpreters.create_queue()
    for methname in ("get", "get_nowait"):
        get = getattr(q, methname)
        for i in range(20):
            q.put(i)
        assert [get() for _ in range(20)] == list(range(20))
        obj = [1, 2, 3]  # lists are not shareable
        q.put(obj)
        obj2 = get()
        assert obj == obj2
        assert obj is not obj2


def test_put_get_same_interpreter() -> None:
    interp = interpreters.create()
    interp.exec("from subinterp_rs import interpreters\nqueue = interpreters.create_queue()\n")
    for methname in ("get", "get_nowait"):
        interp.exec(
            "orig = b'spam'\n"
            "queue.put(orig)\n"
            f"obj = queue.{methname}()\n"
            "assert obj == orig, 'expected: obj == orig'\n"
            "assert obj is not orig, 'expected: obj is not orig'\n"
        )


@pytest.mark.parametrize("methname", ["get", "get_nowait"])
def test_put_get_different_interpreters(methname: str) -> None:
    interp = interpreters.create()
    queue1 = interpreters.create_queue()
    queue2 = interpreters.create_queue()
    obj1 = b"spam"
    queue1.put(obj1)
    out = run_output(
        interp,
        f"""
        from subinterp_rs import interpreters
        queue1 = interpreters.Queue({queue1.id})
        queue2 = interpreters.Queue({queue2.id})
        assert queue1.qsize() == 1, 'expected: queue1.qsize() == 1'
        obj = queue1.{methname}()
        assert queue1.qsize() == 0, 'expected: queue1.qsize() == 0'
        assert obj == b'spam', 'expected: obj == obj1'
        # When going to another interpreter we get a copy.
        assert id(obj) != {id(obj1)}, 'expected: obj is not obj1'
        obj2 = b'eggs'
        print(id(obj2))
        assert queue2.qsize() == 0, 'expected: queue2.qsize() == 0'
        queue2.put(obj2)
        assert queue2.qsize() == 1, 'expected: queue2.qsize() == 1'
        """,
    )
    assert queue1.qsize() == 0
    assert queue2.qsize() == 1
    obj2 = getattr(queue2, methname)()
    assert obj2 == b"eggs"
    assert id(obj2) != int(out)


def test_queue_through_prepare_main_and_call_args() -> None:
    q = interpreters.create_queue()
    interp = interpreters.create()
    interp.prepare_main(q=q)
    interp.exec("q.put('via prepare_main')")
    assert q.get(timeout=5) == "via prepare_main"
    # As a call() argument, and back as its result.
    assert interp.call(_queues.Queue.put, q, "via call") is None
    assert q.get(timeout=5) == "via call"
    assert interp.call(_identity, q) is q
    assert interp.call(_identity, (q, 1)) == (q, 1)


def _identity(obj: object) -> object:
    return obj


def _put_many(q: interpreters.Queue, items: Sequence[object]) -> int:
    for item in items:
        q.put(item)
    return len(items)


def test_queue_call_arg_used_there() -> None:
    q = interpreters.create_queue()
    interp = interpreters.create()
    assert interp.call(_put_many, q, (1, "two", b"three", (4,), [5])) == 5
    assert [q.get_nowait() for _ in range(5)] == [1, "two", b"three", (4,), [5]]


# -- unbound items (the interpreter that put them is gone) ------------------------------------


def _fill_from_subinterpreter(
    q: interpreters.Queue,
    unbounditems: UnboundItem | UnboundOp | None = None,
    presize: int = 0,
    *,
    how: str = "del",
) -> interpreters.Interpreter:
    extraargs = "" if unbounditems is None else f", unbounditems=interpreters.{unbounditems!r}"
    extraargs = extraargs.replace("subinterp_rs.interpreters.", "")
    interp = interpreters.create()
    run_output(
        interp,
        f"""
        from subinterp_rs import interpreters
        queue = interpreters.Queue({q.id})
        queue.put(b'spam'{extraargs})
        queue.put(b'eggs'{extraargs})
        """,
    )
    assert q.qsize() == presize + 2
    if presize == 0:
        assert q.get() == b"spam"
        assert q.qsize() == presize + 1
    return interp


def _drop(box: list[interpreters.Interpreter], how: str) -> None:
    """Close the interpreter in ``box`` (a one-item list, the only reference to it), or
    drop the reference, like the stdlib's tests (``del interp``)."""
    interp = box.pop()
    interpid = interp.id
    if how == "close":
        interp.close()
    del interp
    gc.collect()
    assert interpid not in {i.id for i in interpreters.list_all()}


@pytest.mark.parametrize("how", ["del", "close"])
def test_put_cleared_with_subinterpreter_default(how: str) -> None:
    q = interpreters.create_queue()
    box = [_fill_from_subinterpreter(q)]
    _drop(box, how)
    assert q.get() is UNBOUND
    assert q.qsize() == 0
    with pytest.raises(QueueEmpty):
        q.get_nowait()


@pytest.mark.parametrize("how", ["del", "close"])
def test_put_cleared_with_subinterpreter_unbound(how: str) -> None:
    q = interpreters.create_queue()
    box = [_fill_from_subinterpreter(q, UNBOUND)]
    _drop(box, how)
    assert q.get() is UNBOUND
    assert q.qsize() == 0


@pytest.mark.parametrize("how", ["del", "close"])
def test_put_cleared_with_subinterpreter_unbound_error(how: str) -> None:
    q = interpreters.create_queue()
    box = [_fill_from_subinterpreter(q, UNBOUND_ERROR)]
    _drop(box, how)
    assert q.qsize() == 1
    with pytest.raises(ItemInterpreterDestroyed):
        q.get()
    assert q.qsize() == 0
    with pytest.raises(QueueEmpty):
        q.get_nowait()


@pytest.mark.parametrize("how", ["del", "close"])
def test_put_cleared_with_subinterpreter_unbound_remove(how: str) -> None:
    q = interpreters.create_queue()
    box = [_fill_from_subinterpreter(q, UNBOUND_REMOVE)]
    _drop(box, how)
    assert q.qsize() == 0
    with pytest.raises(QueueEmpty):
        q.get_nowait()

    q.put(b"ham", unbounditems=UNBOUND_REMOVE)
    assert q.qsize() == 1
    box = [_fill_from_subinterpreter(q, UNBOUND_REMOVE, 1)]
    assert q.qsize() == 3
    q.put(42, unbounditems=UNBOUND_REMOVE)
    assert q.qsize() == 4
    _drop(box, how)
    assert q.qsize() == 2
    assert q.get() == b"ham"
    assert q.get() == 42
    assert q.qsize() == 0


def test_put_cleared_with_subinterpreter_queue_default() -> None:
    # The queue's default applies to items put without unbounditems.
    q = interpreters.create_queue(unbounditems=UNBOUND_ERROR)
    interp = _fill_from_subinterpreter(q)
    interp.close()
    with pytest.raises(ItemInterpreterDestroyed):
        q.get_nowait()
    q = interpreters.create_queue(unbounditems=UNBOUND_REMOVE)
    interp = _fill_from_subinterpreter(q)
    interp.close()
    assert q.qsize() == 0


def test_put_cleared_with_subinterpreter_mixed() -> None:
    q = interpreters.create_queue()
    interp = interpreters.create()
    run_output(
        interp,
        f"""
        from subinterp_rs import interpreters
        queue = interpreters.Queue({q.id})
        queue.put(1, unbounditems=interpreters.UNBOUND)
        queue.put(2, unbounditems=interpreters.UNBOUND_ERROR)
        queue.put(3)
        queue.put(4, unbounditems=interpreters.UNBOUND_REMOVE)
        queue.put(5, unbounditems=interpreters.UNBOUND)
        """,
    )
    assert q.qsize() == 5
    del interp
    gc.collect()
    assert q.qsize() == 4
    assert q.get() is UNBOUND
    assert q.qsize() == 3
    with pytest.raises(ItemInterpreterDestroyed):
        q.get()
    assert q.qsize() == 2
    assert q.get() is UNBOUND
    assert q.qsize() == 1
    assert q.get() is UNBOUND
    assert q.qsize() == 0


def test_put_cleared_with_subinterpreter_multiple() -> None:
    q = interpreters.create_queue()
    interp1 = interpreters.create()
    interp2 = interpreters.create()
    setup = f"from subinterp_rs import interpreters as i\nqueue = i.Queue({q.id})\n"
    q.put(1)
    run_output(
        interp1,
        setup
        + "obj1 = queue.get()\n"
        + "queue.put(2, unbounditems=i.UNBOUND)\n"
        + "queue.put(obj1, unbounditems=i.UNBOUND_REMOVE)\n",
    )
    run_output(interp2, setup + "obj2 = queue.get()\nobj1 = queue.get()\n")
    assert q.qsize() == 0
    q.put(3)
    run_output(
        interp1,
        "queue.put(4, unbounditems=i.UNBOUND)\n"
        "queue.put(5, unbounditems=i.UNBOUND_REMOVE)\n"
        "queue.put(6, unbounditems=i.UNBOUND)\n",
    )
    run_output(
        interp2,
        "queue.put(7, unbounditems=i.UNBOUND_ERROR)\n"
        "queue.put(obj1, unbounditems=i.UNBOUND_ERROR)\n"
        "queue.put(obj2, unbounditems=i.UNBOUND_REMOVE)\n"
        "queue.put(8, unbounditems=i.UNBOUND)\n",
    )
    run_output(
        interp1,
        "queue.put(9, unbounditems=i.UNBOUND_REMOVE)\nqueue.put(10, unbounditems=i.UNBOUND)\n",
    )
    assert q.qsize() == 10
    assert q.get() == 3
    assert q.qsize() == 9
    assert q.get() == 4
    assert q.qsize() == 8

    del interp1
    gc.collect()
    assert q.qsize() == 6
    # obj5 was removed
    assert q.get() is UNBOUND  # obj6
    assert q.qsize() == 5
    assert q.get() == 7  # interp2 is still alive
    assert q.qsize() == 4

    del interp2
    gc.collect()
    assert q.qsize() == 3
    with pytest.raises(ItemInterpreterDestroyed):  # obj1
        q.get()
    assert q.qsize() == 2
    # obj2 was removed
    assert q.get() is UNBOUND  # obj8
    assert q.qsize() == 1
    # obj9 was removed
    assert q.get() is UNBOUND  # obj10
    assert q.qsize() == 0


def test_items_of_main_never_unbound() -> None:
    q = interpreters.create_queue(unbounditems=UNBOUND_REMOVE)
    q.put(b"main's")
    interp = interpreters.create()
    interp.close()
    assert q.get_nowait() == b"main's"


# -- threads ------------------------------------------------------------------------------------


def test_put_get_different_threads() -> None:
    queue1 = interpreters.create_queue()
    queue2 = interpreters.create_queue()

    def f() -> None:
        while True:
            try:
                obj = queue1.get(timeout=0.1)
                break
            except QueueEmpty:
                continue
        queue2.put(obj)

    t = threading.Thread(target=f)
    t.start()
    orig = b"spam"
    queue1.put(orig)
    obj = queue2.get()
    t.join()
    assert obj == orig
    assert obj is not orig


def test_many_producers_and_consumers() -> None:
    q = interpreters.create_queue(4)
    results = []
    lock = threading.Lock()

    def produce(base: int) -> None:
        for i in range(50):
            q.put((base, i), timeout=10)

    def consume() -> None:
        got = [q.get(timeout=10) for _ in range(50)]
        with lock:
            results.extend(got)

    threads = [threading.Thread(target=produce, args=(b,)) for b in range(4)]
    threads += [threading.Thread(target=consume) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == sorted((b, i) for b in range(4) for i in range(50))
    # Each producer's items come out in its order.
    for b in range(4):
        mine = [i for (base, i) in results if base == b]
        assert sorted(mine) == list(range(50))
    assert q.qsize() == 0


# -- timeouts: exact floats, no polling ----------------------------------------------------------


@pytest.mark.parametrize("timeout", [0.25, 0.4])
def test_get_float_timeout_honoured(timeout: float) -> None:
    q = interpreters.create_queue()
    start = time.monotonic()
    with pytest.raises(QueueEmpty):
        q.get(timeout=timeout)
    elapsed = time.monotonic() - start
    # The stdlib would return after int(0.25) = 0 seconds; a poller could overshoot.
    assert timeout - 0.05 <= elapsed < 0.9, elapsed


def test_put_float_timeout_honoured() -> None:
    q = interpreters.create_queue(1)
    q.put(0)
    start = time.monotonic()
    with pytest.raises(QueueFull):
        q.put(1, timeout=0.25)
    elapsed = time.monotonic() - start
    assert 0.2 <= elapsed < 0.9, elapsed
    assert q.qsize() == 1
    assert q.get_nowait() == 0


def test_zero_timeout_does_not_wait() -> None:
    q = interpreters.create_queue(1)
    start = time.monotonic()
    with pytest.raises(QueueEmpty):
        q.get(timeout=0)
    q.put(1)
    with pytest.raises(QueueFull):
        q.put(2, timeout=0.0)
    assert time.monotonic() - start < 0.2


def test_timeout_in_subinterpreter() -> None:
    q = interpreters.create_queue()
    interp = interpreters.create()
    interp.prepare_main(q=q)
    out = run_output(
        interp,
        """
        import time
        from subinterp_rs import interpreters
        start = time.monotonic()
        try:
            q.get(timeout=0.25)
        except interpreters.QueueEmpty:
            print(time.monotonic() - start)
        """,
    )
    assert 0.2 <= float(out) < 0.9


@pytest.mark.parametrize(
    ("bad", "exc"),
    [(-1, ValueError), (-0.001, ValueError), (float("nan"), ValueError), ("a", ValueError)],
    ids=stable_id,
)
def test_bad_timeout(bad: object, exc: type[Exception]) -> None:
    # (bad: deliberately invalid, "a" of the wrong type)
    q = interpreters.create_queue(1)
    with pytest.raises(exc):
        q.get(timeout=bad)  # type: ignore[arg-type]
    q.put(1)
    with pytest.raises(exc):
        q.put(2, timeout=bad)  # type: ignore[arg-type]
    assert q.qsize() == 1
    assert q.get_nowait() == 1


def test_timeout_type_error() -> None:
    q = interpreters.create_queue()
    with pytest.raises(TypeError):
        q.get(timeout=object())  # type: ignore[arg-type]  # deliberately not a number
    with pytest.raises(TypeError):
        q.put(1, timeout=[1])  # type: ignore[arg-type]  # deliberately not a number
    assert q.qsize() == 0


@pytest.mark.parametrize("timeout", [None, float("inf"), 1e300, HUGE_TIMEOUT])
def test_endless_timeouts_woken_by_put(timeout: float | None) -> None:
    q = interpreters.create_queue()
    timer = threading.Timer(0.05, q.put, args=("wake",))
    timer.start()
    try:
        assert q.get(timeout=timeout) == "wake"
    finally:
        timer.join()


def _wake_latencies(
    q: interpreters.Queue, rounds: int, putter: Callable[[], object]
) -> list[float]:
    latencies: list[float] = []
    for _ in range(rounds):
        t = threading.Thread(target=putter)
        t.start()
        stamp = q.get(timeout=10)
        latencies.append(time.monotonic() - stamp)
        t.join()
    return latencies


def test_blocking_get_woken_by_thread_without_polling() -> None:
    q = interpreters.create_queue()

    def putter() -> None:
        time.sleep(0.02)
        q.put(time.monotonic())

    latencies = _wake_latencies(q, 15, putter)
    # 10 ms polling gives a median latency near 5 ms; a native wait wakes within ~0.1 ms.
    assert statistics.median(latencies) < 0.004, latencies
    assert max(latencies) < 0.5, latencies


def test_blocking_get_woken_by_other_interpreter() -> None:
    q = interpreters.create_queue()
    interp = interpreters.create()
    interp.prepare_main(q=q)
    interp.exec("import time")
    latencies = []
    for _ in range(10):
        t = threading.Thread(
            target=interp.exec, args=("time.sleep(0.02); q.put(time.monotonic())",)
        )
        t.start()
        stamp = q.get(timeout=10)
        latencies.append(time.monotonic() - stamp)
        t.join()
    assert statistics.median(latencies) < 0.004, latencies


def test_blocking_get_in_subinterpreter_woken_by_main() -> None:
    q = interpreters.create_queue()
    back = interpreters.create_queue()
    interp = interpreters.create()
    interp.prepare_main(q=q, back=back)
    t = interp.call_in_thread(_echo_latencies, q, back, 10)
    try:
        for _ in range(10):
            assert back.get(timeout=10) == "ready"
            time.sleep(0.02)  # the other interpreter is (almost surely) blocked in get()
            q.put(time.monotonic())
        latencies = back.get(timeout=10)
    finally:
        t.join()
    assert len(latencies) == 10
    assert statistics.median(latencies) < 0.004, latencies


def _echo_latencies(q: interpreters.Queue, back: interpreters.Queue, n: int) -> None:
    latencies: list[float] = []
    for _ in range(n):
        back.put("ready")
        stamp = q.get(timeout=10)
        latencies.append(time.monotonic() - stamp)
    back.put(tuple(latencies))


def test_blocking_put_woken_by_get() -> None:
    q = interpreters.create_queue(1)
    q.put("first")
    done = []

    def getter() -> None:
        time.sleep(0.05)
        done.append(time.monotonic())
        q.get()

    t = threading.Thread(target=getter)
    t.start()
    q.put("second", timeout=10)
    woke = time.monotonic()
    t.join()
    assert woke - done[0] < 0.05
    assert q.get_nowait() == "second"


def test_blocking_get_interrupted_by_signal() -> None:
    proc = run_snippet(
        """
        import os, signal, threading, time
        from subinterp_rs import interpreters
        q = interpreters.create_queue()
        start = time.monotonic()
        try:  # the signal lands inside the try however late this thread gets here
            threading.Timer(0.3, os.kill, args=(os.getpid(), signal.SIGINT)).start()
            q.get()
        except KeyboardInterrupt:
            print('interrupted', round(time.monotonic() - start, 1))
        """,
        timeout=30,
    )
    assert proc.stdout.startswith("interrupted")
    # Interrupted, not woken by anything else: a blocking get() has no timeout of its own.
    # (How soon is a benchmark's business; bounded generously for a loaded machine.)
    assert float(proc.stdout.split()[1]) < 20.0


def test_signal_handler_runs_during_blocking_get() -> None:
    proc = run_snippet(
        """
        import os, signal, threading
        from subinterp_rs import interpreters
        q = interpreters.create_queue()
        def handler(signum, frame):
            q.put('from handler')
        signal.signal(signal.SIGUSR1, handler)
        threading.Timer(0.2, os.kill, args=(os.getpid(), signal.SIGUSR1)).start()
        print(q.get(timeout=10))
        """,
        timeout=30,
    )
    assert proc.stdout.strip() == "from handler"


# -- misuse: clear errors, nothing lost ----------------------------------------------------------


@pytest.mark.parametrize(
    "obj", [threading.Lock(), (x for x in range(0)), lambda: 0 if os else 1], ids=stable_id
)
def test_put_not_shareable(obj: object) -> None:
    q = interpreters.create_queue()
    q.put("before")
    with pytest.raises(NotShareableError):
        q.put(obj)
    with pytest.raises(NotShareableError):
        q.put_nowait(obj)
    assert q.qsize() == 1
    assert q.get_nowait() == "before"


def test_put_unpicklable_nested() -> None:
    q = interpreters.create_queue()
    with pytest.raises(NotShareableError):
        q.put([1, threading.Lock()])
    assert q.qsize() == 0


def test_get_unpicklable_there() -> None:
    # An item that pickles there but cannot be rebuilt here (its class lives in that
    # interpreter's __main__): get() raises NotShareableError (like the stdlib, with the
    # unpickling error as its cause), and the queue goes on with the next item.
    q = interpreters.create_queue()
    interp = interpreters.create()
    interp.prepare_main(q=q)
    interp.exec("class Local:\n    pass\nq.put(Local())\nq.put('next')\n")
    assert q.qsize() == 2
    with pytest.raises(NotShareableError) as info:
        q.get(timeout=5)
    assert "Local" in repr(info.value.__cause__) or "Local" in str(info.value)
    assert q.qsize() == 1
    assert q.get_nowait() == "next"
    q.put("still works")
    assert q.get_nowait() == "still works"


def test_queue_not_found_after_release() -> None:
    qid = _native.queue_create(0, _native.UNBOUND_REPLACE)
    q = interpreters.Queue(qid)
    _native.queue_release(qid)  # the facade's object still holds one
    assert q.qsize() == 0
    q.put(1)
    assert q.get() == 1


def test_queue_used_from_many_interpreters_after_creator_closed() -> None:
    creator = interpreters.create()
    out = run_output(
        creator,
        """
        from subinterp_rs import interpreters
        q = interpreters.create_queue()
        print(q.id)
        """,
    )
    q = interpreters.Queue(int(out))
    creator.close()
    other = interpreters.create()
    other.prepare_main(q=q)
    other.exec("q.put('alive')")
    assert q.get(timeout=5) == "alive"


# -- values round-trip ---------------------------------------------------------------------------

if HAVE_HYPOTHESIS:
    shareable = st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False)
        | st.text()
        | st.binary(),
        lambda children: st.tuples(children) | st.tuples(children, children),
        max_leaves=8,
    )

    @settings(max_examples=60, deadline=None)
    @given(value=shareable)
    def test_roundtrip_shareable_values(value: object) -> None:
        q = _roundtrip_queue()
        q.put(value)
        got = q.get_nowait()
        assert got == value
        assert type(got) is type(value)

    @settings(max_examples=25, deadline=None)
    @given(value=st.lists(st.dictionaries(st.text(max_size=3), st.integers()), max_size=3))
    def test_roundtrip_pickled_values(value: list[dict[str, int]]) -> None:
        q = _roundtrip_queue()
        q.put(value)
        assert q.get_nowait() == value


def test_roundtrip_through_subinterpreter() -> None:
    values = [None, True, -(2**80), 1.5, "spam ✓", b"\x00eggs", (1, (2, "x")), [3, {"k": 4}]]
    q = interpreters.create_queue()
    back = interpreters.create_queue()
    interp = interpreters.create()
    interp.prepare_main(q=q, back=back)
    for value in values:
        q.put(value)
    interp.exec(f"for _ in range({len(values)}):\n    back.put(q.get())\n")
    assert [back.get_nowait() for _ in values] == values


def test_memoryview_crosses() -> None:
    q = interpreters.create_queue()
    data = bytearray(b"spam")
    q.put(memoryview(data))
    got = q.get_nowait()
    assert bytes(got) == b"spam"


_ROUNDTRIP: list[interpreters.Queue] = []


def _roundtrip_queue() -> interpreters.Queue:
    if not _ROUNDTRIP:
        _ROUNDTRIP.append(interpreters.create_queue())
    q = _ROUNDTRIP[0]
    while not q.empty():
        q.get_nowait()
    return q


def test_wait_for_helper_sanity() -> None:
    assert wait_for(lambda: True, timeout=0.1)
