"""Stress: a hypothesis state machine over the whole API, many threads at once, and leaks.

* ``InterpreterMachine`` (hypothesis ``RuleBasedStateMachine``) creates, uses, disarms and
  closes interpreters (low-level and PEP 734) and puts and gets queue items from main and from
  interpreters, against a model. Invariants: ``_native.list_all()`` shows exactly the model's
  interpreters, ids are never reused, queue sizes match the model (no item lost or
  duplicated) and every item comes out as the model says (``UNBOUND`` semantics included).
* ``test_many_threads`` (in a subprocess): threads with interpreters of their own, threads
  sharing interpreters (``InterpreterError('running')`` expected), a thread closing and
  replacing shared interpreters, and producers sending unique items through one queue.
* ``test_leakcheck_small`` runs ``scripts/leakcheck.py`` small, in a subprocess.

CI runs them in seconds; ``SUBINTERP_SOAK=1`` (or ``pytest --soak``) runs them for minutes
(``SUBINTERP_SOAK_SECONDS``, default 300 each) and prints the figures (run with ``-s``).
"""

from __future__ import annotations

import collections
import gc
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from _helpers import SOAK, assert_clean, run_python, run_snippet, scaled, soak_seconds
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from subinterp_rs import (
    ExecutionFailed,
    InterpreterConfig,
    InterpreterError,
    Subinterpreter,
    _native,
    interpreters,
)
from subinterp_rs._unbound import UnboundOp
from subinterp_rs.interpreters import (
    UNBOUND,
    UNBOUND_ERROR,
    UNBOUND_REMOVE,
    ItemInterpreterDestroyed,
    QueueEmpty,
    QueueFull,
    UnboundItem,
)

ROOT = Path(__file__).resolve().parent.parent

# -- the state machine ------------------------------------------------------------------------

MAX_INTERPS = 5
MAX_QUEUES = 3
# Examples per run of the machine (the soak runs many such runs, each in a new process: a
# disarmed interpreter lives until its process exits, at most one per example).
EXAMPLES = int(os.environ.get("SUBINTERP_SM_EXAMPLES", "25"))

_highest_id = 0  # CPython never reuses an id: every new one is higher than all before
STATS: collections.Counter[str] = collections.Counter()

CONFIGS = {
    "isolated": InterpreterConfig.isolated(),
    "legacy": InterpreterConfig.legacy(),
    "shared": InterpreterConfig(gil="shared"),
}
OPS: dict[str, UnboundItem | UnboundOp] = {
    "UNBOUND": UNBOUND,
    "UNBOUND_ERROR": UNBOUND_ERROR,
    "UNBOUND_REMOVE": UNBOUND_REMOVE,
}

values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.binary(max_size=20),
    st.tuples(st.integers(), st.text(max_size=5)),
    st.lists(st.integers(), max_size=4),  # pickled
)


@dataclass
class Interp:
    handle: Subinterpreter | interpreters.Interpreter
    kind: str
    id: int
    armed: bool = True


@dataclass
class Item:
    value: object
    putter: int  # interpreter id; 0 for main
    op: str  # "UNBOUND", "UNBOUND_ERROR" or "UNBOUND_REMOVE"
    unbound: bool = False


@dataclass
class QueueModel:
    queue: interpreters.Queue
    maxsize: int
    default_op: str
    items: collections.deque[Item] = field(default_factory=collections.deque)

    def full(self) -> bool:
        return 0 < self.maxsize <= len(self.items)


def _ids() -> set[int]:
    return {i for i, _ in _native.list_all()}


def _same(a: object, b: object) -> bool:
    return type(a) is type(b) and (a == b or (a != a and b != b))


class InterpreterMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        gc.collect()
        self.baseline = _ids()
        self.interps: dict[int, Interp] = {}
        self.queues: dict[int, QueueModel] = {}
        self.disarmed = 0

    # -- helpers --

    def _pick(self, data: st.DataObject, *, armed: bool | None = None) -> Interp:
        ids = sorted(i for i, x in self.interps.items() if armed is None or x.armed == armed)
        return self.interps[data.draw(st.sampled_from(ids), label="interp")]

    def _pick_queue(self, data: st.DataObject) -> QueueModel:
        return self.queues[data.draw(st.sampled_from(sorted(self.queues)), label="queue")]

    def _gone(self, id_: int) -> None:
        """Interpreter `id_` was closed: its queue items become unbound or go."""
        self.interps.pop(id_, None)
        for qm in self.queues.values():
            kept: collections.deque[Item] = collections.deque()
            for item in qm.items:
                if item.putter == id_ and not item.unbound:
                    if item.op == "UNBOUND_REMOVE":
                        continue
                    item.unbound = True
                kept.append(item)
            qm.items = kept

    def _count(self, what: str) -> None:
        STATS[what] += 1
        STATS["steps"] += 1

    # -- interpreters --

    @initialize()
    def start(self) -> None:
        STATS["examples"] += 1

    @precondition(lambda self: len(self.interps) < MAX_INTERPS)
    @rule(kind=st.sampled_from(["isolated", "legacy", "shared", "facade"]))
    def create(self, kind: str) -> None:
        global _highest_id
        handle: Subinterpreter | interpreters.Interpreter = (
            interpreters.create() if kind == "facade" else Subinterpreter.create(CONFIGS[kind])
        )
        id_ = handle.id
        assert id_ > _highest_id, f"id {id_} reused (highest so far {_highest_id})"
        assert id_ not in self.interps and id_ not in self.baseline
        _highest_id = id_
        self.interps[id_] = Interp(handle, kind, id_)
        self._count("create")

    @precondition(lambda self: self.interps)
    @rule(data=st.data(), n=st.integers(-(2**70), 2**70))
    def exec_and_call(self, data: st.DataObject, n: int) -> None:
        x = self._pick(data)
        x.handle.exec(f"v = {n!r}")
        assert x.handle.call(divmod, n, 7) == divmod(n, 7)
        self._count("exec_call")

    @precondition(lambda self: self.interps)
    @rule(data=st.data())
    def exec_raises(self, data: st.DataObject) -> None:
        x = self._pick(data)
        try:
            x.handle.exec("raise KeyError('model')")
        except ExecutionFailed as e:
            assert e.excinfo.type.__name__ == "KeyError"
        else:
            raise AssertionError("no ExecutionFailed")
        self._count("exec_raises")

    @precondition(lambda self: self.interps)
    @rule(data=st.data(), value=values)
    def call_roundtrip(self, data: st.DataObject, value: object) -> None:
        x = self._pick(data)
        back = x.handle.call(tuple, (value,))
        assert len(back) == 1 and _same(back[0], value), (back, value)
        self._count("call")

    @precondition(lambda self: any(x.armed for x in self.interps.values()))
    @rule(data=st.data())
    def close(self, data: st.DataObject) -> None:
        x = self._pick(data, armed=True)
        x.handle.close()
        self._gone(x.id)
        self._count("close")

    @precondition(
        lambda self: (
            not self.disarmed and any(x.armed and x.kind != "facade" for x in self.interps.values())
        )
    )
    @rule(data=st.data())
    def disarm(self, data: st.DataObject) -> None:
        # At most one per example: a disarmed interpreter lives until the process exits.
        ids = sorted(i for i, x in self.interps.items() if x.armed and x.kind != "facade")
        x = self.interps[data.draw(st.sampled_from(ids), label="interp")]
        handle = x.handle
        assert isinstance(handle, Subinterpreter)
        handle.disarm()
        self.disarmed += 1
        x.armed = False
        try:
            _native.destroy(x.id)
        except InterpreterError as e:
            assert "disarmed" in str(e), e
        else:
            raise AssertionError("destroyed a disarmed interpreter")
        self._count("disarm")

    @precondition(lambda self: any(x.kind == "facade" for x in self.interps.values()))
    @rule(data=st.data())
    def drop_last_facade_object(self, data: st.DataObject) -> None:
        ids = sorted(i for i, x in self.interps.items() if x.kind == "facade")
        id_ = data.draw(st.sampled_from(ids), label="interp")
        x = self.interps.pop(id_)
        del x
        gc.collect()
        assert id_ not in _ids(), "the last Interpreter object went but it lives on"
        self._gone(id_)
        self._count("drop_facade")

    # -- queues --

    @precondition(lambda self: len(self.queues) < MAX_QUEUES)
    @rule(maxsize=st.sampled_from([0, 0, 1, 3]), op=st.sampled_from(sorted(OPS)))
    def create_queue(self, maxsize: int, op: str) -> None:
        q = interpreters.create_queue(maxsize, unbounditems=OPS[op])
        assert q.id not in self.queues
        self.queues[q.id] = QueueModel(q, maxsize, op)
        self._count("queue_create")

    @precondition(lambda self: self.queues)
    @rule(
        data=st.data(),
        value=values,
        op=st.one_of(st.none(), st.sampled_from(sorted(OPS))),
        from_main=st.booleans(),
    )
    def put(self, data: st.DataObject, value: object, op: str | None, from_main: bool) -> None:
        qm = self._pick_queue(data)
        unbounditems = None if op is None else OPS[op]
        kwargs = {} if op is None else {"unbounditems": OPS[op]}
        if from_main or not self.interps:
            putter = 0
            try:
                qm.queue.put_nowait(value, unbounditems=unbounditems)
            except QueueFull:
                assert qm.full()
                self._count("put_full")
                return
        else:
            x = self._pick(data)
            putter = x.id
            try:
                x.handle.call(qm.queue.put_nowait, value, **kwargs)
            except ExecutionFailed as e:
                assert e.excinfo.type.__name__ == "QueueFull" and qm.full(), e.excinfo
                self._count("put_full")
                return
        assert not qm.full(), "put into a full queue"
        qm.items.append(Item(value, putter, op or qm.default_op))
        self._count("put")

    @precondition(lambda self: self.queues)
    @rule(data=st.data(), from_main=st.booleans())
    def get(self, data: st.DataObject, from_main: bool, qid: int | None = None) -> None:
        qm = self._pick_queue(data) if qid is None else self.queues[qid]
        expected = qm.items[0] if qm.items else None
        outcome: str
        got: object = None
        if from_main or not self.interps:
            try:
                got = qm.queue.get_nowait()
                outcome = "value"
            except QueueEmpty:
                outcome = "QueueEmpty"
            except ItemInterpreterDestroyed:
                outcome = "ItemInterpreterDestroyed"
        else:
            x = self._pick(data)
            try:
                got = x.handle.call(qm.queue.get_nowait)
                outcome = "value"
            except ExecutionFailed as e:
                outcome = e.excinfo.type.__name__
        if expected is None:
            assert outcome == "QueueEmpty", (outcome, got)
            self._count("get_empty")
            return
        qm.items.popleft()
        if expected.unbound and expected.op == "UNBOUND_ERROR":
            assert outcome == "ItemInterpreterDestroyed", (outcome, got, expected)
        elif expected.unbound:
            assert outcome == "value" and got is UNBOUND, (outcome, got, expected)
        else:
            assert outcome == "value" and _same(got, expected.value), (outcome, got, expected)
        self._count("get")

    @precondition(lambda self: any(qm.items for qm in self.queues.values()))
    @rule(data=st.data())
    def drain(self, data: st.DataObject) -> None:
        # Every item, in order, alternately from main and from interpreters.
        qid = data.draw(st.sampled_from(sorted(q for q, m in self.queues.items() if m.items)))
        while self.queues[qid].items:
            self.get(data, from_main=data.draw(st.booleans(), label="from_main"), qid=qid)
        self._count("drain")

    @precondition(lambda self: self.queues)
    @rule(data=st.data())
    def release_queue(self, data: st.DataObject) -> None:
        qm = self._pick_queue(data)
        qid = qm.queue.id
        del self.queues[qid]
        del qm
        gc.collect()
        assert qid not in {q for q, _, _ in _native.queue_list_all()}
        self._count("queue_release")

    # -- invariants --

    @invariant()
    def interpreters_match_the_model(self) -> None:
        now = _ids()
        assert (now - self.baseline) == set(self.interps), (now, self.baseline, self.interps)

    @invariant()
    def queues_match_the_model(self) -> None:
        listed = {q for q, _, _ in _native.queue_list_all()}
        for qid, qm in self.queues.items():
            assert qid in listed
            assert qm.queue.qsize() == len(qm.items), (qid, qm.queue.qsize(), qm.items)
            assert qm.queue.full() == qm.full()

    def teardown(self) -> None:
        for x in list(self.interps.values()):
            if x.armed:
                x.handle.close()
        self.interps.clear()
        self.queues.clear()
        gc.collect()
        left = _ids() - self.baseline
        assert all(not _native.is_owned(i) for i in left), left  # only disarmed ones


