//! Emits `Py_3_12`, `Py_3_13`, ... cfgs for the Python we build against, as pyo3-ffi does.
fn main() {
    pyo3_build_config::use_pyo3_cfgs();
}
