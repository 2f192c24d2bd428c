"""Interned scalars (issue #18): a ``str`` of 2 to 64 bytes of text, an ``int`` of one digit
outside CPython's small ints, a ``float``, and a tuple of at most 6 of these (or ``None`` and
the bools), that cross into an interpreter again (inside a container) are the very objects
that crossed last time, not new ones, as CPython's own small ints and interned names are;
never another value, whatever shares a slot, and the memory they hold is bounded. Functions
called inside live in tests/support_crossing.py.
"""

from __future__ import annotations

import math
import struct
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import support_crossing as sc
from hypothesis import given, settings
from hypothesis import strategies as st
from subinterp_rs import Subinterpreter

# What the runtime keeps per interpreter (runtime/xi/intern.rs): string, int, float and tuple
# slots, and the most items an interned tuple has.
STR_SLOTS, INT_SLOTS, FLOAT_SLOTS, TUPLE_SLOTS = 8192, 4096, 4096, 4096
TUPLE_MAX_ITEMS = 6
TEMPLATE_SLOTS, TEMPLATE_MAX_KEYS = 16, 2048


@pytest.fixture(scope="module")
def si() -> Iterator[Subinterpreter]:
    with Subinterpreter.create() as s:
        yield s


def _from_bits(bits: int) -> float:
    value: float = struct.unpack("<d", struct.pack("<Q", bits))[0]
    return value


@pytest.mark.parametrize(
    ("value", "reused"),
    [
        ("alpha", True),
        ("b" * 64, True),  # the longest interned
        ("c" * 65, False),
        ("é" * 9, True),  # Latin-1 text
        ("€€", True),  # 2-byte code units
        ("𝄞x", True),  # 4-byte code units
        ("\ud800z", True),  # a lone surrogate
        (1000, True),
        (-1000, True),
        (2**30 - 1, True),  # the largest one-digit int
        (-(2**30) + 1, True),
        (2**30, False),
        (2**70, False),
        (1.5, True),
        (-0.0, True),
        (math.inf, True),
        (math.nan, True),
        ((1000, "name", 2.5), True),
        ((None, True, False, -7), True),
        (tuple(range(1000, 1000 + TUPLE_MAX_ITEMS)), True),
        (tuple(range(1000, 1001 + TUPLE_MAX_ITEMS)), False),  # too long
        ((1000, "c" * 65), False),  # an item that is not interned
        ((1000, 2**70), False),
        ((1000, [1]), False),  # a mutable item: never shared
        ((1000, (1, 2)), False),  # only scalars inside
        ((1000, b"x"), False),
        ((), True),  # CPython's own empty tuple
    ],
    ids=repr,
)
def test_values_that_crossed_before_are_reused(
    si: Subinterpreter, value: object, reused: bool
) -> None:
    # One value at a time (two could share a slot), inside a list (top-level scalars cross
    # on their own), twice.
    si.call(sc.items_as_last_time, [value])
    assert si.call(sc.items_as_last_time, [value]) == [reused]


def test_small_ints_and_short_strings_are_cpythons_own(si: Subinterpreter) -> None:
    # CPython's singletons (small ints, the empty and one-character strings) are never made, so
    # they are the same objects anyway; a bool stays a bool, never the interned int 1.
    for value in (0, 256, -5, "", "a", "é", True, False, None):
        si.call(sc.items_as_last_time, [value])
        assert si.call(sc.items_as_last_time, [value]) == [True]
    assert si.call(sc.identity, [True, 1, 1.0, False, 0, 0.0]) == [True, 1, 1.0, False, 0, 0.0]
    assert [type(x) for x in si.call(sc.identity, [True, 1, 1.0])] == [bool, int, float]


def test_ints_sharing_a_slot_are_each_themselves(si: Subinterpreter) -> None:
    # n, n + INT_SLOTS, -n ... pick the same slot: each comes back as its own value, in turns.
    values = [n + k * INT_SLOTS for n in (300, 4000) for k in range(-3, 4)]
    values += [-v for v in values] + [2**30 - 1, -(2**30 - 1), 2**30, -(2**30), 2**62, -(2**63)]
    for _ in range(3):
        assert si.call(sc.identity, values) == values
        assert si.call(sc.identity, values[::-1]) == values[::-1]


