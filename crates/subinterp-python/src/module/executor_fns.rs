//! The executor functions of `_native`: the native work queue of `InterpreterPoolExecutor`
//! (`runtime::executor`).

use pyo3_ffi::{PyObject, Py_ssize_t};

use super::interp_fns::{begin_error, not_shareable, outcome};
use super::raise::{self, Exc};
use super::{args, native_functions};
use crate::runtime::executor::{self, Finished, PoolError, Work, WorkError};
use crate::runtime::xi::{self, Fallback, Value};
use crate::runtime::{excinfo::ExcInfo, pyutil};
use subinterp_rs::owned::Owned;

/// Raises the error of a pool operation; returns null. The GIL is held.
unsafe fn pool_error(id: i64, e: PoolError) -> *mut PyObject {
    // SAFETY: the GIL is held.
    unsafe {
        match e {
            PoolError::NotFound => {
                args::set_error(
                    pyo3_ffi::PyExc_RuntimeError,
                    &format!("pool {id} not found"),
                );
                std::ptr::null_mut()
            }
            PoolError::Closed => {
                args::set_error(
                    pyo3_ffi::PyExc_RuntimeError,
                    "cannot schedule new futures after shutdown",
                );
                std::ptr::null_mut()
            }
            PoolError::Interrupted => std::ptr::null_mut(),
        }
    }
}

/// The items of a tuple as values (`what` names them in errors); `None` with an error set.
unsafe fn values_of(tuple: *mut PyObject, what: &str) -> Option<Vec<Value>> {
    // SAFETY: the GIL is held; `tuple` is a tuple (checked by the callers).
    unsafe {
        let n = pyo3_ffi::PyTuple_Size(tuple);
        let mut out = Vec::with_capacity(n as usize);
        for i in 0..n {
            match xi::to_value(
                pyo3_ffi::PyTuple_GetItem(tuple, i),
                Fallback::PickleClosures,
            ) {
                Ok(v) => out.push(v),
                Err(e) => {
                    not_shareable(&format!("{what} {}", i + 1), &e);
                    return None;
                }
            }
        }
        Some(out)
    }
}

/// A task's callable as a value; `None` with the error set.
unsafe fn callable_value(callable: *mut PyObject) -> Option<Value> {
    // SAFETY: the GIL is held.
    unsafe {
        match xi::to_value(callable, Fallback::PickleClosures) {
            Ok(v) => Some(v),
            Err(e) => {
                not_shareable("callable", &e);
                None
            }
        }
    }
}

/// A new list of task ids (null with an error set).
unsafe fn id_list(ids: &[i64]) -> *mut PyObject {
    // SAFETY: the GIL is held; PyList_SET_ITEM steals each new reference.
    unsafe {
        let list = pyo3_ffi::PyList_New(ids.len() as Py_ssize_t);
        if !list.is_null() {
            for (i, id) in ids.iter().enumerate() {
                pyo3_ffi::PyList_SET_ITEM(list, i as Py_ssize_t, args::integer(*id));
            }
        }
        list
    }
}

/// `(task id, idle workers)` for a submission; null with the error set.
unsafe fn submitted(pool: i64, task: i64, work: Work) -> *mut PyObject {
    // SAFETY: the GIL is held; PyTuple_SetItem steals the new references.
    unsafe {
        match executor::submit(pool, task, work) {
            Ok((id, idle)) => {
                let t = pyo3_ffi::PyTuple_New(2);
                if !t.is_null() {
                    pyo3_ffi::PyTuple_SetItem(t, 0, args::integer(id));
                    pyo3_ffi::PyTuple_SetItem(t, 1, args::integer(idle as i64));
                }
                t
            }
            Err(e) => pool_error(pool, e),
        }
    }
}

/// The exception a failed task gives its future (built under the caller's GIL): the task's
/// own exception (when it crossed) with the `ExecutionFailed` describing it as its cause, as
/// the 3.14 stdlib raises it; else that `ExecutionFailed`. Null with an error set on failure.
unsafe fn task_exception(info: &ExcInfo, exc: Option<&Value>) -> *mut PyObject {
    // SAFETY: the GIL is held; references are owned, handed over as documented.
    unsafe {
        raise::execution_failed(info);
        let wrapper = pyo3_ffi::PyErr_GetRaisedException();
        if wrapper.is_null() {
            return std::ptr::null_mut();
        }
        let Some(exc) = exc.and_then(|v| xi::from_value(v)) else {
            pyo3_ffi::PyErr_Clear();
            return wrapper;
        };
        if pyo3_ffi::PyExceptionInstance_Check(exc.as_ptr()) == 0 {
            return wrapper;
        }
        // Steals the reference to `wrapper`; also sets __suppress_context__, as `raise from`.
        pyo3_ffi::PyException_SetCause(exc.as_ptr(), wrapper);
        exc.into_ptr()
    }
}

