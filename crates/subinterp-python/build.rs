//! Emits `Py_3_12`, `Py_3_13`, ... cfgs for the Python we build against, as pyo3-ffi does,
//! and compiles `csrc/tstate_fields.c` (thread-state fields CPython's public headers declare
//! but no function returns), `csrc/compact_int.c` (the value of a one-digit `int`, as
//! CPython's inline functions read it) and `csrc/dict_template.c` (dicts copied from a
//! template, through CPython's internal keys-table layout) against that Python's headers.
use std::path::PathBuf;
use std::process::Command;

fn main() {
    pyo3_build_config::use_pyo3_cfgs();
    println!("cargo:rerun-if-changed=csrc/tstate_fields.c");
    println!("cargo:rerun-if-changed=csrc/compact_int.c");
    println!("cargo:rerun-if-changed=csrc/dict_template.c");
    println!("cargo:rerun-if-env-changed=SUBINTERP_PYTHON_INCLUDE");
    // The include directory's pyconfig.h carries the build's flags (Py_DEBUG,
    // Py_GIL_DISABLED), so the layout compiled is that build's.
    let headers = python_headers();
    let mut build = cc::Build::new();
    if let Some(root) = &headers.multiarch_root {
        // Debian's pyconfig.h includes <x86_64-linux-gnu/pythonX.Y/pyconfig.h>, which a
        // compiler with its own sysroot (zig, for manylinux wheels) does not look for under
        // /usr/include: searched last, so the system's C headers never shadow its own.
        build.flag("-idirafter").flag(root.as_os_str());
    }
    build.include(&headers.include);
    dict_template(build.clone());
    build
        .file("csrc/tstate_fields.c")
        .file("csrc/compact_int.c")
        .compile("subinterp_csrc");
}

/// `csrc/dict_template.c` reads a dict's keys table through CPython's internal headers
/// (`internal/pycore_dict.h`), which a compiler or platform may not take (they assume
/// CPython's own build flags): if they do not compile here, the file is built with
/// `SUBINTERP_NO_DICT_TEMPLATE`, which turns templates off (every dict is made item by item,
/// as without them).
fn dict_template(mut build: cc::Build) {
    // Their own warnings (unused parameters, deprecated fields) are CPython's business.
    build
        .file("csrc/dict_template.c")
        .warnings(false)
        .flag_if_supported("-w");
    if build
        .clone()
        .try_compile("subinterp_dict_template")
        .is_err()
    {
        println!(
            "cargo:warning=CPython's internal dict headers do not compile here: dicts that \
             cross are made item by item (no templates)"
        );
        build.define("SUBINTERP_NO_DICT_TEMPLATE", None);
        build.compile("subinterp_dict_template");
    }
}

/// Where the headers of the Python we build for are.
struct Headers {
    /// The directory holding `Python.h`.
    include: PathBuf,
    /// Where a multiarch `pyconfig.h` (Debian's, outside `include`) is found from, if any.
    multiarch_root: Option<PathBuf>,
}

/// The headers of the Python we build for: `SUBINTERP_PYTHON_INCLUDE` if set (a cross build
/// without a runnable interpreter), else what that interpreter's `sysconfig` says.
fn python_headers() -> Headers {
    if let Some(dir) = std::env::var_os("SUBINTERP_PYTHON_INCLUDE") {
        return Headers {
            include: dir.into(),
            multiarch_root: None,
        };
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
            "import sysconfig; print(sysconfig.get_path('include')); \
             print(sysconfig.get_config_var('MULTIARCH') or '')",
        ])
        .output()
        .unwrap_or_else(|e| panic!("running {python} for its include directory: {e}"));
    assert!(
        out.status.success(),
        "{python} failed to print its include directory: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines().map(|l| PathBuf::from(l.trim()));
    let include = lines.next().unwrap_or_default();
    assert!(
        include.join("Python.h").is_file(),
        "{} has no Python.h: install the Python development headers (e.g. python3-dev)",
        include.display()
    );
    // Debian: /usr/include/python3.14/pyconfig.h includes
    // <x86_64-linux-gnu/python3.14/pyconfig.h>, found from /usr/include.
    let multiarch_root = lines
        .next()
        .filter(|m| !m.as_os_str().is_empty())
        .and_then(|m| {
            let root = include.parent()?;
            root.join(m)
                .join(include.file_name()?)
                .join("pyconfig.h")
                .is_file()
                .then(|| root.to_path_buf())
        });
    Headers {
        include,
        multiarch_root,
    }
}
