//! CPython entry points that pyo3-ffi does not declare because they are private.
//!
//! They are exported by every CPython 3.12-3.15 we support (`PyAPI_FUNC`, so on Windows too),
//! but private names can move between releases, so each is looked up once at run time (`dlsym`
//! on Unix, `GetProcAddress` in the Python DLL on Windows): a missing one degrades the feature
//! that uses it (and is reported by [`private_api_report`]), it never fails the import.

use std::ffi::{c_int, c_long, c_void, CStr};
use std::sync::OnceLock;

use pyo3_ffi::{PyInterpreterState, PyObject, Py_ssize_t};

type InterpFn = unsafe extern "C" fn(*mut PyInterpreterState) -> c_int;
type InterpVoidFn = unsafe extern "C" fn(*mut PyInterpreterState);
type WhenceFn = unsafe extern "C" fn(*mut PyInterpreterState) -> c_long;
type LookUpIdFn = unsafe extern "C" fn(i64) -> *mut PyInterpreterState;
type FinalizingFn = unsafe extern "C" fn() -> c_int;
type NewPresizedFn = unsafe extern "C" fn(Py_ssize_t) -> *mut PyObject;
type FromItemsFn = unsafe extern "C" fn(
    *const *mut PyObject,
    Py_ssize_t,
    *const *mut PyObject,
    Py_ssize_t,
    Py_ssize_t,
) -> *mut PyObject;

/// The private functions we use, each `None` when this CPython does not export it.
struct Private {
    set_running_main: Option<InterpFn>,
    set_not_running_main: Option<InterpVoidFn>,
    is_running_main: Option<InterpFn>,
    get_whence: Option<WhenceFn>,
    look_up_id: Option<LookUpIdFn>,
    is_finalizing: Option<FinalizingFn>,
    dict_new_presized: Option<NewPresizedFn>,
    dict_from_items: Option<FromItemsFn>,
}

/// The address of the exported symbol `name` of the running CPython, or null.
#[cfg(unix)]
fn symbol(name: &CStr) -> *mut c_void {
    // SAFETY: dlsym with RTLD_DEFAULT only reads the loaded objects' symbol tables (libpython,
    // or the executable it is linked into, on Linux and macOS alike); the name is a valid
    // NUL-terminated string. Needs no Python thread state.
    unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) }
}

/// The address of the exported symbol `name` of the running CPython, or null: looked up in the
/// DLL (`python3XY.dll`, `python3XYt.dll`, `python3XY_d.dll`) that holds `PyExc_TypeError`'s
/// type object, so no DLL name is guessed.
#[cfg(windows)]
fn symbol(name: &CStr) -> *mut c_void {
    use std::ffi::c_char;
    #[link(name = "kernel32")]
    extern "system" {
        fn GetModuleHandleExW(flags: u32, name: *const u16, module: *mut *mut c_void) -> i32;
        fn GetProcAddress(module: *mut c_void, name: *const c_char) -> *mut c_void;
    }
    const FROM_ADDRESS: u32 = 0x4; // GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS
    const UNCHANGED_REFCOUNT: u32 = 0x2; // GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT
    let mut dll: *mut c_void = std::ptr::null_mut();
    // SAFETY: `PyExc_TypeError` is a data export of the Python DLL, set when the DLL loaded
    // (to a static type object inside it); reading the pointer needs no thread state. The
    // DLL stays loaded for the process's life, so not counting a reference is sound;
    // GetProcAddress only reads its export table.
    unsafe {
        let inside = pyo3_ffi::PyExc_TypeError.cast::<u16>().cast_const();
        if GetModuleHandleExW(FROM_ADDRESS | UNCHANGED_REFCOUNT, inside, &raw mut dll) == 0 {
            return std::ptr::null_mut();
        }
        GetProcAddress(dll, name.as_ptr())
    }
}