def test_floats_keep_their_bits(si: Subinterpreter) -> None:
    specials = [
        0.0,
        -0.0,
        math.inf,
        -math.inf,
        math.nan,
        -math.nan,
        _from_bits(0x7FF8_0000_0000_0123),  # a quiet NaN with a payload
        _from_bits(0xFFF0_0000_0000_0001),  # a signalling-pattern NaN, negative
        5e-324,  # the smallest subnormal
        sys.float_info.max,
    ]
    many = [i / 7 for i in range(3 * FLOAT_SLOTS)]  # more than the slots: they collide
    for _ in range(2):
        for xs in (specials, many, specials + many):
            assert si.call(sc.float_bits, xs) == sc.float_bits(xs)


def test_strings_sharing_slots_are_each_themselves(si: Subinterpreter) -> None:
    # Far more short strings than slots, of every width, as values and as keys.
    texts = [f"v{i}" for i in range(3 * STR_SLOTS)]
    texts += ["é" + str(i) for i in range(300)] + ["€" + str(i) for i in range(300)]
    texts += ["𝄞" + str(i) for i in range(300)] + ["x" * n for n in range(2, 70)]
    for _ in range(2):
        assert si.call(sc.identity, texts) == texts
        d = {t: i for i, t in enumerate(texts)}
        assert si.call(sc.lookups, d, texts[::5]) == [d[t] for t in texts[::5]]


_scalar = (
    st.integers(min_value=-(2**70), max_value=2**70)
    | st.integers(min_value=-(2**31), max_value=2**31)
    | st.floats()
    | st.text(st.characters(exclude_categories=()), max_size=70)
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_scalar, max_size=30))
def test_interned_values_never_change_what_crosses(si: Subinterpreter, xs: list[Any]) -> None:
    for _ in range(2):
        back = si.call(sc.identity, xs)
        assert [type(x) for x in back] == [type(x) for x in xs]
        for a, b in zip(back, xs, strict=True):
            if isinstance(b, float):
                assert sc.float_bits([a]) == sc.float_bits([b])
            else:
                assert a == b


def test_tuples_with_a_mutable_item_stay_copies(si: Subinterpreter) -> None:
    # The list inside is a new one each time, and the tuple holding it too.
    value = [(1000, [1, 2])]
    si.call(sc.items_as_last_time, value)
    assert si.call(sc.items_as_last_time, value) == [False]
    assert si.call(sc.mutate_inner, value) == [(1000, [1, 2, "inside"])]
    assert si.call(sc.identity, value) == [(1000, [1, 2])]
    # A tuple of scalars inside one that is not interned is interned on its own.
    nested = [((1000, "x"), [0])]
    si.call(sc.inner_as_last_time, nested)
    assert si.call(sc.inner_as_last_time, nested) == [True]


def test_tuples_sharing_slots_are_each_themselves(si: Subinterpreter) -> None:
    # Far more tuples than slots, of every kind of item and length, in turns.
    rows: list[tuple[Any, ...]] = [
        (i, f"r{i}", i / 3, None, i % 2 == 0)[: 1 + i % 5] for i in range(3 * TUPLE_SLOTS)
    ]
    for _ in range(3):
        assert si.call(sc.identity, rows) == rows
        assert si.call(sc.identity, rows[::-1]) == rows[::-1]
    assert [type(t) for t in si.call(sc.identity, [(1,), (True,), (1.0,)])[0]] == [int]
    back = si.call(sc.identity, [(1, True, 1.0), (True, 1, 1.0), (1.0, 1, True)])
    assert [[type(x) for x in t] for t in back] == [
        [int, bool, float],
        [bool, int, float],
        [float, int, bool],
    ]


_small_tuple = st.lists(_scalar, max_size=TUPLE_MAX_ITEMS + 1).map(tuple)


@settings(max_examples=100, deadline=None)
@given(st.lists(_small_tuple | st.just(None) | st.booleans(), max_size=20))
def test_interned_tuples_never_change_what_crosses(si: Subinterpreter, xs: list[Any]) -> None:
    for _ in range(3):
        back = si.call(sc.identity, xs)
        assert sc.float_bits_deep(back) == sc.float_bits_deep(xs)


