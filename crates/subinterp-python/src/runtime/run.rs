//! Running code inside an interpreter: entering it from the caller's thread (reusing a cached
//! thread state), and the work done there (`exec`, `call`, `__main__` attributes), whose
//! results leave as plain data.

use std::ffi::CString;

use pyo3_ffi::PyObject;

use crate::runtime::excinfo::ExcInfo;
use crate::runtime::lifecycle::{self, BeginError};
use crate::runtime::xi::{self, Fallback, Value};
use crate::runtime::{buffer, pyutil};
use subinterp_rs::ffi_ext;
use subinterp_rs::owned::Owned;
use subinterp_rs::tstate;

/// What happened inside: plain data, so it can leave the interpreter it was made in.
pub enum Outcome<T> {
    /// It worked.
    Done(T),
    /// An exception escaped (raised in the caller as `ExecutionFailed`).
    Raised(ExcInfo),
    /// The result could not cross back (raised in the caller as `NotShareableError`).
    NotShareable(String),
    /// The callable or an argument crossed but could not be rebuilt inside (its `__reduce__`
    /// raised, its module does not import there): raised in the caller as
    /// `NotShareableError` from the error, as the stdlib's "args not shareable".
    NotRebuilt {
        /// What could not be rebuilt: `"the callable"`, `"argument 2"`, `"keyword argument 'x'"`.
        what: String,
        /// The error inside, chained under the stdlib's `NotShareableError("object could
        /// not be unpickled")`.
        info: ExcInfo,
        /// The error's own one-line text (`"ValueError: bad"`).
        why: String,
    },
    /// The result is too big to cross (raised in the caller as `MemoryError`; the interpreter
    /// stays usable).
    NoMemory(String),
}

/// Runs `work` inside interpreter `id` on this OS thread: the caller's GIL is released and the
/// interpreter's taken, with a thread state of this thread (cached for the next call when the
/// interpreter is ours). `work` must leave no Python error set and return plain data.
///
/// While `work` runs, the interpreter is marked as running its `__main__` (as the stdlib's
/// `exec` does), so it cannot be closed or entered by another run. If its last PEP 734
/// handle went meanwhile, it is closed when `work` returns. Once the process is exiting
/// ([`lifecycle::shut_down`]), a thread other than the exiting one does not return from here:
/// after `work` it parks for good, as daemon threads do when the runtime finalizes.
///
/// # Errors
/// [`BeginError::NotFound`] if no interpreter has that id; [`BeginError::Running`] if it
/// runs already (in another thread, or further up this thread's stack: it is the current
/// interpreter); [`BeginError::Closing`] if it is being closed; [`BeginError::ShutDown`] if
/// the process is exiting. `work` is not called then.
///
/// # Safety
/// A thread state is attached to this thread (the caller's), and no borrowed object of the
/// caller's interpreter is used inside `work`.
pub unsafe fn in_interpreter<T>(id: i64, work: impl FnOnce() -> T) -> Result<T, BeginError> {
    // SAFETY: a thread state is attached (contract).
    let run = unsafe { lifecycle::begin_run(id) }?;
    if run.istate == tstate::attached_interp() {
        // A thread of this interpreter (one it started) runs code in it: in place, as the
        // stdlib does, if nothing else runs its `__main__` (this thread further up its
        // stack, or the run that started the thread).
        // SAFETY: this thread's attached thread state belongs to `run.istate`, whose GIL it
        // holds; `work` runs under it.
        let out = unsafe {
            buffer::release_pending(id);
            if ffi_ext::set_running_main(run.istate) {
                let out = work();
                ffi_ext::set_not_running_main(run.istate);
                Some(out)
            } else {
                None
            }
        };
        // A close asked for meanwhile cannot close the current interpreter: it stays asked
        // for, done when a later run ends elsewhere, or at exit.
        lifecycle::end_run(&run, None);
        return out.ok_or(BeginError::Running);
    }
    // SAFETY: the caller's thread state is attached (contract), detached here and handed
    // over as `enter`'s contract asks.
    unsafe {
        let saved = pyo3_ffi::PyEval_SaveThread();
        enter(&run, saved, work)
    }
}

