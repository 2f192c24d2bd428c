//! `subinterp_rs._native`: one pyo3-ffi multi-phase module that every interpreter imports.
//!
//! It declares `Py_mod_multiple_interpreters = Py_MOD_PER_INTERPRETER_GIL_SUPPORTED`: it has
//! no per-module Python state at all (per-interpreter caches live in each interpreter's state
//! dict, process-wide state in Rust), so isolated interpreters can import it. Functions only,
//! keyed by ids; the Python package wraps them in classes.

mod args;
mod interp_fns;
mod queue_fns;
mod raise;

use std::ffi::{c_int, c_void};
use std::ptr;
use std::sync::OnceLock;

use pyo3_ffi::{PyMethodDef, PyMethodDefPointer, PyModuleDef, PyModuleDef_Slot, PyObject};

use crate::runtime::lifecycle::whence;
use crate::runtime::queue::{UNBOUND_ERROR, UNBOUND_REMOVE, UNBOUND_REPLACE};

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
            .map(|&(name, f, doc)| PyMethodDef {
                ml_name: name.as_ptr(),
                ml_meth: PyMethodDefPointer { PyCFunctionFast: f },
                ml_flags: pyo3_ffi::METH_FASTCALL,
                ml_doc: doc.as_ptr(),
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
    // SAFETY: CPython calls this with a GIL held; MODULE_DEF is only written here, before
    // CPython reads it, and the write is idempotent across interpreters.
    unsafe {
        MODULE_DEF.m_methods = methods();
        pyo3_ffi::PyModuleDef_Init(&raw mut MODULE_DEF)
    }
}