def test_the_memory_held_is_bounded() -> None:
    # Each batch is new text, ints and floats; what stays held after all of them is at most
    # the slots' worth of objects, not what crossed. (`sys.getallocatedblocks()` counts every
    # interpreter's blocks: the calls return only a length, so the main interpreter makes
    # nothing.)
    with Subinterpreter.create() as s:

        def batch(b: int) -> list[Any]:
            scalars = [
                item
                for i in range(1000)
                for item in (f"t{b}.{i}", 1_000_000 + 1000 * b + i, b + i / 1000)
            ]
            rows = [{f"k{b}.{j}.{i}": i for i in range(5)} for j in range(40)]
            tuples = [(f"u{b}.{i}", 2_000_000 + 1000 * b + i) for i in range(1000)]
            return scalars + tuples + rows

        assert s.call(len, batch(0)) == 4040
        before = sys.getallocatedblocks()
        for b in range(1, 30):  # 155,000 new objects
            assert s.call(len, batch(b)) == 4040
        grown = sys.getallocatedblocks() - before
        # A tuple's items may be held by it alone: up to 1 + TUPLE_MAX_ITEMS blocks a slot; a
        # dict template is a dict, its keys table and its (here 5) keys.
        bound = STR_SLOTS + INT_SLOTS + FLOAT_SLOTS + TUPLE_SLOTS * (1 + TUPLE_MAX_ITEMS)
        bound += TEMPLATE_SLOTS * (2 + 5)
        assert grown <= bound, grown


def test_new_data_is_interned_as_it_crosses_again(si: Subinterpreter) -> None:
    # The first crossing of much new text interns only a first part of it (new data would only
    # pay for the lookups); each crossing after that finds those and interns more, until every
    # item is the one that crossed last time (all but those of a set of 4 slots that five or
    # more of them pick: of 1,000, a few at most). Tuples of them follow. Slots that hold what
    # earlier tests sent are given up a few at a time, so this takes a few more crossings.
    texts = [f"fresh {i}" for i in range(1000)]
    rows = [(f"fresh {i}", i + 5000, i / 7) for i in range(1000)]
    for value in (texts, rows):
        si.call(sc.items_as_last_time, [])
        reused = [sum(si.call(sc.items_as_last_time, value)) for _ in range(10)]
        assert reused[0] == 0
        assert reused == sorted(reused), reused
        assert reused[-1] >= 0.95 * len(value), reused


# Dict templates (runtime/xi/template.rs): a dict whose str keys cross again in the same order
# is copied from a template of those keys, then given its values.


@pytest.mark.parametrize("n", [1, 3, 40, 1000, TEMPLATE_MAX_KEYS, TEMPLATE_MAX_KEYS + 1])
def test_dicts_of_keys_that_crossed_before_get_their_own_values(si: Subinterpreter, n: int) -> None:
    keys = [f"k{i}" for i in range(n)]
    for round_ in range(4):
        d = {k: (round_, i) if i % 3 else [round_, i] for i, k in enumerate(keys)}
        back = si.call(sc.identity, d)
        assert back == d
        assert list(back) == keys  # the order too
        assert si.call(sc.dict_facts, d) == (n, keys[:5], [round_, 0], True)


def test_dicts_of_the_same_keys_in_another_order_keep_theirs(si: Subinterpreter) -> None:
    keys = [f"o{i}" for i in range(50)]
    for round_ in range(3):
        for order in (keys, keys[::-1], keys[1:] + keys[:1], keys[:-1]):
            d = {k: round_ * 1000 + i for i, k in enumerate(order)}
            back = si.call(sc.identity, d)
            assert back == d and list(back) == order


def test_a_dict_made_from_a_template_is_a_copy(si: Subinterpreter) -> None:
    # The receiver changes what it got; what crosses next is as sent, every time.
    d = {"alpha": 1, "beta": [2], "gamma": {"x": 3}}
    for _ in range(4):
        assert si.call(sc.mutate_dict, d) == {
            "beta": [2, "inside"],
            "gamma": {"x": 3, "y": 4},
            "new": 5,
        }
        assert d == {"alpha": 1, "beta": [2], "gamma": {"x": 3}}
    assert si.call(sc.identity, d) == d


