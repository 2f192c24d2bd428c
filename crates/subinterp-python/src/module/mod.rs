//! `subinterp_rs._native`: one pyo3-ffi multi-phase module that every interpreter imports.
//!
//! It declares `Py_mod_multiple_interpreters = Py_MOD_PER_INTERPRETER_GIL_SUPPORTED`: it has
//! no per-module Python state at all (per-interpreter caches live in each interpreter's state
//! dict, process-wide state in Rust), so isolated interpreters can import it. On 3.13+ it also
//! declares `Py_mod_gil = Py_MOD_GIL_USED` (see `SLOTS`). Functions only, keyed by ids; the
//! Python package wraps them in classes (only `subinterp_rs._native_api` calls them, by
//! keyword).
//!
//! Each function is thin: bind and convert its arguments, make one call into the runtime,
//! convert the result (or raise the runtime's error with its message).

mod args;
mod executor_fns;
mod interp_fns;
mod queue_fns;
mod raise;
mod shared_dict_fns;

use std::ffi::{c_int, c_void, CStr};
use std::ptr;
use std::sync::OnceLock;

use pyo3_ffi::{PyMethodDef, PyMethodDefPointer, PyModuleDef, PyModuleDef_Slot, PyObject};

use crate::runtime::lifecycle::whence;
use crate::runtime::queue::{UNBOUND_ERROR, UNBOUND_REMOVE, UNBOUND_REPLACE};

/// One module function, as [`native_functions!`] declares it: what the method table needs.
pub struct Function {
    /// The Python name.
    name: &'static CStr,
    /// The `METH_FASTCALL | METH_KEYWORDS` C function.
    meth: pyo3_ffi::PyCFunctionFastWithKeywords,
    /// `__doc__`, starting with the text signature (`name($module, a, b=...)\n--\n\n`),
    /// from which CPython makes `__text_signature__` (and stubtest checks the stub).
    doc: &'static CStr,
}

