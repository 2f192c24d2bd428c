//! The interpreter functions of `_native`: bind and convert arguments, one call into the
//! runtime, convert the result back.

use std::ffi::CString;

use pyo3_ffi::{PyObject, Py_ssize_t};

use super::raise::{self, Exc};
use super::{args, native_functions};
use crate::runtime::excinfo::ExcInfo;
use crate::runtime::frames;
use crate::runtime::lifecycle::{self, BeginError, CreateError, DestroyError, NotFound};
use crate::runtime::run::{self, Code, Outcome};
use crate::runtime::xi::{self, Fallback, Value};
use crate::runtime::{guards, pyutil};
use subinterp_rs::owned::Owned;
use subinterp_rs::{ffi_ext, Config, Error, Gil};

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
pub(super) unsafe fn begin_error(id: i64, e: BeginError) -> *mut PyObject {
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
/// `ExecutionFailed` or `NotShareableError` raised (from an `ExecutionFailed` that describes
/// the error inside, when the callable or an argument could not be rebuilt there). The
/// caller's GIL is held.
pub(super) unsafe fn outcome<T>(
    out: Outcome<T>,
    ok: impl FnOnce(T) -> *mut PyObject,
) -> *mut PyObject {
    // SAFETY: the GIL is held (the caller's, back again).
    unsafe {
        match out {
            Outcome::Done(v) => ok(v),
            Outcome::Raised(info) => raise::execution_failed(&info),
            Outcome::NotShareable(msg) => raise::raise(Exc::NotShareable, &msg),
            Outcome::NotRebuilt { what, info, why } => {
                // The stdlib's words first ("func/args not shareable": its executor sends a
                // task's callable with the arguments, so "args"), then which and why.
                let kind = if what == "the callable" {
                    "func"
                } else {
                    "args"
                };
                raise::execution_failed(&info);
                raise::raise_from_current(
                    Exc::NotShareable,
                    &format!(
                        "{kind} not shareable: {what} could not be rebuilt inside the \
                         interpreter ({why})"
                    ),
                )
            }
            Outcome::NoMemory(msg) => {
                args::set_error(pyo3_ffi::PyExc_MemoryError, &msg);
                std::ptr::null_mut()
            }
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

/// Raises `InterpreterNotFoundError` for `id`; returns null.
unsafe fn not_found(id: i64) -> *mut PyObject {
    // SAFETY: the GIL is held.
    unsafe { raise::raise(Exc::NotFound, &format!("interpreter {id} not found")) }
}

/// An id argument, or `None` with `TypeError` set.
unsafe fn id_arg(obj: *mut PyObject) -> Option<i64> {
    // SAFETY: the GIL is held; `obj` is a bound argument.
    unsafe { args::id(obj) }
}

/// A new list of `(id, whence)` tuples (null with an error set on failure).
unsafe fn id_whence_list(all: &[(i64, i64)]) -> *mut PyObject {
    // SAFETY: the GIL is held; references are owned and handed over as documented.
    unsafe {
        let list = pyo3_ffi::PyList_New(0);
        if list.is_null() {
            return list;
        }
        for &(id, w) in all {
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

/// The config of a `create` call, or `None` with `TypeError`/`ValueError` set.
unsafe fn config_arg(flags: [*mut PyObject; 6], gil: *mut PyObject) -> Option<Config> {
    // SAFETY: the GIL is held; the arguments are bound ones.
    unsafe {
        let mut f = [false; 6];
        for (out, &obj) in f.iter_mut().zip(&flags) {
            *out = args::truth(obj)?;
        }
        let gil_name = pyutil::str_to_string(gil)?;
        let Some(gil) = Gil::from_name(&gil_name) else {
            args::set_error(
                pyo3_ffi::PyExc_ValueError,
                &format!("gil must be 'default', 'shared' or 'own', got {gil_name:?}"),
            );
            return None;
        };
        let cfg = Config {
            use_main_obmalloc: f[0],
            allow_fork: f[1],
            allow_exec: f[2],
            allow_threads: f[3],
            allow_daemon_threads: f[4],
            check_multi_interp_extensions: f[5],
            gil,
        };
        if let Err(e) = cfg.validate() {
            args::set_error(pyo3_ffi::PyExc_ValueError, &e.to_string());
            return None;
        }
        Some(cfg)
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
        DestroyError::IsCurrent | DestroyError::Core(Error::IsCurrent) => {
            (Exc::Interpreter, format!("cannot close interpreter {id}: it is the current interpreter"))
        }
        DestroyError::IsMain => (Exc::Interpreter, "the main interpreter cannot be closed".to_owned()),
        DestroyError::Foreign => (Exc::Interpreter, format!(
            "interpreter {id} was not created by subinterp_rs; close it with the API that created it")),
        DestroyError::Core(other) => (Exc::Interpreter, format!("cannot close interpreter {id}: {other}")),
        DestroyError::Refused(why) => (Exc::Interpreter, format!("cannot close interpreter {id}: {why}")),
        DestroyError::ShutDown => (
            Exc::Interpreter,
            format!("cannot close interpreter {id} at interpreter shutdown: the exit hook closes it"),
        ),
    }
}

native_functions! {
    /// Create an owned interpreter; return its id. `setup`: a marshalled code object run in
    /// it (a namespace of its own) before anything else can use it.
    fn create(
        use_main_obmalloc, allow_fork, allow_exec, allow_threads, allow_daemon_threads,
        check_multi_interp_extensions, gil, whence; setup = "None"
    ) {
        let flags = [use_main_obmalloc, allow_fork, allow_exec, allow_threads,
            allow_daemon_threads, check_multi_interp_extensions];
        let Some(cfg) = config_arg(flags, gil) else { return std::ptr::null_mut() };
        let Some(w) = args::int(whence, "whence") else { return std::ptr::null_mut() };
        let Some(setup) = args::bytes_or_none(setup, "setup") else { return std::ptr::null_mut() };
        match lifecycle::create(&cfg, w, setup.as_deref()) {
            Ok(id) => args::integer(id),
            Err(CreateError::Core(e)) => raise::raise(Exc::Interpreter, &e.to_string()),
            Err(CreateError::ShutDown) => raise::raise(
                Exc::Interpreter,
                "cannot create a subinterpreter at interpreter shutdown",
            ),
            Err(CreateError::Setup(why)) => raise::raise(
                Exc::Interpreter,
                &format!("the new interpreter's set-up failed: {why}"),
            ),
        }
    }

    /// Close an owned interpreter.
    fn destroy(id) {
        let Some(id) = id_arg(id) else { return std::ptr::null_mut() };
        match lifecycle::destroy(id) {
            Ok(()) => args::none(),
            Err(e) => { let (kind, msg) = destroy_message(id, &e); raise::raise(kind, &msg) }
        }
    }

    /// sys._current_frames() over the calling interpreter's threads only.
    fn current_frames() {
        frames::current(frames::Collect::Frames).map_or(std::ptr::null_mut(), Owned::into_ptr)
    }

    /// sys._current_exceptions() over the calling interpreter's threads only.
    fn current_exceptions() {
        frames::current(frames::Collect::Exceptions).map_or(std::ptr::null_mut(), Owned::into_ptr)
    }

    /// (id, whence) of every interpreter.
    fn list_all() {
        id_whence_list(&lifecycle::list_all())
    }

    /// (id, whence) of the calling interpreter.
    fn get_current() {
        let (id, w) = lifecycle::current();
        id_whence_tuple(id, w)
    }

    /// (id, whence) of the main interpreter.
    fn get_main() {
        id_whence_tuple(lifecycle::main_id(), lifecycle::whence::RUNTIME)
    }

    /// Who created the interpreter.
    fn whence(id) {
        let Some(id) = id_arg(id) else { return std::ptr::null_mut() };
        match lifecycle::whence(id) {
            Ok(w) => args::integer(w),
            Err(NotFound) => not_found(id),
        }
    }

    /// Whether the interpreter runs code in some thread.
    fn is_running(id) {
        let Some(id) = id_arg(id) else { return std::ptr::null_mut() };
        match lifecycle::is_running(id) {
            Ok(running) => args::boolean(running),
            Err(NotFound) => not_found(id),
        }
    }

    /// Whether subinterp_rs owns the interpreter.
    fn is_owned(id) {
        let Some(id) = id_arg(id) else { return std::ptr::null_mut() };
        args::boolean(lifecycle::is_owned(id))
    }

    /// Leak the interpreter on purpose.
    fn disarm(id) {
        let Some(id) = id_arg(id) else { return std::ptr::null_mut() };
        match lifecycle::disarm(id) {
            Ok(()) => args::none(),
            Err(e) => { let (kind, msg) = destroy_message(id, &e); raise::raise(kind, &msg) }
        }
    }

    /// Take a handle reference.
    fn incref(id) {
        let Some(id) = id_arg(id) else { return std::ptr::null_mut() };
        match lifecycle::incref(id) {
            Ok(()) => args::none(),
            Err(NotFound) => not_found(id),
        }
    }

    /// Drop a handle reference; at zero an interpreter made by the facade is closed, now or when it can be.
    fn decref(id) {
        let Some(id) = id_arg(id) else { return std::ptr::null_mut() };
        lifecycle::decref(id);
        args::none()
    }

    /// The owning Subinterpreter handle went without close(): close it now or when it can be.
    fn release_owner(id) {
        let Some(id) = id_arg(id) else { return std::ptr::null_mut() };
        lifecycle::release_owner(id);
        args::none()
    }

    /// Run code in the interpreter's __main__.
    fn exec(id, code) {
        let Some(id) = id_arg(id) else { return std::ptr::null_mut() };
        let code = if pyo3_ffi::PyUnicode_Check(code) != 0 {
            let Some(src) = pyutil::str_to_string(code) else { return std::ptr::null_mut() };
            let Ok(c) = CString::new(src) else {
                args::set_error(pyo3_ffi::PyExc_ValueError, "source code cannot contain null bytes");
                return std::ptr::null_mut();
            };
            Code::Source(c)
        } else {
            let Some(data) = run::marshal_code(code) else { return std::ptr::null_mut() };
            Code::Marshalled(data)
        };
        match run::exec(id, &code) {
            Ok(out) => outcome(out, |()| args::none()),
            Err(e) => begin_error(id, e),
        }
    }

    /// Call a function in the interpreter.
    fn call(id, callable, args, kwargs; closures = "False") {
        let Some(id) = id_arg(id) else { return std::ptr::null_mut() };
        let Some(closures) = args::truth_or(closures, false) else { return std::ptr::null_mut() };
        let fallback = if closures { Fallback::PickleClosures } else { Fallback::Pickle };
        if pyo3_ffi::PyCallable_Check(callable) == 0 {
            args::set_error(pyo3_ffi::PyExc_TypeError,
                &format!("{} object is not callable", pyutil::type_name(callable)));
            return std::ptr::null_mut();
        }
        let callable = match xi::to_value(callable, fallback) {
            Ok(v) => v,
            Err(e) => return not_shareable("callable", &e),
        };
        if pyo3_ffi::PyTuple_Check(args) == 0 {
            args::set_error(pyo3_ffi::PyExc_TypeError, "args must be a tuple");
            return std::ptr::null_mut();
        }
        let mut values = Vec::new();
        for i in 0..pyo3_ffi::PyTuple_Size(args) {
            match xi::to_value(pyo3_ffi::PyTuple_GetItem(args, i), fallback) {
                Ok(v) => values.push(v),
                Err(e) => return not_shareable(&format!("argument {}", i + 1), &e),
            }
        }
        let Some(kwargs) = namespace(kwargs, fallback) else { return std::ptr::null_mut() };
        match run::call(id, &callable, &values, &kwargs, fallback) {
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

    /// Bind shareable values in __main__.
    fn set_main_attrs(id, ns) {
        let Some(id) = id_arg(id) else { return std::ptr::null_mut() };
        let Some(items) = namespace(ns, Fallback::SharedOnly) else { return std::ptr::null_mut() };
        match run::set_main_attrs(id, &items) {
            Ok(out) => outcome(out, |()| args::none()),
            Err(e) => begin_error(id, e),
        }
    }

    /// Whether an object crosses without pickle.
    fn is_shareable(obj) {
        args::boolean(xi::is_shareable(obj))
    }

    /// Set the largest crossing encoding (bytes; -1 as memory allows); return the old bound.
    fn _set_crossing_max_bytes(n) {
        let Some(n) = args::int(n, "n") else { return std::ptr::null_mut() };
        let old = xi::data::set_max_bytes(usize::try_from(n).unwrap_or(usize::MAX));
        args::integer(i64::try_from(old).unwrap_or(-1))
    }

    /// Describe an exception as ExcInfo.
    fn excinfo_of(exc) {
        if pyo3_ffi::PyExceptionInstance_Check(exc) == 0 {
            args::set_error(pyo3_ffi::PyExc_TypeError, "expected an exception instance");
            return std::ptr::null_mut();
        }
        ExcInfo::describe(exc).to_python().map_or(std::ptr::null_mut(), Owned::into_ptr)
    }

    /// Register the Queue class.
    fn _register_queue_type(cls) {
        if pyo3_ffi::PyType_Check(cls) == 0 {
            args::set_error(pyo3_ffi::PyExc_TypeError, "expected a class");
            return std::ptr::null_mut();
        }
        if crate::runtime::queue::register_queue_type(cls) { args::none() } else { std::ptr::null_mut() }
    }

    /// Private CPython entry points missing.
    fn _private_api_missing() {
        let list = pyo3_ffi::PyList_New(0);
        for name in ffi_ext::private_api_report() {
            if let Some(s) = pyutil::new_str(name) { pyo3_ffi::PyList_Append(list, s.as_ptr()); }
        }
        list
    }

    /// Close every owned interpreter (the exit hook).
    fn _shutdown() {
        let alive = guards::exit_hook();
        let list = pyo3_ffi::PyList_New(0);
        for id in alive {
            let n = args::integer(id);
            pyo3_ffi::PyList_Append(list, n);
            pyo3_ffi::Py_DECREF(n);
        }
        list
    }
}