/// [`in_interpreter`] from a thread whose thread state `saved` is detached already (a worker
/// that waited for work without its GIL): entering one of our interpreters then does not take
/// the caller's GIL first. `saved` is attached again when this returns (also on errors).
///
/// # Errors
/// As [`in_interpreter`].
///
/// # Safety
/// `saved` is this thread's thread state, detached by this thread (none is attached now); no
/// borrowed object of its interpreter is used inside `work`.
pub unsafe fn in_interpreter_detached<T>(
    id: i64,
    saved: *mut pyo3_ffi::PyThreadState,
    work: impl FnOnce() -> T,
) -> Result<T, BeginError> {
    let run = match lifecycle::begin_own_run(id) {
        // SAFETY: reads the interpreter of a thread state of this thread (contract).
        Ok(Some(run)) if unsafe { pyo3_ffi::PyThreadState_GetInterpreter(saved) } != run.istate => {
            run
        }
        other => {
            // Not ours (looked up with a thread state attached), or the caller's own
            // interpreter (run in place): as `in_interpreter` does it.
            if let Ok(Some(run)) = &other {
                // (Its cached thread state, taken by `begin_own_run`, goes back.)
                lifecycle::end_run(run, run.cached);
            }
            // SAFETY: re-attaches the caller's thread state (contract).
            unsafe { pyo3_ffi::PyEval_RestoreThread(saved) };
            other?;
            // SAFETY: the caller's thread state is attached again; `work` as the contract says.
            return unsafe { in_interpreter(id, work) };
        }
    };
    // SAFETY: `saved` is detached (contract), as `enter` asks; `run` is ours, reserved, and
    // not the caller's interpreter.
    unsafe { enter(&run, saved, work) }
}

/// The second half of [`in_interpreter`]: attaches a thread state of this thread for
/// `run.istate`, runs `work`, detaches it and attaches `saved` again; ends the run.
///
/// # Safety
/// `saved` is this thread's thread state, detached (no thread state is attached); `run` was
/// reserved by this thread and `run.istate` is not `saved`'s interpreter running in place.
unsafe fn enter<T>(
    run: &lifecycle::Run,
    saved: *mut pyo3_ffi::PyThreadState,
    work: impl FnOnce() -> T,
) -> Result<T, BeginError> {
    let id = run.id;
    // Only cache thread states on threads that already have a GIL-state thread state, so a
    // cached one is never the thread's GIL-state binding (deleting it from another thread
    // would then corrupt that binding).
    // SAFETY: reads this thread's GIL-state slot, a thread-local; needs no GIL.
    let has_gilstate = unsafe { !pyo3_ffi::PyGILState_GetThisThreadState().is_null() };
    let cacheable = run.ours && (run.cached.is_some() || has_gilstate);
    // SAFETY: `run.istate` is alive: ours are only destroyed when not running (we reserved it),
    // foreign ones belong to their creator (as with the stdlib, using one while its creator
    // destroys it is the caller's race). The caller's thread state `saved` is detached (its
    // GIL released, contract) before `ts`, a thread state of this OS thread for `run.istate`,
    // is attached, and attached again after `ts` is detached or deleted (or, at exit, this
    // thread deletes `ts` and parks for good, holding no GIL).
    unsafe {
        let ts = match run.cached {
            Some(ts) => ts,
            None => tstate::new(run.istate),
        };
        pyo3_ffi::PyEval_RestoreThread(ts);
        buffer::release_pending(id);
        if run.ours {
            tstate::delete_idle(&lifecycle::take_orphans(id));
        }
        let entered = ffi_ext::set_running_main(run.istate);
        let out = if entered {
            let out = work();
            ffi_ext::set_not_running_main(run.istate);
            Some(out)
        } else {
            None
        };
        if lifecycle::is_shut_down()
            && !lifecycle::is_exit_thread()
            && pyo3_ffi::PyThreadState_GetInterpreter(saved) == pyo3_ffi::PyInterpreterState_Main()
        {
            // The process is exiting and the exit hook closes this interpreter: this thread
            // (a daemon thread of main; `threading` joined the others) stops here for good,
            // without going back to main, as daemon threads do when the runtime finalizes. (A
            // thread of another subinterpreter goes back: the hook stops that one's threads.)
            // Its thread state goes first, deleted by its own thread: attaching it made it
            // this thread's GIL-state binding (3.14+), which only this thread may undo.
            tstate::delete_attached(ts);
            lifecycle::end_run(run, None);
            park_forever();
        }
        if cacheable {
            pyo3_ffi::PyEval_SaveThread();
        } else {
            tstate::delete_attached(ts);
        }
        pyo3_ffi::PyEval_RestoreThread(saved);
        let close_now = lifecycle::end_run(run, cacheable.then_some(ts));
        if close_now {
            // Closing waits for the lifecycle lock: never while holding a GIL.
            let caller = tstate::detach();
            let _ = lifecycle::close(id);
            tstate::reattach(caller);
        }
        out.ok_or(BeginError::Running)
    }
}