def test_state_machine() -> None:
    t0 = time.monotonic()
    run_state_machine_as_test(
        InterpreterMachine,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            print_blob=True,
        ),
    )
    summary = dict(STATS, seconds=round(time.monotonic() - t0, 1))
    print(f"\nSTATE-MACHINE {json.dumps(summary, sort_keys=True)}")


@pytest.mark.skipif(not SOAK, reason="soak only (SUBINTERP_SOAK=1 or --soak)")
def test_state_machine_soak() -> None:
    # Runs of 200 examples, each in a new process (a crash fails the run with its output),
    # until SUBINTERP_SOAK_SECONDS (default 300) are used up.
    deadline = time.monotonic() + soak_seconds(0, 300)
    env: dict[str, str | None] = {"SUBINTERP_SOAK": None, "SUBINTERP_SM_EXAMPLES": "200"}
    total: collections.Counter[str] = collections.Counter()
    runs = 0
    while time.monotonic() < deadline:
        proc = run_python(
            *("-m", "pytest", "-q", "-s", "-p", "no:cacheprovider"),
            f"{__file__}::test_state_machine",
            env=env,
            cwd=ROOT,
            timeout=1800,
            check=True,
        )
        line = next(x for x in proc.stdout.splitlines() if x.startswith("STATE-MACHINE "))
        total.update(json.loads(line.split(" ", 1)[1]))
        runs += 1
    print(
        f"\nstate machine soak ({sys.version.split()[0]}): runs={runs} "
        f"{json.dumps(dict(total), sort_keys=True)}"
    )