macro_rules! resolve {
    ($name:literal as $ty:ty) => {{
        let ptr = symbol($name);
        if ptr.is_null() {
            None
        } else {
            // SAFETY: the symbol is the CPython function of that name, whose C signature is
            // the one `$ty` spells (checked against the 3.12-3.15 headers). Only a pointer is
            // cast here: no Python call, so no thread state is involved.
            Some(unsafe { std::mem::transmute::<*mut c_void, $ty>(ptr) })
        }
    }};
}

fn private() -> &'static Private {
    static PRIVATE: OnceLock<Private> = OnceLock::new();
    PRIVATE.get_or_init(|| Private {
        set_running_main: resolve!(c"_PyInterpreterState_SetRunningMain" as InterpFn),
        set_not_running_main: resolve!(c"_PyInterpreterState_SetNotRunningMain" as InterpVoidFn),
        is_running_main: resolve!(c"_PyInterpreterState_IsRunningMain" as InterpFn),
        get_whence: resolve!(c"_PyInterpreterState_GetWhence" as WhenceFn),
        look_up_id: resolve!(c"_PyInterpreterState_LookUpID" as LookUpIdFn),
        is_finalizing: resolve!(c"Py_IsFinalizing" as FinalizingFn)
            .or_else(|| resolve!(c"_Py_IsFinalizing" as FinalizingFn)),
        dict_new_presized: resolve!(c"_PyDict_NewPresized" as NewPresizedFn),
        dict_from_items: resolve!(c"_PyDict_FromItems" as FromItemsFn),
    })
}

/// A new empty `dict` sized for `n` items (`_PyDict_NewPresized`; `PyDict_New` without it).
/// Null with an error set on failure.
///
/// # Safety
/// The current interpreter's GIL is held.
pub unsafe fn dict_new_presized(n: Py_ssize_t) -> *mut PyObject {
    // SAFETY: the GIL is held (contract); both return a new reference or null.
    unsafe {
        match private().dict_new_presized {
            Some(f) => f(n),
            None => pyo3_ffi::PyDict_New(),
        }
    }
}

/// A new `dict` of `n` pairs, `items` holding key, value, key, value, ... (borrowed), as
/// CPython's own `BUILD_MAP` makes it (`_PyDict_FromItems`: sized once, with the compact
/// table of str keys when all keys are `str`); `PyDict_New` and `PyDict_SetItem` without it
/// (3.12). Null with an error set on failure.
///
/// # Safety
/// The current interpreter's GIL is held; `items` holds `2 * n` live objects, the keys
/// hashable.
pub unsafe fn dict_from_items(items: &[*mut PyObject]) -> *mut PyObject {
    let n = (items.len() / 2) as Py_ssize_t;
    // SAFETY: the GIL is held and `items` valid (contract); neither path steals a reference:
    // `_PyDict_FromItems` reads `n` keys at `items[0], items[2], ...` and values at
    // `items[1], items[3], ...`.
    unsafe {
        if let Some(f) = private().dict_from_items {
            let base = items.as_ptr();
            return f(base, 2, base.add(1), 2, n);
        }
        let d = pyo3_ffi::PyDict_New();
        if d.is_null() {
            return d;
        }
        for pair in items.chunks_exact(2) {
            if pyo3_ffi::PyDict_SetItem(d, pair[0], pair[1]) < 0 {
                pyo3_ffi::Py_DECREF(d);
                return std::ptr::null_mut();
            }
        }
        d
    }
}

/// Marks `interp` as running its `__main__` in the current thread (the stdlib's notion of
/// "running", so `concurrent.interpreters` sees our runs and refuses to destroy them).
///
/// Returns `false` when the interpreter already runs in some thread; the Python error that
/// CPython set is cleared.
///
/// # Safety
/// The current thread state must be attached and belong to `interp` (its GIL is held).
pub unsafe fn set_running_main(interp: *mut PyInterpreterState) -> bool {
    match private().set_running_main {
        // SAFETY: the caller holds `interp`'s GIL through a thread state of `interp`.
        Some(f) => unsafe {
            if f(interp) < 0 {
                pyo3_ffi::PyErr_Clear();
                false
            } else {
                true
            }
        },
        None => true,
    }
}