/// `exec(code)` in interpreter `id` ([`in_interpreter`] + [`exec_in`]).
///
/// # Errors
/// As [`in_interpreter`].
///
/// # Safety
/// As [`in_interpreter`].
pub unsafe fn exec(id: i64, code: &Code) -> Result<Outcome<()>, BeginError> {
    // SAFETY: the caller's contract is `in_interpreter`'s; `exec_in` runs under the target's GIL.
    unsafe { in_interpreter(id, || exec_in(code)) }
}

/// `callable(*args, **kwargs)` in interpreter `id` ([`in_interpreter`] + [`call_in`]).
///
/// # Errors
/// As [`in_interpreter`].
///
/// # Safety
/// As [`in_interpreter`].
pub unsafe fn call(
    id: i64,
    callable: &Value,
    args: &[Value],
    kwargs: &[(String, Value)],
    fallback: Fallback,
) -> Result<Outcome<Value>, BeginError> {
    // SAFETY: the caller's contract is `in_interpreter`'s; `call_in` runs under the target's GIL.
    unsafe { in_interpreter(id, || call_in(callable, args, kwargs, fallback)) }
}

/// Binds `items` in `__main__` of interpreter `id` ([`in_interpreter`] +
/// [`set_main_attrs_in`]).
///
/// # Errors
/// As [`in_interpreter`].
///
/// # Safety
/// As [`in_interpreter`].
pub unsafe fn set_main_attrs(
    id: i64,
    items: &[(String, Value)],
) -> Result<Outcome<()>, BeginError> {
    // SAFETY: the caller's contract is `in_interpreter`'s; the work runs under the target's GIL.
    unsafe { in_interpreter(id, || set_main_attrs_in(items)) }
}

/// Blocks this thread forever, holding no lock and no GIL.
fn park_forever() -> ! {
    loop {
        std::thread::park();
    }
}

/// Source text or a marshalled code object, for `exec`: plain data read in the caller's
/// interpreter and compiled or unmarshalled in the target's.
pub enum Code {
    /// Python source, compiled as `<script>`.
    Source(CString),
    /// `marshal.dumps(code)`.
    Marshalled(Vec<u8>),
}

/// Runs `code` in `__main__` of the current interpreter. Sources are compiled once per
/// interpreter (a cache of up to 256 sources). An uncaught exception is taken and described
/// (nothing stays set).
///
/// # Safety
/// The target interpreter's GIL is held on this thread.
pub unsafe fn exec_in(code: &Code) -> Outcome<()> {
    // SAFETY: caller holds the GIL; every reference is owned and dropped here.
    unsafe {
        let result = (|| {
            let globals = pyutil::main_dict()?;
            let code_obj = match code {
                Code::Source(src) => compile_cached(src)?,
                Code::Marshalled(data) => Owned::from_owned(
                    pyo3_ffi::PyMarshal_ReadObjectFromString(data.as_ptr().cast(), data.len() as _),
                )?,
            };
            Owned::from_owned(pyo3_ffi::PyEval_EvalCode(
                code_obj.as_ptr(),
                globals,
                globals,
            ))
        })();
        match result {
            Some(_) => Outcome::Done(()),
            None => Outcome::Raised(ExcInfo::take_current()),
        }
    }
}