/// The exception an outcome other than `Done` raises, as an object.
unsafe fn outcome_exception(out: crate::runtime::run::Outcome<()>) -> *mut PyObject {
    // SAFETY: the GIL is held.
    unsafe {
        outcome(out, |()| std::ptr::null_mut());
        let exc = pyo3_ffi::PyErr_GetRaisedException();
        if exc.is_null() {
            args::set_error(
                pyo3_ffi::PyExc_SystemError,
                "a task failed without an exception",
            );
        }
        exc
    }
}

/// A tuple of the objects `values` describe; null with an error set.
unsafe fn tuple_of(values: &[Value]) -> *mut PyObject {
    // SAFETY: the GIL is held; PyTuple_SET_ITEM steals each new reference.
    unsafe {
        let Some(t) = Owned::from_owned(pyo3_ffi::PyTuple_New(values.len() as Py_ssize_t)) else {
            return std::ptr::null_mut();
        };
        for (i, v) in values.iter().enumerate() {
            let Some(obj) = xi::from_value(v) else {
                return std::ptr::null_mut();
            };
            pyo3_ffi::PyTuple_SET_ITEM(t.as_ptr(), i as Py_ssize_t, obj.into_ptr());
        }
        t.into_ptr()
    }
}

/// `(id, kind, payload)` for a finished task: kind 0, the result; 1, the exception; 2, a
/// chunk's results (a tuple); 3, a chunk's failure, `(results before, exception)`; 4,
/// cancelled before it started (`None`). A result
/// that cannot be rebuilt here gives kind 1 with `NotShareableError`.
unsafe fn finished_tuple(id: i64, fin: Finished) -> *mut PyObject {
    // SAFETY: the GIL is held; new references are handed to PyTuple_Pack's result (which
    // takes its own) and dropped here.
    unsafe {
        let (kind, payload): (i64, *mut PyObject) = match fin {
            Finished::Value(v) => match xi::from_value(&v) {
                Some(obj) => (0, obj.into_ptr()),
                None => (1, rebuild_error()),
            },
            Finished::Values(vs) => {
                let t = tuple_of(&vs);
                if t.is_null() {
                    (1, rebuild_error())
                } else {
                    (2, t)
                }
            }
            Finished::Raised { info, exc, partial } => {
                let e = task_exception(&info, exc.as_ref());
                if e.is_null() {
                    return std::ptr::null_mut();
                }
                match partial {
                    None => (1, e),
                    Some(before) => (3, pack_partial(&before, e)),
                }
            }
            Finished::Failed(out) => (1, outcome_exception(out)),
            Finished::Cancelled => (4, args::none()),
        };
        if payload.is_null() {
            return std::ptr::null_mut();
        }
        let id_obj = args::integer(id);
        let kind_obj = args::integer(kind);
        let t = pyo3_ffi::PyTuple_Pack(3, id_obj, kind_obj, payload);
        pyo3_ffi::Py_DECREF(id_obj);
        pyo3_ffi::Py_DECREF(kind_obj);
        pyo3_ffi::Py_DECREF(payload);
        t
    }
}

/// `(results before, exception)`; consumes `exc`.
unsafe fn pack_partial(partial: &[Value], exc: *mut PyObject) -> *mut PyObject {
    // SAFETY: the GIL is held.
    unsafe {
        let before = tuple_of(partial);
        if before.is_null() {
            pyo3_ffi::Py_DECREF(exc);
            return std::ptr::null_mut();
        }
        let t = pyo3_ffi::PyTuple_Pack(2, before, exc);
        pyo3_ffi::Py_DECREF(before);
        pyo3_ffi::Py_DECREF(exc);
        t
    }
}

/// `NotShareableError` for a result that could not be rebuilt here (from the error set).
unsafe fn rebuild_error() -> *mut PyObject {
    // SAFETY: the GIL is held.
    unsafe {
        raise::raise_from_current(Exc::NotShareable, "the result could not be rebuilt here");
        pyo3_ffi::PyErr_GetRaisedException()
    }
}