/// Undoes [`set_running_main`].
///
/// # Safety
/// As for [`set_running_main`], and only after it returned `true` on this thread.
pub unsafe fn set_not_running_main(interp: *mut PyInterpreterState) {
    if let Some(f) = private().set_not_running_main {
        // SAFETY: the caller holds `interp`'s GIL and set it running on this thread.
        unsafe { f(interp) }
    }
}

/// Whether some thread runs `interp`'s `__main__` (ours or the stdlib's `exec`/`call`).
///
/// # Safety
/// `interp` must be alive. No GIL is needed: CPython reads one pointer field.
pub unsafe fn is_running_main(interp: *mut PyInterpreterState) -> bool {
    match private().is_running_main {
        // SAFETY: `interp` is alive (caller's contract); the function only reads a field, so
        // it needs no GIL.
        Some(f) => unsafe { f(interp) != 0 },
        None => false,
    }
}

/// CPython's record of who created `interp` (`_PyInterpreterState_WHENCE_*`), 3.13+.
///
/// # Safety
/// `interp` must be alive. No GIL is needed.
pub unsafe fn whence(interp: *mut PyInterpreterState) -> Option<c_long> {
    // SAFETY: `interp` is alive (caller's contract); the function only reads a field, so it
    // needs no GIL.
    private().get_whence.map(|f| unsafe { f(interp) })
}

/// Looks an interpreter up by id under CPython's runtime lock. `None` when it does not exist.
///
/// # Safety
/// Any thread state (or none) may be current. A Python error set by a failed look-up is
/// cleared, which needs an attached thread state: call it with one.
pub unsafe fn look_up_id(id: i64) -> Option<*mut PyInterpreterState> {
    if let Some(f) = private().look_up_id {
        // SAFETY: takes the runtime's HEAD lock itself; an attached tstate exists (contract).
        let interp = unsafe { f(id) };
        if interp.is_null() {
            // SAFETY: as above, an attached thread state exists to hold the error.
            unsafe { pyo3_ffi::PyErr_Clear() };
            None
        } else {
            Some(interp)
        }
    } else {
        // SAFETY: Head/Next/GetID read runtime fields and need no GIL. Walking the list
        // without the HEAD lock races only with concurrent creation or destruction, which our
        // owner (a binding's registry) must serialise with closes.
        unsafe {
            let mut interp = pyo3_ffi::PyInterpreterState_Head();
            while !interp.is_null() {
                if pyo3_ffi::PyInterpreterState_GetID(interp) == id {
                    return Some(interp);
                }
                interp = pyo3_ffi::PyInterpreterState_Next(interp);
            }
        }
        None
    }
}

/// Whether the runtime is finalizing (`Py_IsFinalizing`, `_Py_IsFinalizing` on 3.12).
pub fn is_finalizing() -> bool {
    // SAFETY: reads one atomic field of the runtime; needs no thread state.
    private().is_finalizing.is_some_and(|f| unsafe { f() != 0 })
}

/// Which private entry points this CPython lacks (empty on every supported release). Needs no
/// GIL. The dict builders (`_PyDict_NewPresized`, `_PyDict_FromItems`, which 3.12 lacks) are
/// only speed-ups and not reported.
pub fn private_api_report() -> Vec<&'static str> {
    let p = private();
    let mut missing = Vec::new();
    if p.set_running_main.is_none() {
        missing.push("_PyInterpreterState_SetRunningMain");
    }
    if p.set_not_running_main.is_none() {
        missing.push("_PyInterpreterState_SetNotRunningMain");
    }
    if p.is_running_main.is_none() {
        missing.push("_PyInterpreterState_IsRunningMain");
    }
    if p.get_whence.is_none() {
        missing.push("_PyInterpreterState_GetWhence");
    }
    if p.look_up_id.is_none() {
        missing.push("_PyInterpreterState_LookUpID");
    }
    if p.is_finalizing.is_none() {
        missing.push("Py_IsFinalizing");
    }

    missing
}