/// Compiled sources kept per interpreter; cleared when it grows past this.
const CODE_CACHE_MAX: isize = 256;

/// Compiles `src` as `<script>`, reusing the code object of an earlier identical source in this
/// interpreter (code objects are immutable, so running one twice is running the source twice).
///
/// # Safety
/// The target interpreter's GIL is held.
unsafe fn compile_cached(src: &CString) -> Option<Owned> {
    // SAFETY: caller holds the GIL; the cache dict lives in this interpreter's state dict.
    unsafe {
        let state = pyo3_ffi::PyInterpreterState_GetDict(pyo3_ffi::PyInterpreterState_Get());
        let compile = || {
            Owned::from_owned(pyo3_ffi::Py_CompileString(
                src.as_ptr(),
                c"<script>".as_ptr(),
                pyo3_ffi::Py_file_input,
            ))
        };
        if state.is_null() {
            return compile();
        }
        let mut cache = pyo3_ffi::PyDict_GetItemString(state, c"subinterp_rs.code_cache".as_ptr());
        if cache.is_null() {
            let fresh = Owned::from_owned(pyo3_ffi::PyDict_New())?;
            if pyo3_ffi::PyDict_SetItemString(
                state,
                c"subinterp_rs.code_cache".as_ptr(),
                fresh.as_ptr(),
            ) < 0
            {
                return None;
            }
            cache = fresh.as_ptr(); // kept alive by the state dict
        }
        let key = Owned::from_owned(pyo3_ffi::PyUnicode_FromString(src.as_ptr()))?;
        let hit = pyo3_ffi::PyDict_GetItemWithError(cache, key.as_ptr());
        if let Some(hit) = std::ptr::NonNull::new(hit) {
            return Some(Owned::from_borrowed(hit));
        }
        if !pyo3_ffi::PyErr_Occurred().is_null() {
            return None;
        }
        let code = compile()?;
        if pyo3_ffi::PyDict_Size(cache) >= CODE_CACHE_MAX {
            pyo3_ffi::PyDict_Clear(cache);
        }
        if pyo3_ffi::PyDict_SetItem(cache, key.as_ptr(), code.as_ptr()) < 0 {
            pyo3_ffi::PyErr_Clear();
        }
        Some(code)
    }
}

/// Why [`call_object`]'s call did not return.
pub enum Failed {
    /// The callable or an argument could not be rebuilt: what it was (the error is set).
    Rebuild(String),
    /// The call raised, or building its arguments failed (the error is set).
    Raised,
}

/// Rebuilds `callable`, `args` and `kwargs` in the current interpreter and calls the callable
/// (builtins from a frame whose globals are `__main__`'s, as the stdlib does).
///
/// # Errors
/// [`Failed`], with the Python error left set.
///
/// # Safety
/// The target interpreter's GIL is held on this thread.
pub unsafe fn call_object(
    callable: &Value,
    args: &[Value],
    kwargs: &[(String, Value)],
) -> Result<Owned, Failed> {
    // SAFETY: caller holds the GIL.
    unsafe {
        let f = xi::from_value(callable).ok_or_else(|| Failed::Rebuild("the callable".into()))?;
        call_with(&f, args, kwargs, true)
    }
}

