//! Emits `Py_3_12`, `Py_3_13`, ... cfgs for the Python we build against, as pyo3-ffi does,
//! and compiles `csrc/tstate_fields.c` (thread-state fields CPython's public headers declare
//! but no function returns) against that Python's headers.
use std::path::PathBuf;
use std::process::Command;

fn main() {
    pyo3_build_config::use_pyo3_cfgs();
    println!("cargo:rerun-if-changed=csrc/tstate_fields.c");
    println!("cargo:rerun-if-env-changed=SUBINTERP_PYTHON_INCLUDE");
    // The include directory's pyconfig.h carries the build's flags (Py_DEBUG,
    // Py_GIL_DISABLED), so the layout compiled is that build's.
    cc::Build::new()
        .file("csrc/tstate_fields.c")
        .include(python_include())
        .compile("subinterp_tstate_fields");
}

/// The directory holding `Python.h` of the Python we build for: `SUBINTERP_PYTHON_INCLUDE`
/// if set (a cross build without a runnable interpreter), else what that interpreter's
/// `sysconfig` says.
fn python_include() -> PathBuf {
    if let Some(dir) = std::env::var_os("SUBINTERP_PYTHON_INCLUDE") {
        return dir.into();
    }
    let config = pyo3_build_config::get();
    let python = config.executable().unwrap_or_else(|| {
        panic!(
            "no Python interpreter to ask for its headers: set PYO3_PYTHON, or \
             SUBINTERP_PYTHON_INCLUDE to the directory holding Python.h"
        )
    });
    let out = Command::new(python)
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('include'))",
        ])
        .output()
        .unwrap_or_else(|e| panic!("running {python} for its include directory: {e}"));
    assert!(
        out.status.success(),
        "{python} failed to print its include directory: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(
        dir.join("Python.h").is_file(),
        "{} has no Python.h: install the Python development headers (e.g. python3-dev)",
        dir.display()
    );
    dir
}
