//! The queue functions of `_native`.

use pyo3_ffi::{PyObject, Py_ssize_t};

use super::args;
use super::interp_fns::fastcall;
use super::raise::{self, Exc};
use crate::runtime::queue::{self, Got, QueueError};
use crate::runtime::xi::{self, Fallback};

/// A `METH_FASTCALL` module function.
type Fast = pyo3_ffi::PyCFunctionFast;

/// Raises the Python exception for a failed operation on queue `id`; returns null. The GIL is
/// held.
unsafe fn queue_error(id: i64, e: QueueError) -> *mut PyObject {
    // SAFETY: the GIL is held.
    unsafe {
        match e {
            QueueError::NotFound => {
                raise::raise(Exc::QueueNotFound, &format!("queue {id} not found"))
            }
            QueueError::Empty => raise::raise(Exc::QueueEmpty, &format!("queue {id} is empty")),
            QueueError::Full => raise::raise(Exc::QueueFull, &format!("queue {id} is full")),
            QueueError::Interrupted => std::ptr::null_mut(), // the signal handler's error is set
        }
    }
}

/// An `unboundop` argument: one of the three operations, or `-1` (the queue's default) when
/// `allow_default`; `ValueError` otherwise. The GIL is held.
unsafe fn unboundop(obj: *mut PyObject, allow_default: bool) -> Option<i32> {
    // SAFETY: the GIL is held.
    unsafe {
        let op = args::int(obj, "unboundop")?;
        if (allow_default && op == -1) || queue::valid_unboundop(op as i32) {
            Some(op as i32)
        } else {
            args::set_error(
                pyo3_ffi::PyExc_ValueError,
                &format!("unsupported unbound op {op}"),
            );
            None
        }
    }
}

fastcall! {
    /// `queue_create(maxsize, unboundop) -> qid`
    fn queue_create(a) {
        if args::count(c"queue_create", a, 2, 2).is_none() { return std::ptr::null_mut(); }
        let Some(maxsize) = args::int(a[0], "maxsize") else { return std::ptr::null_mut() };
        let Some(op) = unboundop(a[1], false) else { return std::ptr::null_mut() };
        args::integer(queue::create(maxsize, op))
    }
}

fastcall! {
    /// `queue_bind(qid)`
    fn queue_bind(a) {
        if args::count(c"queue_bind", a, 1, 1).is_none() { return std::ptr::null_mut(); }
        let Some(id) = args::int(a[0], "qid") else { return std::ptr::null_mut() };
        match queue::bind(id) { Ok(()) => args::none(), Err(e) => queue_error(id, e) }
    }
}

fastcall! {
    /// `queue_release(qid)`
    fn queue_release(a) {
        if args::count(c"queue_release", a, 1, 1).is_none() { return std::ptr::null_mut(); }
        let Some(id) = args::int(a[0], "qid") else { return std::ptr::null_mut() };
        match queue::release(id) { Ok(()) => args::none(), Err(e) => queue_error(id, e) }
    }
}

fastcall! {
    /// `queue_list_all() -> [(qid, unboundop, maxsize)]`
    fn queue_list_all(a) {
        if args::count(c"queue_list_all", a, 0, 0).is_none() { return std::ptr::null_mut(); }
        let list = pyo3_ffi::PyList_New(0);
        if list.is_null() { return list; }
        for (id, op, maxsize) in queue::list_all() {
            let t = pyo3_ffi::PyTuple_New(3);
            if t.is_null() { pyo3_ffi::Py_DECREF(list); return std::ptr::null_mut(); }
            pyo3_ffi::PyTuple_SetItem(t, 0, args::integer(id));
            pyo3_ffi::PyTuple_SetItem(t, 1, args::integer(i64::from(op)));
            pyo3_ffi::PyTuple_SetItem(t, 2, args::integer(maxsize));
            pyo3_ffi::PyList_Append(list, t);
            pyo3_ffi::Py_DECREF(t);
        }
        list
    }
}

fastcall! {
    /// `queue_put(qid, obj, unboundop, block, timeout)`
    fn queue_put(a) {
        if args::count(c"queue_put", a, 5, 5).is_none() { return std::ptr::null_mut(); }
        let Some(id) = args::int(a[0], "qid") else { return std::ptr::null_mut() };
        let Some(op) = unboundop(a[2], true) else { return std::ptr::null_mut() };
        let Some(block) = args::truth(a[3]) else { return std::ptr::null_mut() };
        let Some(timeout) = args::timeout(a[4]) else { return std::ptr::null_mut() };
        let value = match xi::to_value(a[1], Fallback::Pickle) {
            Ok(v) => v,
            Err(e) => return super::interp_fns::not_shareable("item", &e),
        };
        let interp = pyo3_ffi::PyInterpreterState_GetID(pyo3_ffi::PyInterpreterState_Get());
        match queue::put(id, value, interp, op, block, timeout) {
            Ok(()) => args::none(),
            Err(e) => queue_error(id, e),
        }
    }
}