/// Calls `f` (an object of the current interpreter) with `args` and `kwargs` rebuilt here;
/// with `main_frame`, a callable other than a Python function is called from a frame whose
/// globals are `__main__`'s (as the stdlib's `call` does), else directly.
///
/// # Errors
/// [`Failed`], with the Python error left set.
///
/// # Safety
/// The target interpreter's GIL is held on this thread; `f` is alive.
pub unsafe fn call_with(
    f: &Owned,
    args: &[Value],
    kwargs: &[(String, Value)],
    main_frame: bool,
) -> Result<Owned, Failed> {
    // SAFETY: caller holds the GIL; every reference is owned and dropped here.
    unsafe {
        let rebuild = |v: &Value, what: &dyn Fn() -> String| {
            xi::from_value(v).ok_or_else(|| Failed::Rebuild(what()))
        };
        let args_tuple =
            Owned::from_owned(pyo3_ffi::PyTuple_New(args.len() as _)).ok_or(Failed::Raised)?;
        for (i, a) in args.iter().enumerate() {
            let obj = rebuild(a, &|| format!("argument {}", i + 1))?;
            pyo3_ffi::PyTuple_SetItem(args_tuple.as_ptr(), i as _, obj.into_ptr());
        }
        let kw = if kwargs.is_empty() {
            None
        } else {
            let d = Owned::from_owned(pyo3_ffi::PyDict_New()).ok_or(Failed::Raised)?;
            for (k, v) in kwargs {
                let key = pyutil::new_str(k).ok_or(Failed::Raised)?;
                let obj = rebuild(v, &|| format!("keyword argument {k:?}"))?;
                if pyo3_ffi::PyDict_SetItem(d.as_ptr(), key.as_ptr(), obj.as_ptr()) < 0 {
                    return Err(Failed::Raised);
                }
            }
            Some(d)
        };
        if !main_frame || pyo3_ffi::PyFunction_Check(f.as_ptr()) != 0 {
            // A Python function brings its own frame and globals.
            Owned::from_owned(pyo3_ffi::PyObject_Call(
                f.as_ptr(),
                args_tuple.as_ptr(),
                kw.as_ref().map_or(std::ptr::null_mut(), Owned::as_ptr),
            ))
        } else {
            call_in_main_frame(f, &args_tuple, kw.as_ref())
        }
        .ok_or(Failed::Raised)
    }
}

/// Reads a call's result out as a [`Value`] (as `fallback` allows), or says why it cannot
/// cross. Leaves no error set.
///
/// # Safety
/// The target interpreter's GIL is held; `obj` is alive.
pub unsafe fn result_value(obj: &Owned, fallback: Fallback) -> Outcome<Value> {
    // SAFETY: caller holds the GIL.
    unsafe {
        match xi::to_value(obj.as_ptr(), fallback) {
            Ok(v) => Outcome::Done(v),
            Err(xi::NotShareable(Some(why))) => Outcome::NotShareable(format!("the result: {why}")),
            Err(xi::NotShareable(None)) if xi::memory_error_set() => {
                let why = ExcInfo::take_current();
                Outcome::NoMemory(format!("the result: {}", why.msg))
            }
            Err(xi::NotShareable(None)) => {
                let why = ExcInfo::take_current();
                Outcome::NotShareable(format!(
                    "the result could not be pickled: {}",
                    why.formatted
                ))
            }
        }
    }
}

/// Calls `callable(*args, **kwargs)` in the current interpreter and reads the result out as a
/// [`Value`] (as `fallback` allows). Callables other than Python functions (builtins) are
/// called from a frame whose globals are `__main__`'s, as the stdlib does. Nothing stays set:
/// an exception becomes [`Outcome::Raised`], a result that cannot cross
/// [`Outcome::NotShareable`] (or [`Outcome::NoMemory`]), a callable or argument that cannot
/// be rebuilt here [`Outcome::NotRebuilt`].
///
/// # Safety
/// The target interpreter's GIL is held on this thread.
pub unsafe fn call_in(
    callable: &Value,
    args: &[Value],
    kwargs: &[(String, Value)],
    fallback: Fallback,
) -> Outcome<Value> {
    // SAFETY: caller holds the GIL.
    unsafe {
        match call_object(callable, args, kwargs) {
            Ok(obj) => result_value(&obj, fallback),
            Err(Failed::Rebuild(what)) => {
                let (info, why) = ExcInfo::take_not_rebuilt();
                Outcome::NotRebuilt { what, info, why }
            }
            Err(Failed::Raised) => Outcome::Raised(ExcInfo::take_current()),
        }
    }
}