/// A NUL-terminated literal as a `CStr`, at compile time.
const fn cstr(s: &'static str) -> &'static CStr {
    match CStr::from_bytes_with_nul(s.as_bytes()) {
        Ok(c) => c,
        Err(_) => panic!("not a NUL-terminated string without inner NULs"),
    }
}

/// Declares module functions and their table.
///
/// ```text
/// native_functions! {
///     /// Doc (the Python `__doc__`).
///     fn name(required, ...; optional = "python default", ...) { body }
///     ...
/// }
/// ```
///
/// Each becomes a `METH_FASTCALL | METH_KEYWORDS` function that takes its parameters
/// positionally or by keyword (bound by [`args::bind`]); the body sees each parameter as a
/// borrowed `*mut PyObject` (null for an optional one not given), runs with the caller's GIL
/// held, and returns a new reference or null with an exception set. Buffers of the calling
/// interpreter dropped elsewhere are released first. The invocation also defines
/// `FUNCTIONS`, the entries of the method table, with text signatures.
macro_rules! native_functions {
    ($(
        $(#[doc = $doc:literal])+
        fn $name:ident($($req:ident),* $(; $($opt:ident = $default:literal),+)?) $body:block
    )+) => {
        $(
            $(#[doc = $doc])+
            unsafe extern "C" fn $name(
                _module: *mut pyo3_ffi::PyObject,
                args: *const *mut pyo3_ffi::PyObject,
                nargs: pyo3_ffi::Py_ssize_t,
                kwnames: *mut pyo3_ffi::PyObject,
            ) -> *mut pyo3_ffi::PyObject {
                const NAMES: &[&std::ffi::CStr; native_functions!(@count $($req)* $($($opt)+)?)] =
                    &[$($crate::module::cstr(concat!(stringify!($req), "\0")),)*
                      $($($crate::module::cstr(concat!(stringify!($opt), "\0")),)+)?];
                const REQUIRED: usize = native_functions!(@count $($req)*);
                // SAFETY: CPython calls module functions with the calling interpreter's GIL
                // held and a vectorcall argument array (`bind`'s contract).
                unsafe {
                    $crate::runtime::buffer::release_pending_here();
                    let Some([$($req,)* $($($opt,)+)?]) = $crate::module::args::bind(
                        stringify!($name), NAMES, REQUIRED, args, nargs, kwnames,
                    ) else {
                        return std::ptr::null_mut();
                    };
                    $body
                }
            }
        )+

        /// Every function declared here, for the method table.
        pub const FUNCTIONS: &[$crate::module::Function] = &[$(
            $crate::module::Function {
                name: $crate::module::cstr(concat!(stringify!($name), "\0")),
                meth: $name,
                doc: $crate::module::cstr(concat!(
                    stringify!($name), "($module",
                    $(", ", stringify!($req),)*
                    $($(", ", stringify!($opt), "=", $default,)+)?
                    ")\n--\n\n",
                    $($doc, "\n",)+
                    "\0"
                )),
            },
        )+];
    };
    (@count) => { 0 };
    (@count $head:ident $($tail:ident)*) => { 1 + native_functions!(@count $($tail)*) };
}
use native_functions;

/// The method table, built once (CPython keeps pointers into it for the process lifetime).
fn methods() -> *mut PyMethodDef {
    struct Table(Vec<PyMethodDef>);
    // SAFETY: the table is immutable after construction; CPython only reads it (from any
    // interpreter, under that interpreter's GIL); it holds no Python object.
    unsafe impl Send for Table {}
    // SAFETY: as above.
    unsafe impl Sync for Table {}
    static TABLE: OnceLock<Table> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut defs: Vec<PyMethodDef> = interp_fns::FUNCTIONS
            .iter()
            .chain(queue_fns::FUNCTIONS)
            .chain(shared_dict_fns::FUNCTIONS)
            .chain(executor_fns::FUNCTIONS)
            .map(|f| PyMethodDef {
                ml_name: f.name.as_ptr(),
                ml_meth: PyMethodDefPointer {
                    PyCFunctionFastWithKeywords: f.meth,
                },
                ml_flags: pyo3_ffi::METH_FASTCALL | pyo3_ffi::METH_KEYWORDS,
                ml_doc: f.doc.as_ptr(),
            })
            .collect();
        defs.push(PyMethodDef::zeroed());
        Table(defs)
    });
    table.0.as_ptr().cast_mut()
}

/// The `Py_mod_exec` slot: adds the `WHENCE_*` and `UNBOUND_*` constants to a new module
/// object, in the importing interpreter, whose GIL CPython holds for it.
unsafe extern "C" fn exec_module(module: *mut PyObject) -> c_int {
    let constants: [(&std::ffi::CStr, i64); 9] = [
        (c"WHENCE_UNKNOWN", whence::UNKNOWN),
        (c"WHENCE_RUNTIME", whence::RUNTIME),
        (c"WHENCE_LEGACY_CAPI", whence::LEGACY_CAPI),
        (c"WHENCE_CAPI", whence::CAPI),
        (c"WHENCE_XI", whence::XI),
        (c"WHENCE_STDLIB", whence::STDLIB),
        (c"UNBOUND_REMOVE", i64::from(UNBOUND_REMOVE)),
        (c"UNBOUND_ERROR", i64::from(UNBOUND_ERROR)),
        (c"UNBOUND_REPLACE", i64::from(UNBOUND_REPLACE)),
    ];
    for (name, value) in constants {
        // SAFETY: CPython runs the exec slot with the importing interpreter's GIL held.
        if unsafe { pyo3_ffi::PyModule_AddIntConstant(module, name.as_ptr(), value as _) } < 0 {
            return -1;
        }
    }
    0
}

/// The module's slots: exec, and support for interpreters with their own GIL.
#[cfg(not(Py_3_13))]
static mut SLOTS: [PyModuleDef_Slot; 3] = [
    PyModuleDef_Slot {
        slot: pyo3_ffi::Py_mod_exec,
        value: exec_module as *mut c_void,
    },
    PyModuleDef_Slot {
        slot: pyo3_ffi::Py_mod_multiple_interpreters,
        value: pyo3_ffi::Py_MOD_PER_INTERPRETER_GIL_SUPPORTED,
    },
    PyModuleDef_Slot {
        slot: 0,
        value: ptr::null_mut(),
    },
];

/// The module's slots: exec, support for interpreters with their own GIL, and (3.13+) the
/// declaration that the module needs the GIL. That is CPython's default, said explicitly: on
/// a free-threaded build (3.14t) importing the module enables the importing interpreter's GIL,
/// because the functions read and write that interpreter's objects (its `__main__` and state
/// dicts, `sys.path`, borrowed references) trusting its GIL to keep its other threads out
/// (docs/platforms.md has the argument). Default builds ignore the slot.
#[cfg(Py_3_13)]
static mut SLOTS: [PyModuleDef_Slot; 4] = [
    PyModuleDef_Slot {
        slot: pyo3_ffi::Py_mod_exec,
        value: exec_module as *mut c_void,
    },
    PyModuleDef_Slot {
        slot: pyo3_ffi::Py_mod_multiple_interpreters,
        value: pyo3_ffi::Py_MOD_PER_INTERPRETER_GIL_SUPPORTED,
    },
    PyModuleDef_Slot {
        slot: pyo3_ffi::Py_mod_gil,
        value: pyo3_ffi::Py_MOD_GIL_USED,
    },
    PyModuleDef_Slot {
        slot: 0,
        value: ptr::null_mut(),
    },
];

/// The module definition; no per-module state (`m_size` 0), methods filled in by
/// [`PyInit__native`].
static mut MODULE_DEF: PyModuleDef = PyModuleDef {
    m_base: pyo3_ffi::PyModuleDef_HEAD_INIT,
    m_name: c"subinterp_rs._native".as_ptr(),
    m_doc: c"Native core of subinterp_rs: interpreters, crossing and queues.".as_ptr(),
    m_size: 0,
    m_methods: ptr::null_mut(),
    m_slots: (&raw mut SLOTS).cast(),
    m_traverse: None,
    m_clear: None,
    m_free: None,
};

/// The module's init function (multi-phase: returns the definition).
///
/// # Safety
/// Called by CPython's import machinery with the importing interpreter's GIL held.
#[allow(non_snake_case)]
#[no_mangle]
pub unsafe extern "C" fn PyInit__native() -> *mut PyObject {
    // Interpreters with GILs of their own can import the module at the same time: the one
    // write of ours happens once, and every import waits until it has.
    static METHODS_SET: std::sync::Once = std::sync::Once::new();
    // SAFETY: MODULE_DEF is only written here, once, before any import returns it to
    // CPython (which reads it under the importing interpreter's GIL, held for this call).
    METHODS_SET.call_once(|| unsafe { MODULE_DEF.m_methods = methods() });
    // SAFETY: CPython calls this with the importing interpreter's GIL held; the definition is
    // complete.
    unsafe { pyo3_ffi::PyModuleDef_Init(&raw mut MODULE_DEF) }
}
