//! The queue functions of `_native`.

use pyo3_ffi::PyObject;

use super::raise::{self, Exc};
use super::{args, native_functions};
use crate::runtime::queue::{self, Got, QueueError};
use crate::runtime::xi::{self, Fallback};

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
unsafe fn unboundop_arg(obj: *mut PyObject, allow_default: bool) -> Option<i32> {
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

native_functions! {
    /// Create a queue; return its id.
    fn queue_create(maxsize, unboundop) {
        let Some(maxsize) = args::int(maxsize, "maxsize") else { return std::ptr::null_mut() };
        let Some(op) = unboundop_arg(unboundop, false) else { return std::ptr::null_mut() };
        args::integer(queue::create(maxsize, op))
    }

    /// Take a handle reference.
    fn queue_bind(qid) {
        let Some(id) = args::int(qid, "qid") else { return std::ptr::null_mut() };
        match queue::bind(id) { Ok(()) => args::none(), Err(e) => queue_error(id, e) }
    }

    /// Drop a handle reference.
    fn queue_release(qid) {
        let Some(id) = args::int(qid, "qid") else { return std::ptr::null_mut() };
        match queue::release(id) { Ok(()) => args::none(), Err(e) => queue_error(id, e) }
    }

    /// Every live queue.
    fn queue_list_all() {
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

    /// Append an item.
    fn queue_put(qid, obj, unboundop, block, timeout) {
        let Some(id) = args::int(qid, "qid") else { return std::ptr::null_mut() };
        let Some(op) = unboundop_arg(unboundop, true) else { return std::ptr::null_mut() };
        let Some(block) = args::truth(block) else { return std::ptr::null_mut() };
        let Some(timeout) = args::timeout(timeout) else { return std::ptr::null_mut() };
        let value = match xi::to_value(obj, Fallback::Pickle) {
            Ok(v) => v,
            Err(e) => return super::interp_fns::not_shareable("item", &e),
        };
        let interp = pyo3_ffi::PyInterpreterState_GetID(pyo3_ffi::PyInterpreterState_Get());
        match queue::put(id, value, interp, op, block, timeout) {
            Ok(()) => args::none(),
            Err(e) => queue_error(id, e),
        }
    }

    /// Pop the next item.
    fn queue_get(qid, block, timeout) {
        let Some(id) = args::int(qid, "qid") else { return std::ptr::null_mut() };
        let Some(block) = args::truth(block) else { return std::ptr::null_mut() };
        let Some(timeout) = args::timeout(timeout) else { return std::ptr::null_mut() };
        let (obj, op) = match queue::get(id, block, timeout) {
            Ok(Got::Value(v, from)) => match xi::from_value(&v) {
                Some(o) => (o.into_ptr(), args::none()),
                None if xi::memory_error_set() => {
                    // Too big to rebuild here now: the item goes back, the MemoryError out.
                    queue::unget(id, v, from);
                    return std::ptr::null_mut();
                }
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

    /// The queue's maxsize.
    fn queue_get_maxsize(qid) {
        let Some(id) = args::int(qid, "qid") else { return std::ptr::null_mut() };
        match queue::info(id) { Ok((m, _)) => args::integer(m), Err(e) => queue_error(id, e) }
    }

    /// Items in the queue.
    fn queue_get_count(qid) {
        let Some(id) = args::int(qid, "qid") else { return std::ptr::null_mut() };
        match queue::count(id) { Ok(n) => args::integer(n as i64), Err(e) => queue_error(id, e) }
    }

    /// Whether the queue is full.
    fn queue_is_full(qid) {
        let Some(id) = args::int(qid, "qid") else { return std::ptr::null_mut() };
        match queue::is_full(id) { Ok(b) => args::boolean(b), Err(e) => queue_error(id, e) }
    }

    /// (unboundop, fallback) defaults.
    fn queue_get_defaults(qid) {
        let Some(id) = args::int(qid, "qid") else { return std::ptr::null_mut() };
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
