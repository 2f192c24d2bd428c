//! A program that embeds Python and uses only the `subinterp-rs` core (no Python package, no
//! PyO3): four OS threads each create an isolated subinterpreter (its own GIL), run Python code
//! in it in parallel, read the result back as Rust data, and close it.
//!
//! Run it with `cargo run --example embed_core` (with `PYO3_PYTHON` naming the Python to link,
//! and its library on the loader path); `tests/embed_core.rs` runs it under `cargo test`.

use std::ffi::CStr;
use std::thread;

use subinterp_rs::owned::Owned;
use subinterp_rs::{Config, Error, ScopedActivate, Subinterpreter};

/// Sums the squares below `n` in a new isolated interpreter; returns (its id, the sum).
///
/// # Errors
/// As [`Subinterpreter::create`] and [`Subinterpreter::try_close`].
///
/// # Panics
/// If the expression raises in Python (it does not).
pub fn sum_of_squares_in_new_interpreter(n: u32) -> Result<(i64, i64), Error> {
    let mut si = Subinterpreter::create(&Config::isolated())?;
    let result = {
        let scope = ScopedActivate::new(&si)?;
        let code = std::ffi::CString::new(format!("sum(i * i for i in range({n}))"))
            .expect("no NUL in the source");
        eval_int(&scope, &code)
    };
    let id = si.id();
    si.try_close()?;
    Ok((id, result.expect("the expression evaluates to an int")))
}

/// Evaluates `expr` in the `__main__` of the interpreter `_scope` activates, as an `i64`.
fn eval_int(_scope: &ScopedActivate<'_>, expr: &CStr) -> Option<i64> {
    // SAFETY: the scope holds its interpreter's GIL on this thread for the whole block; every
    // reference made here is owned by `Owned` and dropped before the scope.
    unsafe {
        let main = pyo3_ffi::PyImport_AddModule(c"__main__".as_ptr()); // borrowed
        let globals = pyo3_ffi::PyModule_GetDict(main); // borrowed
        let value = Owned::from_owned(pyo3_ffi::PyRun_String(
            expr.as_ptr(),
            pyo3_ffi::Py_eval_input,
            globals,
            globals,
        ));
        let out = value.map(|v| pyo3_ffi::PyLong_AsLongLong(v.as_ptr()));
        if !pyo3_ffi::PyErr_Occurred().is_null() {
            pyo3_ffi::PyErr_Print();
            return None;
        }
        out
    }
}

/// Starts Python once and releases the main GIL, so that any thread can use the core.
pub fn init_python() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        // SAFETY: the first and only initialisation of the embedded runtime; the main thread
        // state it leaves attached is detached at once (no GIL held afterwards).
        unsafe {
            pyo3_ffi::Py_InitializeEx(0);
            pyo3_ffi::PyEval_SaveThread();
        }
    });
}

/// Four interpreters, one per thread, in parallel: (id, sum of squares below 1000 k) of each.
///
/// # Panics
/// If a worker thread panics or the core refuses an interpreter.
pub fn run_four() -> Vec<(i64, i64)> {
    init_python();
    let workers: Vec<_> = (0..4u32)
        .map(|k| thread::spawn(move || sum_of_squares_in_new_interpreter(1000 * (k + 1))))
        .collect();
    workers
        .into_iter()
        .map(|w| w.join().expect("worker thread").expect("interpreter"))
        .collect()
}

/// Prints what [`run_four`] computed.
#[allow(dead_code)] // the test that includes this file calls `run_four` directly
pub fn main() {
    for (id, sum) in run_four() {
        println!("interpreter {id}: {sum}");
    }
}