fastcall! {
    /// `queue_get(qid, block, timeout) -> (obj, None) | (None, unboundop)`
    fn queue_get(a) {
        if args::count(c"queue_get", a, 3, 3).is_none() { return std::ptr::null_mut(); }
        let Some(id) = args::int(a[0], "qid") else { return std::ptr::null_mut() };
        let Some(block) = args::truth(a[1]) else { return std::ptr::null_mut() };
        let Some(timeout) = args::timeout(a[2]) else { return std::ptr::null_mut() };
        let (obj, op) = match queue::get(id, block, timeout) {
            Ok(Got::Value(v)) => match xi::from_value(&v) {
                Some(o) => (o.into_ptr(), args::none()),
                None => {
                    return raise::raise_from_current(
                        Exc::NotShareable,
                        &format!("an item of queue {id} cannot be rebuilt in this interpreter"),
                    )
                }
            },
            Ok(Got::Unbound(op)) => (args::none(), args::integer(i64::from(op))),
            Err(e) => return queue_error(id, e),
        };
        let t = pyo3_ffi::PyTuple_New(2);
        if t.is_null() { pyo3_ffi::Py_DECREF(obj); pyo3_ffi::Py_DECREF(op); return t; }
        pyo3_ffi::PyTuple_SetItem(t, 0, obj);
        pyo3_ffi::PyTuple_SetItem(t, 1, op);
        t
    }
}

fastcall! {
    /// `queue_get_maxsize(qid) -> int`
    fn queue_get_maxsize(a) {
        if args::count(c"queue_get_maxsize", a, 1, 1).is_none() { return std::ptr::null_mut(); }
        let Some(id) = args::int(a[0], "qid") else { return std::ptr::null_mut() };
        match queue::info(id) { Ok((m, _)) => args::integer(m), Err(e) => queue_error(id, e) }
    }
}

fastcall! {
    /// `queue_get_count(qid) -> int`
    fn queue_get_count(a) {
        if args::count(c"queue_get_count", a, 1, 1).is_none() { return std::ptr::null_mut(); }
        let Some(id) = args::int(a[0], "qid") else { return std::ptr::null_mut() };
        match queue::count(id) { Ok(n) => args::integer(n as i64), Err(e) => queue_error(id, e) }
    }
}

fastcall! {
    /// `queue_is_full(qid) -> bool`
    fn queue_is_full(a) {
        if args::count(c"queue_is_full", a, 1, 1).is_none() { return std::ptr::null_mut(); }
        let Some(id) = args::int(a[0], "qid") else { return std::ptr::null_mut() };
        match queue::is_full(id) { Ok(b) => args::boolean(b), Err(e) => queue_error(id, e) }
    }
}

fastcall! {
    /// `queue_get_defaults(qid) -> (unboundop, fallback)`
    fn queue_get_defaults(a) {
        if args::count(c"queue_get_defaults", a, 1, 1).is_none() { return std::ptr::null_mut(); }
        let Some(id) = args::int(a[0], "qid") else { return std::ptr::null_mut() };
        match queue::info(id) {
            Ok((_, op)) => {
                let t = pyo3_ffi::PyTuple_New(2);
                if !t.is_null() {
                    pyo3_ffi::PyTuple_SetItem(t, 0, args::integer(i64::from(op)));
                    pyo3_ffi::PyTuple_SetItem(t, 1, args::integer(1));
                }
                t
            }
            Err(e) => queue_error(id, e),
        }
    }
}

/// Every function, for the method table.
pub const FUNCTIONS: &[(&std::ffi::CStr, Fast, &std::ffi::CStr)] = &[
    (
        c"queue_create",
        queue_create,
        c"Create a queue; return its id.",
    ),
    (c"queue_bind", queue_bind, c"Take a handle reference."),
    (c"queue_release", queue_release, c"Drop a handle reference."),
    (c"queue_list_all", queue_list_all, c"Every live queue."),
    (c"queue_put", queue_put, c"Append an item."),
    (c"queue_get", queue_get, c"Pop the next item."),
    (
        c"queue_get_maxsize",
        queue_get_maxsize,
        c"The queue's maxsize.",
    ),
    (c"queue_get_count", queue_get_count, c"Items in the queue."),
    (
        c"queue_is_full",
        queue_is_full,
        c"Whether the queue is full.",
    ),
    (
        c"queue_get_defaults",
        queue_get_defaults,
        c"(unboundop, fallback) defaults.",
    ),
];
