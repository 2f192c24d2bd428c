"""The one door to the native module: the only code in the package that calls ``_native``.

Every function here is one call into ``subinterp_rs._native`` with keyword arguments (so a
change of the native signatures shows here, and only here), and every public module goes
through these. Errors are the native module's (see ``_native.pyi``): nothing is caught here.

Functions that may run while an interpreter shuts down (``decref``, ``queue_release``, called
from ``__del__``) keep the native function as a default argument: module globals may already be
gone then (gh-135729).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import CodeType, FrameType
from typing import TYPE_CHECKING, Any, Final

from . import _native

if TYPE_CHECKING:
    from ._errors import ExcInfo
    from ._subinterpreter import InterpreterConfig

__all__ = [
    "UNBOUND_ERROR",
    "UNBOUND_REMOVE",
    "UNBOUND_REPLACE",
    "WHENCE_CAPI",
    "WHENCE_LEGACY_CAPI",
    "WHENCE_RUNTIME",
    "WHENCE_STDLIB",
    "WHENCE_UNKNOWN",
    "WHENCE_XI",
    "call",
    "create",
    "current_exceptions",
    "current_frames",
    "decref",
    "destroy",
    "disarm",
    "excinfo_of",
    "exec",
    "executor_cancel",
    "executor_close",
    "executor_create",
    "executor_started",
    "executor_submit",
    "executor_submit_chunk",
    "executor_work",
    "exit_hook",
    "get_current",
    "get_main",
    "incref",
    "is_owned",
    "is_running",
    "is_shareable",
    "list_all",
    "private_api_missing",
    "queue_bind",
    "queue_create",
    "queue_get",
    "queue_get_count",
    "queue_get_defaults",
    "queue_get_maxsize",
    "queue_is_full",
    "queue_list_all",
    "queue_put",
    "queue_release",
    "register_queue_type",
    "release_owner",
    "set_crossing_max_bytes",
    "set_main_attrs",
    "shareddict_clear",
    "shareddict_close",
    "shareddict_compare_and_set",
    "shareddict_get",
    "shareddict_increment",
    "shareddict_is_closed",
    "shareddict_items",
    "shareddict_len",
    "shareddict_open",
    "shareddict_pop",
    "shareddict_set",
    "shareddict_setdefault",
    "whence",
]

WHENCE_UNKNOWN: Final = _native.WHENCE_UNKNOWN
WHENCE_RUNTIME: Final = _native.WHENCE_RUNTIME
WHENCE_LEGACY_CAPI: Final = _native.WHENCE_LEGACY_CAPI
WHENCE_CAPI: Final = _native.WHENCE_CAPI
WHENCE_XI: Final = _native.WHENCE_XI
WHENCE_STDLIB: Final = _native.WHENCE_STDLIB

UNBOUND_REMOVE: Final = _native.UNBOUND_REMOVE
UNBOUND_ERROR: Final = _native.UNBOUND_ERROR
UNBOUND_REPLACE: Final = _native.UNBOUND_REPLACE

# -- interpreters ---------------------------------------------------------------------------


def create(config: InterpreterConfig, whence: int, setup: bytes | None = None) -> int:
    """A new interpreter owned by the native registry; its id. ``setup``: a marshalled code
    object run in it (a namespace of its own) before anything else can use it."""
    return _native.create(
        use_main_obmalloc=config.use_main_obmalloc,
        allow_fork=config.allow_fork,
        allow_exec=config.allow_exec,
        allow_threads=config.allow_threads,
        allow_daemon_threads=config.allow_daemon_threads,
        check_multi_interp_extensions=config.check_multi_interp_extensions,
        gil=config.gil,
        whence=whence,
        setup=setup,
    )


def destroy(id: int) -> None:
    _native.destroy(id=id)


def disarm(id: int) -> None:
    _native.disarm(id=id)


def current_frames() -> dict[int, FrameType]:
    return _native.current_frames()


def current_exceptions() -> dict[int, BaseException]:
    return _native.current_exceptions()


def list_all() -> list[tuple[int, int]]:
    return _native.list_all()


def get_current() -> tuple[int, int]:
    return _native.get_current()


def get_main() -> tuple[int, int]:
    return _native.get_main()


def whence(id: int) -> int:
    return _native.whence(id=id)


def is_running(id: int) -> bool:
    return _native.is_running(id=id)


def is_owned(id: int) -> bool:
    return _native.is_owned(id=id)


def incref(id: int) -> None:
    _native.incref(id=id)


def decref(id: int, *, _decref: Callable[..., None] = _native.decref) -> None:
    _decref(id=id)


def release_owner(id: int, *, _release_owner: Callable[..., None] = _native.release_owner) -> None:
    _release_owner(id=id)


def exec(id: int, code: str | CodeType | Callable[[], object]) -> None:
    _native.exec(id=id, code=code)


def call(
    id: int,
    callable: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any] | None,
    *,
    closures: bool = False,
) -> Any:
    return _native.call(id=id, callable=callable, args=args, kwargs=kwargs, closures=closures)


def set_main_attrs(id: int, ns: Mapping[str, Any]) -> None:
    _native.set_main_attrs(id=id, ns=ns)


def is_shareable(obj: object) -> bool:
    return _native.is_shareable(obj=obj)


def excinfo_of(exc: BaseException) -> ExcInfo:
    return _native.excinfo_of(exc=exc)


def executor_create() -> int:
    return _native.executor_create()


def executor_submit(
    pool: int, task: int, callable: object, args: tuple[Any, ...], kwargs: dict[str, Any] | None
) -> tuple[int, int]:
    return _native.executor_submit(
        pool=pool, task=task, callable=callable, args=args, kwargs=kwargs
    )


def executor_submit_chunk(
    pool: int, task: int, callable: object, items: tuple[tuple[Any, ...], ...]
) -> tuple[int, int]:
    return _native.executor_submit_chunk(pool=pool, task=task, callable=callable, items=items)


def executor_work(
    pool: int, interp: int, max: int, workers: int
) -> list[tuple[int, int, Any]] | None:
    return _native.executor_work(pool=pool, interp=interp, max=max, workers=workers)


def executor_started(pool: int, task: int) -> bool:
    return _native.executor_started(pool=pool, task=task)


def executor_cancel(pool: int, task: int) -> bool:
    return _native.executor_cancel(pool=pool, task=task)


def executor_close(pool: int, cancel: bool, forget: bool) -> list[int]:
    return _native.executor_close(pool=pool, cancel=cancel, forget=forget)


def set_crossing_max_bytes(n: int) -> int:
    """Bound the encoding of containers that cross as data (tests); the old bound."""
    return _native._set_crossing_max_bytes(n=n)


def private_api_missing() -> list[str]:
    return _native._private_api_missing()


def exit_hook() -> list[int]:
    """Close every interpreter we created (the exit hook); the ids still running."""
    return _native._shutdown()


# -- queues ---------------------------------------------------------------------------------


def register_queue_type(cls: type) -> None:
    _native._register_queue_type(cls=cls)


def queue_create(maxsize: int, unboundop: int) -> int:
    return _native.queue_create(maxsize=maxsize, unboundop=unboundop)


def queue_bind(qid: int) -> None:
    _native.queue_bind(qid=qid)


def queue_release(qid: int, *, _release: Callable[..., None] = _native.queue_release) -> None:
    _release(qid=qid)


def queue_list_all() -> list[tuple[int, int, int]]:
    return _native.queue_list_all()


def queue_put(qid: int, obj: object, unboundop: int, block: bool, timeout: float | None) -> None:
    _native.queue_put(qid=qid, obj=obj, unboundop=unboundop, block=block, timeout=timeout)


def queue_get(qid: int, block: bool, timeout: float | None) -> tuple[object, int | None]:
    return _native.queue_get(qid=qid, block=block, timeout=timeout)


def queue_get_maxsize(qid: int) -> int:
    return _native.queue_get_maxsize(qid=qid)


def queue_get_count(qid: int) -> int:
    return _native.queue_get_count(qid=qid)


def queue_is_full(qid: int) -> bool:
    return _native.queue_is_full(qid=qid)


def queue_get_defaults(qid: int) -> tuple[int, int]:
    return _native.queue_get_defaults(qid=qid)


def shareddict_open(name: str, maxsize: int) -> tuple[int, int]:
    return _native.shareddict_open(name=name, maxsize=maxsize)


def shareddict_close(id: int) -> None:
    _native.shareddict_close(id=id)


def shareddict_is_closed(id: int) -> bool:
    return _native.shareddict_is_closed(id=id)


def shareddict_get(id: int, key: object) -> tuple[bool, object]:
    return _native.shareddict_get(id=id, key=key)


def shareddict_set(id: int, key: object, value: object) -> None:
    _native.shareddict_set(id=id, key=key, value=value)


def shareddict_pop(id: int, key: object) -> tuple[bool, object]:
    return _native.shareddict_pop(id=id, key=key)


def shareddict_setdefault(id: int, key: object, value: object) -> object:
    return _native.shareddict_setdefault(id=id, key=key, value=value)


def shareddict_compare_and_set(
    id: int, key: object, expected: object, new: object, absent: bool
) -> bool:
    return _native.shareddict_compare_and_set(
        id=id, key=key, expected=expected, new=new, absent=absent
    )


def shareddict_increment(id: int, key: object, delta: object, default: object) -> object:
    return _native.shareddict_increment(id=id, key=key, delta=delta, default=default)


def shareddict_len(id: int) -> int:
    return _native.shareddict_len(id=id)


def shareddict_items(id: int) -> list[tuple[object, object]]:
    return _native.shareddict_items(id=id)


def shareddict_clear(id: int) -> None:
    _native.shareddict_clear(id=id)


# The process guards go with the first use of the native module (whichever public module
# imports this one first); they call back into this module, complete by now.
from . import _process_guards  # noqa: E402, F401
