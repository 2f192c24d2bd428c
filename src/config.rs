//! `Config`: every field of CPython's `PyInterpreterConfig`, validated before CPython sees it.
//!
//! Plain data: building, comparing and validating a [`Config`] needs no GIL.

use std::fmt;

use pyo3_ffi::PyInterpreterConfig;

/// Which GIL a new interpreter uses (`PyInterpreterConfig.gil`).
///
/// Python's `InterpreterConfig(gil=...)` takes the names of [`Gil::as_str`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Gil {
    /// `PyInterpreterConfig_DEFAULT_GIL`: CPython picks; on 3.12-3.15 that is the same as
    /// [`Gil::Shared`].
    Default,
    /// Share the main interpreter's GIL (legacy subinterpreters): at most one of the
    /// interpreters sharing it runs Python code at a time.
    Shared,
    /// A GIL of its own: runs in parallel with every other interpreter. Needs
    /// `use_main_obmalloc = false` (see [`Config::validate`]).
    Own,
}

impl Gil {
    /// The name used by the Python API (`"default"`, `"shared"`, `"own"`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Gil::Default => "default",
            Gil::Shared => "shared",
            Gil::Own => "own",
        }
    }

    /// Parses the Python API's name; `None` for anything but `"default"`, `"shared"` and
    /// `"own"`.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "default" => Some(Gil::Default),
            "shared" => Some(Gil::Shared),
            "own" => Some(Gil::Own),
            _ => None,
        }
    }
}

/// The settings of a new interpreter: the fields of `PyInterpreterConfig`, one to one.
///
/// [`Config::default`] is [`Config::isolated`], the configuration the 3.14 stdlib uses.
/// [`Subinterpreter::create`](crate::Subinterpreter::create) calls [`Config::validate`]
/// first, so a refused combination never reaches CPython.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(clippy::struct_excessive_bools)] // mirrors the C struct field for field
pub struct Config {
    /// Allocate objects from the main interpreter's obmalloc state instead of its own. Must be
    /// `false` with [`Gil::Own`]; when `false`, `check_multi_interp_extensions` must be `true`.
    pub use_main_obmalloc: bool,
    /// Allow `os.fork()` in the interpreter (when `false`, CPython raises `RuntimeError`).
    pub allow_fork: bool,
    /// Allow `os.exec*()` in the interpreter (when `false`, CPython raises `RuntimeError`).
    pub allow_exec: bool,
    /// Allow `threading` threads in the interpreter (when `false`, starting one raises
    /// `RuntimeError`).
    pub allow_threads: bool,
    /// Allow daemon threads, which may still run when the interpreter is closed (when `false`,
    /// starting one raises `RuntimeError`).
    pub allow_daemon_threads: bool,
    /// Refuse extension modules that do not declare multi-interpreter support (single-phase
    /// init, or multi-phase without `Py_MOD_PER_INTERPRETER_GIL_SUPPORTED` under an own GIL):
    /// importing one raises `ImportError`.
    pub check_multi_interp_extensions: bool,
    /// Own or shared GIL.
    pub gil: Gil,
}

