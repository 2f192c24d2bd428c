//! [`ExcInfo`]: an uncaught exception of one interpreter as plain data another can raise.

use pyo3_ffi::PyObject;

use crate::runtime::pyutil;
use subinterp_rs::owned::Owned;

/// What the stdlib's `ExecutionFailed.excinfo` carries: the exception type's names, its
/// message, `formatted` (`"ValueError: bad"`) and `errdisplay` (the full traceback display,
/// chained exceptions included).
///
/// Plain Rust text: read under the raising interpreter's GIL, raised as `ExecutionFailed`
/// under the caller's; it may move between threads freely.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExcInfo {
    /// `type(exc).__name__`
    pub type_name: String,
    /// `type(exc).__qualname__`
    pub qualname: String,
    /// `type(exc).__module__`
    pub module: String,
    /// `str(exc)`
    pub msg: String,
    /// The exception-only line, `"Type: msg"`.
    pub formatted: String,
    /// `traceback.format_exception(exc)`, joined, without the final newline.
    pub errdisplay: String,
}

impl ExcInfo {
    /// Takes the raised exception of the current interpreter (clearing it) and describes it.
    /// With no exception set it describes a `SystemError`.
    ///
    /// # Safety
    /// The current interpreter's GIL is held and an exception is set.
    pub unsafe fn take_current() -> Self {
        // SAFETY: caller holds the GIL; the exception reference is owned here.
        unsafe {
            match Owned::from_owned(pyo3_ffi::PyErr_GetRaisedException()) {
                Some(exc) => Self::describe(exc.as_ptr()),
                None => ExcInfo {
                    type_name: "SystemError".into(),
                    qualname: "SystemError".into(),
                    module: "builtins".into(),
                    msg: "error return without exception set".into(),
                    formatted: "SystemError: error return without exception set".into(),
                    errdisplay: String::new(),
                },
            }
        }
    }

    /// Takes the raised exception of a callable or argument that could not be rebuilt in
    /// the current interpreter (its `__reduce__` raised, its module does not import here):
    /// its own one-line text (`"ValueError: bad"`), and its description with a note saying
    /// what failed, in the stdlib's words ("object could not be unpickled").
    ///
    /// # Safety
    /// The current interpreter's GIL is held and an exception is set.
    pub unsafe fn take_not_rebuilt() -> (Self, String) {
        // SAFETY: caller holds the GIL; every reference is owned here.
        unsafe {
            let Some(exc) = Owned::from_owned(pyo3_ffi::PyErr_GetRaisedException()) else {
                let info = Self::take_current();
                let why = info.formatted.clone();
                return (info, why);
            };
            let why = Self::describe(exc.as_ptr()).formatted;
            let noted = pyutil::getattr(exc.as_ptr(), c"add_note").and_then(|add| {
                let note = pyutil::new_str(
                    "(raised while this object was unpickled in the interpreter it was sent \
                     to: the object could not be unpickled there)",
                )?;
                pyutil::call(add.as_ptr(), &[note.as_ptr()])
            });
            if noted.is_none() {
                pyo3_ffi::PyErr_Clear();
            }
            (Self::describe(exc.as_ptr()), why)
        }
    }

    /// Describes `exc` without raising. Never fails: a part that cannot be read (a `__str__`
    /// that raises, say) falls back to a placeholder, and any error is cleared.
    ///
    /// # Safety
    /// The current interpreter's GIL is held; `exc` is an exception instance.
    pub unsafe fn describe(exc: *mut PyObject) -> Self {
        // SAFETY: caller holds the GIL; all references are owned and dropped here.
        unsafe {
            let tp = pyo3_ffi::Py_TYPE(exc).cast::<PyObject>();
            let type_name =
                pyutil::getattr_string(tp, c"__name__").unwrap_or_else(|| pyutil::type_name(exc));
            let qualname =
                pyutil::getattr_string(tp, c"__qualname__").unwrap_or_else(|| type_name.clone());
            let module = pyutil::getattr_string(tp, c"__module__").unwrap_or_default();
            let msg = pyutil::display(exc);
            let formatted = if msg.is_empty() {
                type_name.clone()
            } else {
                format!("{type_name}: {msg}")
            };
            let errdisplay = format_traceback(exc).unwrap_or_else(|| formatted.clone());
            ExcInfo {
                type_name,
                qualname,
                module,
                msg,
                formatted,
                errdisplay,
            }
        }
    }

    /// The Python `subinterp_rs._errors.ExcInfo` for this, in the current interpreter
    /// (importing `subinterp_rs._errors` there if needed). `None` with a Python error set if
    /// that fails.
    ///
    /// # Safety
    /// The current interpreter's GIL is held.
    pub unsafe fn to_python(&self) -> Option<Owned> {
        // SAFETY: caller holds the GIL.
        unsafe {
            let type_cls = pyutil::cached_attr(
                c"subinterp_rs.ExcTypeInfo",
                c"subinterp_rs._errors",
                c"ExcTypeInfo",
            )?;
            let info_cls =
                pyutil::cached_attr(c"subinterp_rs.ExcInfo", c"subinterp_rs._errors", c"ExcInfo")?;
            let name = pyutil::new_str(&self.type_name)?;
            let qualname = pyutil::new_str(&self.qualname)?;
            let module = pyutil::new_str(&self.module)?;
            let tp = pyutil::call(
                type_cls.as_ptr(),
                &[name.as_ptr(), qualname.as_ptr(), module.as_ptr()],
            )?;
            let msg = pyutil::new_str(&self.msg)?;
            let formatted = pyutil::new_str(&self.formatted)?;
            let errdisplay = pyutil::new_str(&self.errdisplay)?;
            pyutil::call(
                info_cls.as_ptr(),
                &[
                    tp.as_ptr(),
                    msg.as_ptr(),
                    formatted.as_ptr(),
                    errdisplay.as_ptr(),
                ],
            )
        }
    }
}

/// `"".join(traceback.format_exception(exc)).rstrip("\n")`, or `None` if that fails.
///
/// # Safety
/// The current interpreter's GIL is held.
unsafe fn format_traceback(exc: *mut PyObject) -> Option<String> {
    // SAFETY: caller holds the GIL.
    unsafe {
        let result = (|| {
            let fmt = pyutil::cached_attr(
                c"subinterp_rs.format_exception",
                c"traceback",
                c"format_exception",
            )?;
            let lines = pyutil::call(fmt.as_ptr(), &[exc])?;
            let empty = pyutil::new_str("")?;
            let joined =
                Owned::from_owned(pyo3_ffi::PyUnicode_Join(empty.as_ptr(), lines.as_ptr()))?;
            pyutil::str_to_string(joined.as_ptr())
        })();
        if result.is_none() {
            pyo3_ffi::PyErr_Clear();
        }
        result.map(|s| s.trim_end_matches('\n').to_owned())
    }
}