# -- many threads -------------------------------------------------------------------------------

THREADS_SCRIPT = r"""
import collections, gc, json, random, sys, threading, time
from subinterp_rs import (ExecutionFailed, InterpreterConfig, InterpreterError,
                          InterpreterNotFoundError, Subinterpreter, _native, interpreters)
from subinterp_rs.interpreters import UNBOUND

DURATION = float(sys.argv[1])
N_PRIVATE, N_SHARING, N_SLOTS, N_PRODUCERS = 4, 4, 3, 2
stop = float("inf")  # set when the threads start; each loop runs at least once
stats = collections.Counter()
unexpected = []
lock = threading.Lock()

def count(key, n=1):
    with lock:
        stats[key] += n

def fail(where, exc):
    with lock:
        unexpected.append(f"{where}: {type(exc).__name__}: {exc}")

def private(k):
    # A thread with interpreters of its own: create, use, close, again and again.
    rng = random.Random(k)
    first = True
    while first or time.monotonic() < stop:
        first = False
        try:
            kind = rng.randrange(3)
            if kind == 2:
                interp = interpreters.create()
            else:
                cfg = InterpreterConfig() if kind == 0 else InterpreterConfig.legacy()
                interp = Subinterpreter.create(cfg)
            try:
                interp.exec("import math; x = math.factorial(25)")
                assert interp.call(divmod, k, 3) == divmod(k, 3)
                q = interpreters.create_queue()
                interp.prepare_main(q=q)
                interp.exec("q.put(('p', x % 1000)); q.put(memoryview(b'abc'))")
                assert q.get(timeout=30) == ("p", 0)
                assert bytes(q.get(timeout=30)) == b"abc"
                try:
                    interp.exec("raise ValueError")
                except ExecutionFailed:
                    pass
            finally:
                interp.close()
            count("private_cycles")
        except Exception as e:
            fail("private", e)

slots = [None] * N_SLOTS
slots_lock = threading.Lock()

def new_slot(i):
    return interpreters.create() if i % 2 else Subinterpreter.create()

def sharer(k):
    # Threads sharing interpreters: one runs at a time ("running" for the others), and the
    # slot may be closed under them by the closer (not found / closed).
    rng = random.Random(100 + k)
    first = True
    while first or time.monotonic() < stop:
        first = False
        i = rng.randrange(N_SLOTS)
        with slots_lock:
            interp = slots[i]
        try:
            if rng.random() < 0.5:
                interp.exec("import time; time.sleep(0.001); y = 1")
            else:
                assert interp.call(pow, 3, 5) == 243
            count("shared_ok")
        except InterpreterNotFoundError:
            count("shared_not_found")
        except InterpreterError as e:
            msg = str(e)
            if "running" in msg:
                count("shared_running")
            elif "closed" in msg or "being closed" in msg:
                count("shared_closed")
            else:
                fail("sharer", e)
        except Exception as e:
            fail("sharer", e)

def closer():
    rng = random.Random(7)
    while time.monotonic() < stop:
        time.sleep(0.01)
        i = rng.randrange(N_SLOTS)
        with slots_lock:
            interp = slots[i]
        try:
            interp.close()
        except InterpreterError as e:
            if "running" in str(e) or isinstance(e, InterpreterNotFoundError):
                count("close_refused")
                continue
            fail("closer", e)
            continue
        except Exception as e:
            fail("closer", e)
            continue
        with slots_lock:
            slots[i] = new_slot(i)
        count("close_replaced")

results = interpreters.create_queue()
sent = collections.Counter()

def producer(k):
    # Unique items through one queue, from short-lived interpreters: each item arrives once,
    # or as UNBOUND if its interpreter was closed first; never twice, never lost. Every other
    # round waits for the consumer to drain the queue before closing (items arrive as
    # themselves however slow the machine), the others close at once (UNBOUND races).
    n = 0
    first = True
    while first or time.monotonic() < stop:
        first = False
        try:
            s = Subinterpreter.create()
            s.prepare_main(q=results, k=k, base=n)
            s.exec("for j in range(20):\n    q.put((k, base + j))")
            n += 20
            count("produced", 20)
            if n % 40 == 20:
                drained = time.monotonic() + 30
                while results.qsize() and time.monotonic() < drained:
                    time.sleep(0.005)
            s.close()
        except Exception as e:
            fail("producer", e)

received = collections.Counter()
unbound = 0
producers_done = threading.Event()

def consumer():
    global unbound
    while True:
        try:
            item = results.get(timeout=0.2)
        except interpreters.QueueEmpty:
            if producers_done.is_set() and not results.qsize():
                return
            continue
        if item is UNBOUND:
            unbound += 1
        else:
            received[item] += 1

for i in range(N_SLOTS):
    slots[i] = new_slot(i)
stop = time.monotonic() + DURATION
producers = [threading.Thread(target=producer, args=(k,)) for k in range(N_PRODUCERS)]
others = ([threading.Thread(target=private, args=(k,)) for k in range(N_PRIVATE)]
          + [threading.Thread(target=sharer, args=(k,)) for k in range(N_SHARING)]
          + [threading.Thread(target=closer), threading.Thread(target=consumer)])
for t in producers + others:
    t.start()
for t in producers:
    t.join()
producers_done.set()
for t in others:
    t.join()
for s in slots:
    s.close()
del slots, s
gc.collect()
dups = {k: v for k, v in received.items() if v > 1}
left = _native.list_all()
report = dict(stats, received=sum(received.values()), unbound=unbound, duplicates=len(dups),
              unexpected=unexpected[:10], n_unexpected=len(unexpected),
              interpreters_left=left, queues_left=len(_native.queue_list_all()) - 1)
print(json.dumps(report, sort_keys=True))
assert not unexpected, unexpected[:10]
assert not dups, list(dups)[:10]
assert sum(received.values()) + unbound == stats["produced"], report
assert [i for i, _ in left] == [0], left
print("OK")
"""