/// Why a [`Config`] was refused by [`Config::validate`]; its `Display` says what to change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// `gil = Own` with `use_main_obmalloc = true`: objects of one allocator used under two GILs.
    OwnGilNeedsOwnObmalloc,
    /// `use_main_obmalloc = false` with `check_multi_interp_extensions = false`: single-phase
    /// init extension modules would leak objects between allocators.
    OwnObmallocNeedsExtensionCheck,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConfigError::OwnGilNeedsOwnObmalloc => {
                "gil='own' needs use_main_obmalloc=False: an interpreter with its own GIL \
                 must have its own object allocator"
            }
            ConfigError::OwnObmallocNeedsExtensionCheck => {
                "use_main_obmalloc=False needs check_multi_interp_extensions=True: \
                 single-phase init extension modules cannot be shared between allocators"
            }
        })
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// An isolated interpreter: own GIL and obmalloc, threads allowed, no fork, exec or
    /// daemon threads, only extensions that support several interpreters.
    #[must_use]
    pub const fn isolated() -> Self {
        Config {
            use_main_obmalloc: false,
            allow_fork: false,
            allow_exec: false,
            allow_threads: true,
            allow_daemon_threads: false,
            check_multi_interp_extensions: true,
            gil: Gil::Own,
        }
    }

    /// A legacy interpreter, as `Py_NewInterpreter()` makes: shares the main GIL and
    /// allocator, allows everything, loads any extension module.
    #[must_use]
    pub const fn legacy() -> Self {
        Config {
            use_main_obmalloc: true,
            allow_fork: true,
            allow_exec: true,
            allow_threads: true,
            allow_daemon_threads: true,
            check_multi_interp_extensions: false,
            gil: Gil::Shared,
        }
    }

    /// Whether the interpreter gets a GIL of its own ([`Gil::Own`]), i.e. runs in parallel.
    #[must_use]
    pub const fn has_own_gil(&self) -> bool {
        matches!(self.gil, Gil::Own)
    }

    /// Checks the combinations CPython rejects (or would crash on) before it sees them.
    ///
    /// # Errors
    /// [`ConfigError::OwnGilNeedsOwnObmalloc`] for `gil = Own` with `use_main_obmalloc`;
    /// [`ConfigError::OwnObmallocNeedsExtensionCheck`] for an own allocator without
    /// `check_multi_interp_extensions`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.has_own_gil() && self.use_main_obmalloc {
            return Err(ConfigError::OwnGilNeedsOwnObmalloc);
        }
        if !self.use_main_obmalloc && !self.check_multi_interp_extensions {
            return Err(ConfigError::OwnObmallocNeedsExtensionCheck);
        }
        Ok(())
    }

    /// The C struct for `Py_NewInterpreterFromConfig`.
    pub(crate) fn to_ffi(self) -> PyInterpreterConfig {
        PyInterpreterConfig {
            use_main_obmalloc: i32::from(self.use_main_obmalloc),
            allow_fork: i32::from(self.allow_fork),
            allow_exec: i32::from(self.allow_exec),
            allow_threads: i32::from(self.allow_threads),
            allow_daemon_threads: i32::from(self.allow_daemon_threads),
            check_multi_interp_extensions: i32::from(self.check_multi_interp_extensions),
            gil: match self.gil {
                Gil::Default => pyo3_ffi::PyInterpreterConfig_DEFAULT_GIL,
                Gil::Shared => pyo3_ffi::PyInterpreterConfig_SHARED_GIL,
                Gil::Own => pyo3_ffi::PyInterpreterConfig_OWN_GIL,
            },
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config::isolated()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid() {
        assert_eq!(Config::isolated().validate(), Ok(()));
        assert_eq!(Config::legacy().validate(), Ok(()));
        assert_eq!(Config::default(), Config::isolated());
    }

    #[test]
    fn own_gil_with_main_obmalloc_is_refused() {
        let cfg = Config {
            use_main_obmalloc: true,
            ..Config::isolated()
        };
        assert_eq!(cfg.validate(), Err(ConfigError::OwnGilNeedsOwnObmalloc));
    }

    #[test]
    fn own_obmalloc_without_extension_check_is_refused() {
        let cfg = Config {
            check_multi_interp_extensions: false,
            ..Config::isolated()
        };
        assert_eq!(
            cfg.validate(),
            Err(ConfigError::OwnObmallocNeedsExtensionCheck)
        );
    }

    #[test]
    fn gil_names_round_trip() {
        for gil in [Gil::Default, Gil::Shared, Gil::Own] {
            assert_eq!(Gil::from_name(gil.as_str()), Some(gil));
        }
        assert_eq!(Gil::from_name("mine"), None);
    }
}
