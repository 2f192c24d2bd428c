"""Deferred closes (issue #17, item 2): an interpreter whose owner went while it could not be
closed (a memoryview of its memory alive elsewhere, a run in another thread) is closed by the
lifecycle owner as soon as it can be, and listing interpreters changes nothing.

Each scenario runs in a child process (memory and interpreter counts of its own).
"""

from __future__ import annotations

from _helpers import assert_ok

WAIT_GONE = """
import time
from subinterp_rs import _native_api

def alive(id):
    return id in [i for i, _ in _native_api.list_all()]   # reads only

def wait_gone(id):
    for _ in range(6000):   # the close is a pending call, run between bytecodes
        if not alive(id):
            return True
        time.sleep(0.005)
    return False
"""


def test_last_view_released_closes_the_interpreter() -> None:
    # 30 rounds of a 20 MiB buffer: without the deferred close, 30 interpreters and their
    # buffers (600 MiB) stayed until exit.
    assert_ok(
        WAIT_GONE
        + """
import gc, os
from subinterp_rs import interpreters

def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

q = interpreters.create_queue()
before = sorted(i for i, _ in _native_api.list_all())
start = rss_mib()
for _ in range(30):
    interp = interpreters.create()
    id = interp.id
    interp.prepare_main(q=q)
    interp.exec("buf = bytearray(20 * 1024 * 1024); q.put(memoryview(buf))")
    view = q.get()
    del interp                # its last handle: the close waits for the view
    gc.collect()
    assert alive(id)
    assert _native_api.is_owned(id) is False
    assert view.nbytes == 20 * 1024 * 1024 and view[0] == 0
    del view                  # the last view: now it closes
    assert wait_gone(id), id
assert sorted(i for i, _ in _native_api.list_all()) == before
grew = rss_mib() - start
assert grew < 200, grew
print("OK")
"""
    )


def test_low_level_handle_collected_while_running_closes_when_the_run_ends() -> None:
    assert_ok(
        WAIT_GONE
        + """
import copy, gc, threading
from subinterp_rs import Subinterpreter

for _ in range(3):
    si = Subinterpreter.create()
    id = si.id
    other = copy.copy(si)     # not owning
    t = threading.Thread(target=other.exec, args=("import time; time.sleep(0.3)",))
    t.start()
    while not other.is_running():
        time.sleep(0.005)
    del si                    # collected while it runs
    gc.collect()
    assert alive(id)
    t.join()
    assert not alive(id), id  # closed when the run ended
print("OK")
"""
    )


def test_low_level_handle_collected_with_a_view_alive() -> None:
    assert_ok(
        WAIT_GONE
        + """
import gc
from subinterp_rs import Subinterpreter

si = Subinterpreter.create()
id = si.id
view = si.call(memoryview, b"x" * 100_000)   # its bytes, exported from there
del si
gc.collect()
assert alive(id) and bytes(view[:2]) == b"xx"
del view
assert wait_gone(id), id
print("OK")
"""
    )


def test_list_all_has_no_side_effects() -> None:
    assert_ok(
        WAIT_GONE
        + """
import gc
from subinterp_rs import interpreters

q = interpreters.create_queue()
interp = interpreters.create()
id = interp.id
interp.prepare_main(q=q)
interp.exec("buf = bytearray(1000); q.put(memoryview(buf))")
view = q.get()
del interp
gc.collect()
for _ in range(3):
    listed = interpreters.list_all()   # no handle reference taken, none dropped
    assert id in [i.id for i in listed]
    del listed
    gc.collect()
assert alive(id) and not _native_api.is_owned(id)
del view
assert wait_gone(id), id
print("OK")
"""
    )