/// The file name of the one-line frame [`call_in_main_frame`] runs callables from.
const CALL_FRAME_FILE: &std::ffi::CStr = c"<subinterp_rs.call>";

/// Calls a builtin or other non-Python callable from a frame whose globals and locals are
/// `__main__`'s, as the stdlib does: `eval`, `exec`, `dir`, `globals`, `vars` then work on
/// the interpreter's `__main__`. The frame is dropped from tracebacks.
///
/// # Safety
/// The target interpreter's GIL is held.
unsafe fn call_in_main_frame(f: &Owned, args: &Owned, kwargs: Option<&Owned>) -> Option<Owned> {
    const NAME: &std::ffi::CStr = c"__subinterp_rs_call__";
    // SAFETY: caller holds the GIL; the builtins entry lives only during the call.
    unsafe {
        let globals = pyutil::main_dict()?;
        let code = cached_call_code()?;
        let kw = match kwargs {
            Some(k) => Owned::from_borrowed(std::ptr::NonNull::new_unchecked(k.as_ptr())),
            None => Owned::from_owned(pyo3_ffi::PyDict_New())?,
        };
        let packed = Owned::from_owned(pyo3_ffi::PyTuple_Pack(
            3,
            f.as_ptr(),
            args.as_ptr(),
            kw.as_ptr(),
        ))?;
        let builtins = pyo3_ffi::PyEval_GetBuiltins(); // borrowed
        if pyo3_ffi::PyDict_SetItemString(builtins, NAME.as_ptr(), packed.as_ptr()) < 0 {
            return None;
        }
        let result = Owned::from_owned(pyo3_ffi::PyEval_EvalCode(code.as_ptr(), globals, globals));
        let saved = pyo3_ffi::PyErr_GetRaisedException();
        if pyo3_ffi::PyDict_DelItemString(builtins, NAME.as_ptr()) < 0 {
            pyo3_ffi::PyErr_Clear();
        }
        if !saved.is_null() {
            drop_call_frame(saved, code.as_ptr());
            pyo3_ffi::PyErr_SetRaisedException(saved);
        }
        result
    }
}

/// `compile("__subinterp_rs_call__[0](*...[1], **...[2])", "<subinterp_rs.call>", "eval")`,
/// once per interpreter.
///
/// # Safety
/// The target interpreter's GIL is held.
unsafe fn cached_call_code() -> Option<Owned> {
    const KEY: &std::ffi::CStr = c"subinterp_rs.call_code";
    // SAFETY: caller holds the GIL.
    unsafe {
        let state = pyo3_ffi::PyInterpreterState_GetDict(pyo3_ffi::PyInterpreterState_Get());
        if !state.is_null() {
            if let Some(hit) =
                std::ptr::NonNull::new(pyo3_ffi::PyDict_GetItemString(state, KEY.as_ptr()))
            {
                return Some(Owned::from_borrowed(hit));
            }
        }
        let code = Owned::from_owned(pyo3_ffi::Py_CompileString(
            c"__subinterp_rs_call__[0](*__subinterp_rs_call__[1], **__subinterp_rs_call__[2])"
                .as_ptr(),
            CALL_FRAME_FILE.as_ptr(),
            pyo3_ffi::Py_eval_input,
        ))?;
        if !state.is_null()
            && pyo3_ffi::PyDict_SetItemString(state, KEY.as_ptr(), code.as_ptr()) < 0
        {
            pyo3_ffi::PyErr_Clear();
        }
        Some(code)
    }
}