def test_many_threads() -> None:
    duration = soak_seconds(6, 300)
    ran = run_snippet(THREADS_SCRIPT, args=(str(duration),), timeout=duration + 180, check=False)
    if SOAK or ran.returncode:
        print(f"\nmany threads ({sys.version.split()[0]}, {duration:.0f}s):\n{ran.stdout}")
    assert_clean(ran)
    assert ran.lines()[-1:] == ["OK"], ran.detail()
    report: dict[str, Any] = json.loads(ran.lines()[-2])
    assert report["private_cycles"] > 0 and report["shared_ok"] > 0, report
    assert report["produced"] > 0 and report["received"] > 0, report


# -- leaks --------------------------------------------------------------------------------------


def test_leakcheck_small() -> None:
    # scripts/leakcheck.py, small and with a loose bound, in a subprocess: no interpreter or
    # queue left over, calls and queue traffic flat, and interpreter cycles flat (3.14+) or
    # their operations flat (3.12/3.13, where CPython keeps memory of every interpreter).
    ran = run_snippet(
        f"import runpy, sys; sys.argv = ['leakcheck'] + sys.argv[1:]; "
        f"runpy.run_path({str(ROOT / 'scripts' / 'leakcheck.py')!r}, run_name='__main__')",
        args=(
            "--cycles",
            str(scaled(30, 1000)),
            "--calls",
            str(scaled(20_000, 100_000)),
            "--queue-items",
            "5000",
            "--max-growth-mib",
            str(scaled(24, 8)),
        ),
        timeout=900,
        check=False,
    )
    if SOAK or ran.returncode:
        print(f"\nleakcheck ({sys.version.split()[0]}):\n{ran.stdout}")
    assert_clean(ran)
    assert ran.lines()[-1:] and ran.lines()[-1].startswith("OK"), ran.detail()
