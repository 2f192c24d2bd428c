"""Rounds of work, with their checks, shared by ``scripts/leakcheck.py`` and ``scripts/soak.py``
(imported by name, like ``_rss``: see there)."""

from __future__ import annotations

import json

from subinterp_rs import ExecutionFailed, Subinterpreter, interpreters

__all__ = ["pep734_round", "pickled_call_and_failure"]


def pickled_call_and_failure(si: Subinterpreter) -> None:
    """A call whose argument and result are pickled both ways, then an exec that raises: it
    must come back as ``ExecutionFailed`` naming the exception."""
    assert si.call(sorted, [3, 1, 2]) == [1, 2, 3]
    try:
        si.exec("raise ValueError('expected')")
    except ExecutionFailed as exc:
        assert exc.excinfo.type.__name__ == "ValueError"
    else:
        raise AssertionError("no ExecutionFailed")


def pep734_round(interp: interpreters.Interpreter, n: int) -> None:
    """Through the PEP 734 facade: an exec that builds a JSON text of ``n`` numbers, a call,
    and the text's length back over a queue."""
    interp.exec(f"import json; data = json.dumps(list(range({n})))")
    assert interp.call(divmod, 17, 5) == (3, 2)
    q = interpreters.create_queue()
    interp.prepare_main(q=q)
    interp.exec("q.put(('pep734', len(data)))")
    assert q.get(timeout=30) == ("pep734", len(json.dumps(list(range(n)))))