def test_records_of_one_shape_cross_as_themselves(si: Subinterpreter) -> None:
    rows = [{"id": i, "name": f"row {i}", "score": i / 4, "tags": [i]} for i in range(3000)]
    for _ in range(3):
        back = si.call(sc.identity, rows)
        assert back == rows
        assert [list(r) for r in back[:3]] == [["id", "name", "score", "tags"]] * 3
    # The same keys sent as pairs of another kind are not mistaken for them.
    assert si.call(sc.identity, [{"id": 1}, {"id": 1, "name": 2}, {"name": 2, "id": 1}]) == [
        {"id": 1},
        {"id": 1, "name": 2},
        {"name": 2, "id": 1},
    ]


def test_dicts_from_templates_are_collected(si: Subinterpreter) -> None:
    # A cycle made inside through a dict copied from a template is found by the collector.
    for _ in range(3):
        assert si.call(sc.cycle_through, [{"self": None, "other": 1}]) == (True, True)


_records = st.lists(
    st.dictionaries(
        st.sampled_from(["a", "bb", "ccc", "dd", "e" * 70]), _scalar | st.lists(_scalar)
    ),
    max_size=8,
)


@settings(max_examples=100, deadline=None)
@given(_records)
def test_dict_templates_never_change_what_crosses(si: Subinterpreter, rows: list[Any]) -> None:
    for _ in range(3):
        back = si.call(sc.identity, rows)
        assert [list(r) for r in back] == [list(r) for r in rows]
        assert sc.float_bits_deep([list(r.values()) for r in back]) == sc.float_bits_deep(
            [list(r.values()) for r in rows]
        )


# List templates (runtime/xi/intern.rs): a list of scalars and small tuples of them that
# crosses again is read against the items it had last time, each equal one taken as is.
LIST_MAX_ITEMS = 2048


def test_a_list_that_crosses_again_is_a_new_list_of_the_same_items(si: Subinterpreter) -> None:
    rows = [(i, f"row {i}", i / 4, None) for i in range(1500)]
    si.call(sc.items_as_last_time, [])
    reused = [sum(si.call(sc.items_as_last_time, rows)) for _ in range(6)]
    assert reused[-1] == len(rows), reused
    # The receiver changes the list it got; the next crossing is as sent.
    for _ in range(3):
        assert si.call(sc.mutate, list(rows[:5])) == [*rows[:5], "inside"]
        assert si.call(sc.identity, rows) == rows


def test_lists_that_changed_since_they_crossed_arrive_as_sent(si: Subinterpreter) -> None:
    base: list[Any] = [(i, f"c{i}", float(i)) for i in range(300)]
    variants: list[list[Any]] = [
        base,
        [*base[:150], (-1, "changed", -1.0), *base[151:]],  # one item
        [(i, f"c{i}", float(i) + 0.5) for i in range(300)],  # every float
        [base[0], *[x[0] for x in base[1:]]],  # same first item, then ints
        base[::-1],
        [*base[:-1], (1, 2, 3, 4, 5, 6, 7)],  # a tuple too long to intern
        [*base[:-1], [1]],  # a mutable item
        base,
    ]
    for _ in range(2):
        for v in variants:
            assert si.call(sc.float_bits_deep, v) == sc.float_bits_deep(v)
            back = si.call(sc.identity, v)
            assert back == v and sc.float_bits_deep(back) == sc.float_bits_deep(v)


def test_shared_tuples_in_a_followed_list_stay_shared(si: Subinterpreter) -> None:
    t, u = (1000, "t"), (2000, "u")
    value = [t, u, t, (3000, "v"), u]
    for _ in range(4):
        back = si.call(sc.identity, value)
        assert back == value
        assert back[0] is back[2] and back[1] is back[4]
    many = [(i, "x") for i in range(LIST_MAX_ITEMS + 1)]  # too long for a template
    for _ in range(2):
        assert si.call(sc.identity, many) == many


@settings(max_examples=100, deadline=None)
@given(st.lists(_small_tuple | _scalar | st.none() | st.booleans(), min_size=1, max_size=12))
def test_list_templates_never_change_what_crosses(si: Subinterpreter, xs: list[Any]) -> None:
    for v in (xs, xs, xs[::-1], xs):
        back = si.call(sc.identity, v)
        assert sc.float_bits_deep(back) == sc.float_bits_deep(v)
