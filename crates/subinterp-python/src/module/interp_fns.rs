//! The interpreter functions of `_native`: convert arguments, forward to the core, convert back.

use std::ffi::CString;

use pyo3_ffi::{PyObject, Py_ssize_t};

use super::args;
use super::raise::{self, Exc};
use crate::runtime::excinfo::ExcInfo;
use crate::runtime::lifecycle::{self, whence, BeginError, DestroyError};
use crate::runtime::run::{self, Code, Outcome};
use crate::runtime::xi::{self, Fallback, Value};
use crate::runtime::{buffer, pyutil};
use subinterp_rs::owned::Owned;
use subinterp_rs::Subinterpreter;
use subinterp_rs::{ffi_ext, tstate, Error};
use subinterp_rs::{Config, Gil};

/// A `METH_FASTCALL` module function.
type Fast = pyo3_ffi::PyCFunctionFast;

/// Declares a fastcall function `$name(args) -> *mut PyObject` with the GIL held.
macro_rules! fastcall {
    ($(#[$doc:meta])* fn $name:ident($args:ident) $body:block) => {
        $(#[$doc])*
        pub unsafe extern "C" fn $name(
            _module: *mut PyObject,
            raw: *mut *mut PyObject,
            n: Py_ssize_t,
        ) -> *mut PyObject {
            // SAFETY: CPython calls module functions with the GIL of the calling interpreter
            // held and `raw` pointing to `n` live references.
            unsafe {
                // Buffers of this interpreter dropped elsewhere: released here and now.
                crate::runtime::buffer::release_pending_here();
                let $args = args::slice(raw, n);
                $body
            }
        }
    };
}
pub(crate) use fastcall;

/// The id of the calling interpreter (its GIL is held: module functions only).
fn current_id() -> i64 {
    // SAFETY: called from module functions, with the GIL held.
    unsafe { pyo3_ffi::PyInterpreterState_GetID(pyo3_ffi::PyInterpreterState_Get()) }
}

/// CPython's (3.13+) or our record of who created interpreter `istate`.
unsafe fn whence_of(id: i64, istate: *mut pyo3_ffi::PyInterpreterState) -> i64 {
    if let Some(w) = lifecycle::whence_of(id) {
        return w;
    }
    // SAFETY: `istate` is alive (listed under the GIL just now).
    unsafe {
        if istate == pyo3_ffi::PyInterpreterState_Main() {
            return whence::RUNTIME;
        }
        ffi_ext::whence(istate).map_or(whence::UNKNOWN, i64::from)
    }
}

/// A new `(id, whence)` tuple (null with an error set on failure). The GIL is held.
unsafe fn id_whence_tuple(id: i64, w: i64) -> *mut PyObject {
    // SAFETY: the GIL is held; PyTuple_SetItem steals the new references.
    unsafe {
        let t = pyo3_ffi::PyTuple_New(2);
        if !t.is_null() {
            pyo3_ffi::PyTuple_SetItem(t, 0, args::integer(id));
            pyo3_ffi::PyTuple_SetItem(t, 1, args::integer(w));
        }
        t
    }
}

/// Raises the error for a run that could not begin.
unsafe fn begin_error(id: i64, e: BeginError) -> *mut PyObject {
    // SAFETY: the GIL is held.
    unsafe {
        match e {
            BeginError::NotFound => {
                raise::raise(Exc::NotFound, &format!("interpreter {id} not found"))
            }
            BeginError::Running => raise::raise(
                Exc::Interpreter,
                &format!("interpreter {id} is already running (in this or another thread)"),
            ),
            BeginError::Closing => raise::raise(
                Exc::Interpreter,
                &format!("interpreter {id} is being closed"),
            ),
            BeginError::ShutDown => raise::raise(
                Exc::Interpreter,
                &format!("cannot run in interpreter {id} at interpreter shutdown"),
            ),
        }
    }
}

/// Turns an [`Outcome`] into the module function's return value: `ok(value)`, or null with
/// `ExecutionFailed` or `NotShareableError` raised. The caller's GIL is held.
unsafe fn outcome<T>(out: Outcome<T>, ok: impl FnOnce(T) -> *mut PyObject) -> *mut PyObject {
    // SAFETY: the GIL is held (the caller's, back again).
    unsafe {
        match out {
            Outcome::Done(v) => ok(v),
            Outcome::Raised(info) => raise::execution_failed(&info),
            Outcome::NotShareable(msg) => raise::raise(Exc::NotShareable, &msg),
        }
    }
}

/// Raises `NotShareableError("what: why")`, or leaves a propagating `BaseException` raised.
pub(super) unsafe fn not_shareable(what: &str, e: &xi::NotShareable) -> *mut PyObject {
    match &e.0 {
        // SAFETY: the GIL is held.
        Some(why) => unsafe { raise::raise(Exc::NotShareable, &format!("{what}: {why}")) },
        None => std::ptr::null_mut(),
    }
}

/// A `dict[str, object]` as `(name, Value)` pairs.
unsafe fn namespace(obj: *mut PyObject, fallback: Fallback) -> Option<Vec<(String, Value)>> {
    // SAFETY: the GIL is held; PyDict_Next yields borrowed references.
    unsafe {
        if obj == pyo3_ffi::Py_None() {
            return Some(Vec::new());
        }
        if pyo3_ffi::PyDict_Check(obj) == 0 {
            args::set_error(
                pyo3_ffi::PyExc_TypeError,
                "expected a dict of names to values",
            );
            return None;
        }
        let mut out = Vec::new();
        let mut pos: Py_ssize_t = 0;
        let mut key = std::ptr::null_mut();
        let mut value = std::ptr::null_mut();
        while pyo3_ffi::PyDict_Next(obj, &raw mut pos, &raw mut key, &raw mut value) != 0 {
            if pyo3_ffi::PyUnicode_Check(key) == 0 {
                args::set_error(pyo3_ffi::PyExc_TypeError, "names must be str");
                return None;
            }
            let name = pyutil::str_to_string(key)?;
            match xi::to_value(value, fallback) {
                Ok(v) => out.push((name, v)),
                Err(e) => {
                    not_shareable(&name, &e);
                    return None;
                }
            }
        }
        Some(out)
    }
}

fastcall! {
    /// `create(use_main_obmalloc, allow_fork, allow_exec, allow_threads, allow_daemon_threads,
    /// check_multi_interp_extensions, gil, whence) -> id`
    fn create(a) {
        if args::count(c"create", a, 8, 8).is_none() { return std::ptr::null_mut(); }
        let mut flags = [false; 6];
        for (i, f) in flags.iter_mut().enumerate() {
            match args::truth(a[i]) { Some(b) => *f = b, None => return std::ptr::null_mut() }
        }
        let Some(gil_name) = pyutil::str_to_string(a[6]) else { return std::ptr::null_mut() };
        let Some(gil) = Gil::from_name(&gil_name) else {
            args::set_error(pyo3_ffi::PyExc_ValueError,
                &format!("gil must be 'default', 'shared' or 'own', got {gil_name:?}"));
            return std::ptr::null_mut();
        };
        let Some(w) = args::int(a[7], "whence") else { return std::ptr::null_mut() };
        let cfg = Config {
            use_main_obmalloc: flags[0], allow_fork: flags[1], allow_exec: flags[2],
            allow_threads: flags[3], allow_daemon_threads: flags[4],
            check_multi_interp_extensions: flags[5], gil,
        };
        if let Err(e) = cfg.validate() {
            args::set_error(pyo3_ffi::PyExc_ValueError, &e.to_string());
            return std::ptr::null_mut();
        }
        let paths = sys_path();
        // The facade's interpreters start with one handle reference (the stdlib's
        // `reqrefs`), so nothing can close them between creation and their first handle.
        let handles = usize::from(w == whence::STDLIB);
        let saved = tstate::detach();
        // Refused before the lock too: at exit, daemon threads creating in a loop must not
        // keep the exit hook from the lock it waits for (see `lifecycle::shut_down`).
        let created = (|| {
            if lifecycle::is_shut_down() {
                return Err(None);
            }
            let _creating = lifecycle::lifecycle_write();
            if lifecycle::is_shut_down() {
                return Err(None); // the exit hook took the lock first
            }
            Subinterpreter::create(&cfg)
                .map(|si| lifecycle::register(si, w, handles))
                .map_err(Some)
        })();
        tstate::reattach(saved);
        match created {
            Ok(id) => {
                // The new interpreter sees the modules its creator sees (script directory,
                // test roots, ...): its `sys.path` starts as a copy of the creator's.
                if let Some(paths) = paths {
                    let _ = run::in_interpreter(id, || set_sys_path(&paths));
                }
                if cfg.allow_fork {
                    let _ = run::in_interpreter(id, || run::run_private(FORK_GUARD));
                }
                args::integer(id)
            }
            Err(Some(e)) => raise::raise(Exc::Interpreter, &e.to_string()),
            Err(None) => raise::raise(
                Exc::Interpreter,
                "cannot create a subinterpreter at interpreter shutdown",
            ),
        }
    }
}

/// Installed in interpreters whose config allows fork: CPython only forks from the main
/// interpreter (a child forked from a subinterpreter dies with a fatal error).
const FORK_GUARD: &std::ffi::CStr = c"import os
def _refuse(*args, **kwargs):
    raise RuntimeError('os.fork() in a subinterpreter kills the child: CPython can only '
                       'fork from the main interpreter; fork there, or use subprocess '
                       'without preexec_fn')
for _name in ('fork', 'forkpty'):
    if hasattr(os, _name):
        setattr(os, _name, _refuse)
";

/// The current interpreter's `sys.path` entries that are `str`.
unsafe fn sys_path() -> Option<Vec<String>> {
    // SAFETY: the GIL is held; `PySys_GetObject` returns a borrowed reference.
    unsafe {
        let path = pyo3_ffi::PySys_GetObject(c"path".as_ptr());
        if path.is_null() || pyo3_ffi::PyList_Check(path) == 0 {
            return None;
        }
        let mut out = Vec::new();
        for i in 0..pyo3_ffi::PyList_Size(path) {
            let item = pyo3_ffi::PyList_GetItem(path, i);
            if pyo3_ffi::PyUnicode_CheckExact(item) != 0 {
                if let Some(s) = pyutil::str_to_string(item) {
                    out.push(s);
                }
            }
        }
        pyo3_ffi::PyErr_Clear();
        Some(out)
    }
}

/// `sys.path[:] = paths` in the current interpreter.
unsafe fn set_sys_path(paths: &[String]) {
    // SAFETY: the GIL of the target is held; references are owned or borrowed from sys.
    unsafe {
        let path = pyo3_ffi::PySys_GetObject(c"path".as_ptr());
        if path.is_null() || pyo3_ffi::PyList_Check(path) == 0 {
            return;
        }
        if let Some(new) = Owned::from_owned(pyo3_ffi::PyList_New(0)) {
            for p in paths {
                if let Some(s) = pyutil::new_str(p) {
                    pyo3_ffi::PyList_Append(new.as_ptr(), s.as_ptr());
                }
            }
            pyo3_ffi::PyList_SetSlice(path, 0, pyo3_ffi::PyList_Size(path), new.as_ptr());
        }
        pyo3_ffi::PyErr_Clear();
    }
}

/// `(id, whence)` of every interpreter, by id. Walks CPython's list under the registry's
/// lifecycle lock; if a create or close holds it for long (e.g. a close joining threads),
/// lists main and our own interpreters instead.
unsafe fn all_interpreters() -> Vec<(i64, i64)> {
    // SAFETY: the GIL is held on entry and on return; it is released while waiting.
    unsafe {
        // Inside a close on this thread (a finalizer listing), the lock is ours: don't wait.
        let patience = if lifecycle::closing_here() {
            std::time::Duration::ZERO
        } else {
            std::time::Duration::from_secs(1)
        };
        let saved = tstate::detach();
        let guard = lifecycle::lifecycle_read(patience);
        tstate::reattach(saved);
        let mut all = Vec::new();
        if guard.is_some() {
            let mut i = pyo3_ffi::PyInterpreterState_Head();
            while !i.is_null() {
                let id = pyo3_ffi::PyInterpreterState_GetID(i);
                all.push((id, whence_of(id, i)));
                i = pyo3_ffi::PyInterpreterState_Next(i);
            }
        } else {
            all.push((0, whence::RUNTIME));
            for id in lifecycle::ids() {
                all.push((id, lifecycle::whence_of(id).unwrap_or(whence::CAPI)));
            }
        }
        drop(guard);
        all.sort_unstable();
        all
    }
}

/// The exception class and message for a refused destroy or disarm of interpreter `id`.
fn destroy_message(id: i64, e: &DestroyError) -> (Exc, String) {
    match e {
        DestroyError::NotFound => (Exc::NotFound, format!("interpreter {id} not found")),
        DestroyError::Disarmed => (
            Exc::Interpreter,
            format!("interpreter {id} was disarmed (leaked on purpose); it cannot be closed"),
        ),
        DestroyError::Closing => (Exc::Interpreter, format!("interpreter {id} is already being closed")),
        DestroyError::Running => (
            Exc::Interpreter,
            format!("interpreter {id} is running in another thread; wait for it to finish, then close it"),
        ),
        DestroyError::BuffersInUse(n) => (
            Exc::Interpreter,
            format!("interpreter {id} exported {n} buffer(s) still in use by other interpreters; release those memoryviews first"),
        ),
        DestroyError::Core(Error::IsCurrent) => {
            (Exc::Interpreter, format!("cannot close interpreter {id}: it is the current interpreter"))
        }
        DestroyError::Core(other) => (Exc::Interpreter, format!("cannot close interpreter {id}: {other}")),
        DestroyError::ShutDown => (
            Exc::Interpreter,
            format!("cannot close interpreter {id} at interpreter shutdown: the exit hook closes it"),
        ),
    }
}

fastcall! {
    /// `destroy(id)`
    fn destroy(a) {
        if args::count(c"destroy", a, 1, 1).is_none() { return std::ptr::null_mut(); }
        let Some(id) = args::id(a[0]) else { return std::ptr::null_mut() };
        if id == current_id() {
            return raise::raise(Exc::Interpreter,
                &format!("cannot close interpreter {id}: it is the current interpreter"));
        }
        if id == 0 || !lifecycle::ids().contains(&id) {
            if id == 0 {
                return raise::raise(Exc::Interpreter, "the main interpreter cannot be closed");
            }
            if ffi_ext::look_up_id(id).is_none() {
                return raise::raise(Exc::NotFound, &format!("interpreter {id} not found"));
            }
            return raise::raise(Exc::Interpreter, &format!(
                "interpreter {id} was not created by subinterp_rs; close it with the API that created it"));
        }
        // Closing runs Python code there and may join its threads: release our GIL meanwhile.
        let saved = tstate::detach();
        let result = lifecycle::destroy(id);
        tstate::reattach(saved);
        match result {
            Ok(()) => args::none(),
            Err(e) => { let (kind, msg) = destroy_message(id, &e); raise::raise(kind, &msg) }
        }
    }
}

fastcall! {
    /// `list_all() -> [(id, whence)]`
    fn list_all(a) {
        if args::count(c"list_all", a, 0, 0).is_none() { return std::ptr::null_mut(); }
        let all = all_interpreters();
        let list = pyo3_ffi::PyList_New(0);
        if list.is_null() { return list; }
        for (id, w) in all {
            let t = id_whence_tuple(id, w);
            if t.is_null() || pyo3_ffi::PyList_Append(list, t) < 0 {
                pyo3_ffi::Py_XDECREF(t);
                pyo3_ffi::Py_DECREF(list);
                return std::ptr::null_mut();
            }
            pyo3_ffi::Py_DECREF(t);
        }
        list
    }
}

fastcall! {
    /// `get_current() -> (id, whence)`
    fn get_current(a) {
        if args::count(c"get_current", a, 0, 0).is_none() { return std::ptr::null_mut(); }
        let istate = pyo3_ffi::PyInterpreterState_Get();
        let id = pyo3_ffi::PyInterpreterState_GetID(istate);
        id_whence_tuple(id, whence_of(id, istate))
    }
}

fastcall! {
    /// `get_main() -> (id, whence)`
    fn get_main(a) {
        if args::count(c"get_main", a, 0, 0).is_none() { return std::ptr::null_mut(); }
        let istate = pyo3_ffi::PyInterpreterState_Main();
        id_whence_tuple(pyo3_ffi::PyInterpreterState_GetID(istate), whence::RUNTIME)
    }
}

/// Looks `id` up, raising `InterpreterNotFoundError` if it does not exist.
unsafe fn lookup(id: i64) -> Option<*mut pyo3_ffi::PyInterpreterState> {
    // SAFETY: the GIL is held.
    unsafe {
        let found = ffi_ext::look_up_id(id);
        if found.is_none() {
            raise::raise(Exc::NotFound, &format!("interpreter {id} not found"));
        }
        found
    }
}

fastcall! {
    /// `whence(id) -> int`
    fn whence(a) {
        if args::count(c"whence", a, 1, 1).is_none() { return std::ptr::null_mut(); }
        let Some(id) = args::id(a[0]) else { return std::ptr::null_mut() };
        let Some(istate) = lookup(id) else { return std::ptr::null_mut() };
        args::integer(whence_of(id, istate))
    }
}

fastcall! {
    /// `is_running(id) -> bool`
    fn is_running(a) {
        if args::count(c"is_running", a, 1, 1).is_none() { return std::ptr::null_mut(); }
        let Some(id) = args::id(a[0]) else { return std::ptr::null_mut() };
        let Some(istate) = lookup(id) else { return std::ptr::null_mut() };
        args::boolean(lifecycle::is_running(id) || ffi_ext::is_running_main(istate))
    }
}

fastcall! {
    /// `is_owned(id) -> bool`
    fn is_owned(a) {
        if args::count(c"is_owned", a, 1, 1).is_none() { return std::ptr::null_mut(); }
        let Some(id) = args::id(a[0]) else { return std::ptr::null_mut() };
        args::boolean(lifecycle::is_owned(id))
    }
}

fastcall! {
    /// `disarm(id)`
    fn disarm(a) {
        if args::count(c"disarm", a, 1, 1).is_none() { return std::ptr::null_mut(); }
        let Some(id) = args::id(a[0]) else { return std::ptr::null_mut() };
        match lifecycle::disarm(id) {
            Ok(()) => args::none(),
            Err(e) => { let (kind, msg) = destroy_message(id, &e); raise::raise(kind, &msg) }
        }
    }
}

fastcall! {
    /// `incref(id)`
    fn incref(a) {
        if args::count(c"incref", a, 1, 1).is_none() { return std::ptr::null_mut(); }
        let Some(id) = args::id(a[0]) else { return std::ptr::null_mut() };
        if lookup(id).is_none() { return std::ptr::null_mut(); }
        lifecycle::incref(id);
        args::none()
    }
}

fastcall! {
    /// `decref(id)`: at zero an owned idle interpreter made by the facade is closed.
    fn decref(a) {
        if args::count(c"decref", a, 1, 1).is_none() { return std::ptr::null_mut(); }
        let Some(id) = args::id(a[0]) else { return std::ptr::null_mut() };
        if lifecycle::decref(id) && id != current_id() {
            let saved = tstate::detach();
            let result = lifecycle::destroy(id);
            tstate::reattach(saved);
            if result.is_err() {
                // Running or threads alive: close it when its current run ends, or at exit.
                lifecycle::close_when_idle(id);
            }
        }
        args::none()
    }
}

fastcall! {
    /// `exec(id, code)`
    fn exec(a) {
        if args::count(c"exec", a, 2, 2).is_none() { return std::ptr::null_mut(); }
        let Some(id) = args::id(a[0]) else { return std::ptr::null_mut() };
        let code = if pyo3_ffi::PyUnicode_Check(a[1]) != 0 {
            let Some(src) = pyutil::str_to_string(a[1]) else { return std::ptr::null_mut() };
            let Ok(c) = CString::new(src) else {
                args::set_error(pyo3_ffi::PyExc_ValueError, "source code cannot contain null bytes");
                return std::ptr::null_mut();
            };
            Code::Source(c)
        } else {
            let Some(data) = run::marshal_code(a[1]) else { return std::ptr::null_mut() };
            Code::Marshalled(data)
        };
        match run::in_interpreter(id, || run::exec_in(&code)) {
            Ok(out) => outcome(out, |()| args::none()),
            Err(e) => begin_error(id, e),
        }
    }
}

fastcall! {
    /// `call(id, callable, args, kwargs, closures=False)`
    fn call(a) {
        if args::count(c"call", a, 4, 5).is_none() { return std::ptr::null_mut(); }
        let Some(id) = args::id(a[0]) else { return std::ptr::null_mut() };
        let closures = match a.get(4) { Some(&o) => match args::truth(o) { Some(b) => b, None => return std::ptr::null_mut() }, None => false };
        let fallback = if closures { Fallback::PickleClosures } else { Fallback::Pickle };
        if pyo3_ffi::PyCallable_Check(a[1]) == 0 {
            args::set_error(pyo3_ffi::PyExc_TypeError,
                &format!("{} object is not callable", pyutil::type_name(a[1])));
            return std::ptr::null_mut();
        }
        let callable = match xi::to_value(a[1], fallback) {
            Ok(v) => v,
            Err(e) => return not_shareable("callable", &e),
        };
        let args_obj = a[2];
        if pyo3_ffi::PyTuple_Check(args_obj) == 0 {
            args::set_error(pyo3_ffi::PyExc_TypeError, "args must be a tuple");
            return std::ptr::null_mut();
        }
        let mut values = Vec::new();
        for i in 0..pyo3_ffi::PyTuple_Size(args_obj) {
            match xi::to_value(pyo3_ffi::PyTuple_GetItem(args_obj, i), fallback) {
                Ok(v) => values.push(v),
                Err(e) => return not_shareable(&format!("argument {}", i + 1), &e),
            }
        }
        let Some(kwargs) = namespace(a[3], fallback) else { return std::ptr::null_mut() };
        match run::in_interpreter(id, || run::call_in(&callable, &values, &kwargs, fallback)) {
            Ok(out) => outcome(out, |v| {
                if let Some(obj) = xi::from_value(&v) {
                    obj.into_ptr()
                } else {
                    let why = ExcInfo::take_current();
                    raise::raise(Exc::NotShareable, &format!("the result could not be rebuilt here: {}", why.formatted))
                }
            }),
            Err(e) => begin_error(id, e),
        }
    }
}

fastcall! {
    /// `set_main_attrs(id, ns)`
    fn set_main_attrs(a) {
        if args::count(c"set_main_attrs", a, 2, 2).is_none() { return std::ptr::null_mut(); }
        let Some(id) = args::id(a[0]) else { return std::ptr::null_mut() };
        let Some(items) = namespace(a[1], Fallback::SharedOnly) else { return std::ptr::null_mut() };
        match run::in_interpreter(id, || run::set_main_attrs_in(&items)) {
            Ok(out) => outcome(out, |()| args::none()),
            Err(e) => begin_error(id, e),
        }
    }
}

fastcall! {
    /// `is_shareable(obj) -> bool`
    fn is_shareable(a) {
        if args::count(c"is_shareable", a, 1, 1).is_none() { return std::ptr::null_mut(); }
        args::boolean(xi::is_shareable(a[0]))
    }
}

fastcall! {
    /// `excinfo_of(exc) -> ExcInfo`
    fn excinfo_of(a) {
        if args::count(c"excinfo_of", a, 1, 1).is_none() { return std::ptr::null_mut(); }
        if pyo3_ffi::PyExceptionInstance_Check(a[0]) == 0 {
            args::set_error(pyo3_ffi::PyExc_TypeError, "expected an exception instance");
            return std::ptr::null_mut();
        }
        ExcInfo::describe(a[0]).to_python().map_or(std::ptr::null_mut(), Owned::into_ptr)
    }
}

fastcall! {
    /// `_register_queue_type(cls)`
    fn register_queue_type(a) {
        if args::count(c"_register_queue_type", a, 1, 1).is_none() { return std::ptr::null_mut(); }
        if pyo3_ffi::PyType_Check(a[0]) == 0 {
            args::set_error(pyo3_ffi::PyExc_TypeError, "expected a class");
            return std::ptr::null_mut();
        }
        let dict = pyo3_ffi::PyInterpreterState_GetDict(pyo3_ffi::PyInterpreterState_Get());
        if dict.is_null() || pyo3_ffi::PyDict_SetItemString(dict, crate::runtime::queue::QUEUE_TYPE_KEY.as_ptr(), a[0]) < 0 {
            return std::ptr::null_mut();
        }
        args::none()
    }
}

fastcall! {
    /// `_private_api_missing() -> [str]`
    fn private_api_missing(a) {
        if args::count(c"_private_api_missing", a, 0, 0).is_none() { return std::ptr::null_mut(); }
        let list = pyo3_ffi::PyList_New(0);
        for name in ffi_ext::private_api_report() {
            if let Some(s) = pyutil::new_str(name) { pyo3_ffi::PyList_Append(list, s.as_ptr()); }
        }
        list
    }
}

fastcall! {
    /// `_shutdown()`: close every owned interpreter before the runtime finalizes.
    fn shutdown(a) {
        if args::count(c"_shutdown", a, 0, 0).is_none() { return std::ptr::null_mut(); }
        let saved = tstate::detach();
        let alive = crate::runtime::guards::close_all();
        tstate::reattach(saved);
        buffer::release_pending(current_id());
        let list = pyo3_ffi::PyList_New(0);
        for id in alive {
            let n = args::integer(id);
            pyo3_ffi::PyList_Append(list, n);
            pyo3_ffi::Py_DECREF(n);
        }
        list
    }
}

/// Every function, for the method table.
pub const FUNCTIONS: &[(&std::ffi::CStr, Fast, &std::ffi::CStr)] = &[
    (
        c"create",
        create,
        c"Create an owned interpreter; return its id.",
    ),
    (c"destroy", destroy, c"Close an owned interpreter."),
    (c"list_all", list_all, c"(id, whence) of every interpreter."),
    (
        c"get_current",
        get_current,
        c"(id, whence) of the calling interpreter.",
    ),
    (
        c"get_main",
        get_main,
        c"(id, whence) of the main interpreter.",
    ),
    (c"whence", whence, c"Who created the interpreter."),
    (
        c"is_running",
        is_running,
        c"Whether the interpreter runs code in some thread.",
    ),
    (
        c"is_owned",
        is_owned,
        c"Whether subinterp_rs owns the interpreter.",
    ),
    (c"disarm", disarm, c"Leak the interpreter on purpose."),
    (c"incref", incref, c"Take a handle reference."),
    (c"decref", decref, c"Drop a handle reference."),
    (c"exec", exec, c"Run code in the interpreter's __main__."),
    (c"call", call, c"Call a function in the interpreter."),
    (
        c"set_main_attrs",
        set_main_attrs,
        c"Bind shareable values in __main__.",
    ),
    (
        c"is_shareable",
        is_shareable,
        c"Whether an object crosses without pickle.",
    ),
    (
        c"excinfo_of",
        excinfo_of,
        c"Describe an exception as ExcInfo.",
    ),
    (
        c"_register_queue_type",
        register_queue_type,
        c"Register the Queue class.",
    ),
    (
        c"_private_api_missing",
        private_api_missing,
        c"Private CPython entry points missing.",
    ),
    (c"_shutdown", shutdown, c"Close every owned interpreter."),
];