native_functions! {
    /// A new executor work queue; its id.
    fn executor_create() {
        args::integer(executor::create())
    }

    /// Queue callable(*args, **kwargs) as a task; (task, idle workers).
    fn executor_submit(pool, task, callable, args, kwargs) {
        let Some(pool) = args::int(pool, "pool") else { return std::ptr::null_mut() };
        let Some(task) = args::int(task, "task") else { return std::ptr::null_mut() };
        if pyo3_ffi::PyTuple_Check(args) == 0 {
            args::set_error(pyo3_ffi::PyExc_TypeError, "args must be a tuple");
            return std::ptr::null_mut();
        }
        let Some(callable) = callable_value(callable) else { return std::ptr::null_mut() };
        let Some(args) = values_of(args, "argument") else { return std::ptr::null_mut() };
        let mut kw = Vec::new();
        if kwargs != pyo3_ffi::Py_None() {
            if pyo3_ffi::PyDict_Check(kwargs) == 0 {
                args::set_error(pyo3_ffi::PyExc_TypeError, "kwargs must be a dict or None");
                return std::ptr::null_mut();
            }
            let mut pos: Py_ssize_t = 0;
            let (mut k, mut v) = (std::ptr::null_mut(), std::ptr::null_mut());
            while pyo3_ffi::PyDict_Next(kwargs, &raw mut pos, &raw mut k, &raw mut v) != 0 {
                let Some(name) = (if pyo3_ffi::PyUnicode_Check(k) != 0 { pyutil::str_to_string(k) } else { None }) else {
                    args::set_error(pyo3_ffi::PyExc_TypeError, "keyword names must be str");
                    return std::ptr::null_mut();
                };
                match xi::to_value(v, Fallback::PickleClosures) {
                    Ok(val) => kw.push((name, val)),
                    Err(e) => return not_shareable(&name, &e),
                }
            }
        }
        submitted(pool, task, Work::Call { callable, args, kwargs: kw })
    }

    /// Queue callable(*args) for each args tuple of items, as one task; (task, idle workers).
    fn executor_submit_chunk(pool, task, callable, items) {
        let Some(pool) = args::int(pool, "pool") else { return std::ptr::null_mut() };
        let Some(task) = args::int(task, "task") else { return std::ptr::null_mut() };
        if pyo3_ffi::PyTuple_Check(items) == 0 {
            args::set_error(pyo3_ffi::PyExc_TypeError, "items must be a tuple of tuples");
            return std::ptr::null_mut();
        }
        let Some(callable) = callable_value(callable) else { return std::ptr::null_mut() };
        let n = pyo3_ffi::PyTuple_Size(items);
        let mut all = Vec::with_capacity(n as usize);
        for i in 0..n {
            let item = pyo3_ffi::PyTuple_GetItem(items, i);
            if pyo3_ffi::PyTuple_Check(item) == 0 {
                args::set_error(pyo3_ffi::PyExc_TypeError, "items must be a tuple of tuples");
                return std::ptr::null_mut();
            }
            let Some(vs) = values_of(item, "argument") else { return std::ptr::null_mut() };
            all.push(vs);
        }
        submitted(pool, task, Work::Chunk { callable, items: all })
    }

    /// Wait for tasks, take this worker's share, run it inside the interpreter: [(id, kind, payload)], or None once closed and empty.
    fn executor_work(pool, interp, max, workers) {
        let Some(pool) = args::int(pool, "pool") else { return std::ptr::null_mut() };
        let Some(interp) = args::int(interp, "interp") else { return std::ptr::null_mut() };
        let Some(max) = args::int(max, "max") else { return std::ptr::null_mut() };
        let Some(workers) = args::int(workers, "workers") else { return std::ptr::null_mut() };
        let done = match executor::work(pool, interp, max.max(1) as usize, workers.max(1) as usize) {
            Ok(Some(done)) => done,
            Ok(None) => return args::none(),
            Err(WorkError::Pool(e)) => return pool_error(pool, e),
            Err(WorkError::Begin(e, ids)) => {
                // The tasks taken did not run: each gets the error.
                begin_error(interp, e);
                let exc = pyo3_ffi::PyErr_GetRaisedException();
                let list = pyo3_ffi::PyList_New(ids.len() as Py_ssize_t);
                if list.is_null() { pyo3_ffi::Py_XDECREF(exc); return list; }
                for (i, id) in ids.iter().enumerate() {
                    let id_obj = args::integer(*id);
                    let kind = args::integer(1);
                    let t = pyo3_ffi::PyTuple_Pack(3, id_obj, kind, exc);
                    pyo3_ffi::Py_DECREF(id_obj);
                    pyo3_ffi::Py_DECREF(kind);
                    pyo3_ffi::PyList_SET_ITEM(list, i as Py_ssize_t, t);
                }
                pyo3_ffi::Py_XDECREF(exc);
                return list;
            }
        };
        let list = pyo3_ffi::PyList_New(done.len() as Py_ssize_t);
        if list.is_null() { return list; }
        for (i, (id, fin)) in done.into_iter().enumerate() {
            let t = finished_tuple(id, fin);
            if t.is_null() { pyo3_ffi::Py_DECREF(list); return std::ptr::null_mut(); }
            pyo3_ffi::PyList_SET_ITEM(list, i as Py_ssize_t, t);
        }
        list
    }

    /// Whether a task has started (and not finished).
    fn executor_started(pool, task) {
        let Some(pool) = args::int(pool, "pool") else { return std::ptr::null_mut() };
        let Some(task) = args::int(task, "task") else { return std::ptr::null_mut() };
        args::boolean(executor::started(pool, task))
    }

    /// Cancel a task that has not started; whether it was.
    fn executor_cancel(pool, task) {
        let Some(pool) = args::int(pool, "pool") else { return std::ptr::null_mut() };
        let Some(task) = args::int(task, "task") else { return std::ptr::null_mut() };
        args::boolean(executor::cancel(pool, task))
    }

    /// Close the work queue (cancel: drop what is queued); the dropped task ids.
    fn executor_close(pool, cancel, forget) {
        let Some(pool) = args::int(pool, "pool") else { return std::ptr::null_mut() };
        let Some(cancel) = args::truth(cancel) else { return std::ptr::null_mut() };
        let Some(forget) = args::truth(forget) else { return std::ptr::null_mut() };
        id_list(&executor::close(pool, cancel, forget))
    }
}