/// Removes the trampoline frame from the front of `exc`'s traceback.
///
/// # Safety
/// The GIL is held; `exc` is an exception instance.
unsafe fn drop_call_frame(exc: *mut PyObject, code: *mut PyObject) {
    // SAFETY: caller holds the GIL; references are owned and dropped here.
    unsafe {
        let Some(tb) = Owned::from_owned(pyo3_ffi::PyException_GetTraceback(exc)) else {
            return;
        };
        let is_ours = pyutil::getattr(tb.as_ptr(), c"tb_frame")
            .and_then(|fr| pyutil::getattr(fr.as_ptr(), c"f_code"))
            .is_some_and(|c| c.as_ptr() == code);
        pyo3_ffi::PyErr_Clear();
        if is_ours {
            if let Some(next) = pyutil::getattr(tb.as_ptr(), c"tb_next") {
                pyo3_ffi::PyException_SetTraceback(exc, next.as_ptr());
            }
            pyo3_ffi::PyErr_Clear();
        }
    }
}

/// Runs `src` in a fresh namespace (not `__main__`), ignoring errors: for our own set-up code.
///
/// # Safety
/// The target interpreter's GIL is held.
pub unsafe fn run_private(src: &std::ffi::CStr) {
    // SAFETY: caller holds the GIL; the namespace is ours and dropped here.
    unsafe {
        if let Some(ns) = Owned::from_owned(pyo3_ffi::PyDict_New()) {
            pyo3_ffi::PyDict_SetItemString(
                ns.as_ptr(),
                c"__builtins__".as_ptr(),
                pyo3_ffi::PyEval_GetBuiltins(),
            );
            let r = pyo3_ffi::PyRun_String(
                src.as_ptr(),
                pyo3_ffi::Py_file_input,
                ns.as_ptr(),
                ns.as_ptr(),
            );
            drop(Owned::from_owned(r));
        }
        pyo3_ffi::PyErr_Clear();
    }
}

/// Runs a code object marshalled by this same CPython (`marshal.dumps(compile(...))` in the
/// caller) in a fresh namespace (not `__main__`): our set-up code, unmarshalled in the new
/// interpreter instead of compiled there again. The error, as `Type: message`, if it raised.
///
/// # Safety
/// The target interpreter's GIL is held.
pub unsafe fn run_marshalled(code: &[u8]) -> Result<(), String> {
    let Ok(len) = pyo3_ffi::Py_ssize_t::try_from(code.len()) else {
        return Err("set-up code too large".to_owned());
    };
    // SAFETY: caller holds the GIL; every object is owned here and dropped before returning.
    unsafe {
        let ran = (|| {
            let code = Owned::from_owned(pyo3_ffi::PyMarshal_ReadObjectFromString(
                code.as_ptr().cast(),
                len,
            ))?;
            if pyo3_ffi::PyCode_Check(code.as_ptr()) == 0 {
                pyo3_ffi::PyErr_SetString(
                    pyo3_ffi::PyExc_TypeError,
                    c"set-up code is not a marshalled code object".as_ptr(),
                );
                return None;
            }
            let ns = Owned::from_owned(pyo3_ffi::PyDict_New())?;
            if pyo3_ffi::PyDict_SetItemString(
                ns.as_ptr(),
                c"__builtins__".as_ptr(),
                pyo3_ffi::PyEval_GetBuiltins(),
            ) < 0
            {
                return None;
            }
            Owned::from_owned(pyo3_ffi::PyEval_EvalCode(
                code.as_ptr(),
                ns.as_ptr(),
                ns.as_ptr(),
            ))
        })();
        if ran.is_some() {
            return Ok(());
        }
        match Owned::from_owned(pyo3_ffi::PyErr_GetRaisedException()) {
            Some(exc) => Err(format!(
                "{}: {}",
                pyutil::type_name(exc.as_ptr()),
                pyutil::display(exc.as_ptr())
            )),
            None => Err("set-up code failed without an exception".to_owned()),
        }
    }
}

/// Binds `items` into `__main__` of the current interpreter. An error (while rebuilding a
/// value) becomes [`Outcome::Raised`].
///
/// # Safety
/// The target interpreter's GIL is held on this thread.
pub unsafe fn set_main_attrs_in(items: &[(String, Value)]) -> Outcome<()> {
    // SAFETY: caller holds the GIL.
    unsafe {
        let result = (|| {
            let globals = pyutil::main_dict()?;
            for (k, v) in items {
                let key = pyutil::new_str(k)?;
                let obj = xi::from_value(v)?;
                if pyo3_ffi::PyDict_SetItem(globals, key.as_ptr(), obj.as_ptr()) < 0 {
                    return None;
                }
            }
            Some(())
        })();
        match result {
            Some(()) => Outcome::Done(()),
            None => Outcome::Raised(ExcInfo::take_current()),
        }
    }
}

/// Marshals the code of a function without arguments, or a code object, for `exec`. A
/// function with arguments or a closure raises `ValueError`, another object `TypeError`.
///
/// # Safety
/// The caller's GIL is held; `obj` is alive. On `None` a Python error is set.
pub unsafe fn marshal_code(obj: *mut PyObject) -> Option<Vec<u8>> {
    // SAFETY: caller holds the GIL.
    unsafe {
        let code = if pyo3_ffi::PyFunction_Check(obj) != 0 {
            let code = pyutil::getattr(obj, c"__code__")?;
            for attr in [c"co_argcount", c"co_kwonlyargcount", c"co_posonlyargcount"] {
                let n = pyutil::getattr(code.as_ptr(), attr)?;
                if pyo3_ffi::PyLong_AsLong(n.as_ptr()) != 0 {
                    pyo3_ffi::PyErr_SetString(
                        pyo3_ffi::PyExc_ValueError,
                        c"a function passed to exec() must take no arguments".as_ptr(),
                    );
                    return None;
                }
            }
            let flags = pyutil::getattr(code.as_ptr(), c"co_flags")?;
            // CO_VARARGS | CO_VARKEYWORDS
            if pyo3_ffi::PyLong_AsLong(flags.as_ptr()) & (0x04 | 0x08) != 0 {
                pyo3_ffi::PyErr_SetString(
                    pyo3_ffi::PyExc_ValueError,
                    c"a function passed to exec() must take no arguments".as_ptr(),
                );
                return None;
            }
            let closure = pyutil::getattr(obj, c"__closure__")?;
            if closure.as_ptr() != pyo3_ffi::Py_None() {
                pyo3_ffi::PyErr_SetString(
                    pyo3_ffi::PyExc_ValueError,
                    c"a closure cannot be passed to exec(); use call()".as_ptr(),
                );
                return None;
            }
            code
        } else if pyo3_ffi::PyCode_Check(obj) != 0 {
            Owned::from_borrowed(std::ptr::NonNull::new_unchecked(obj))
        } else {
            pyo3_ffi::PyErr_Format(
                pyo3_ffi::PyExc_TypeError,
                c"exec() needs source (str), a code object or a function, not %.200s".as_ptr(),
                (*pyo3_ffi::Py_TYPE(obj)).tp_name,
            );
            return None;
        };
        let data = Owned::from_owned(pyo3_ffi::PyMarshal_WriteObjectToString(code.as_ptr(), 4))?;
        let ptr = pyo3_ffi::PyBytes_AsString(data.as_ptr()).cast::<u8>();
        let len = pyo3_ffi::PyBytes_Size(data.as_ptr()) as usize;
        Some(std::slice::from_raw_parts(ptr, len).to_vec())
    }
}

/// The current interpreter's `sys.path` entries that are `str` (for a new interpreter's).
///
/// # Safety
/// The current interpreter's GIL is held.
pub unsafe fn sys_path() -> Option<Vec<String>> {
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

/// `sys.path[:] = paths` in the current interpreter (errors cleared).
///
/// # Safety
/// The current interpreter's GIL is held.
pub unsafe fn set_sys_path(paths: &[String]) {
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
