//! `Error`: every way the core refuses an operation instead of letting CPython abort.
//!
//! Plain data (`Send`, `Sync`); its `Display` text says what to do. The Python package raises
//! it as `InterpreterError` (an invalid config as `ValueError`, before the core sees it).

use std::fmt;

use crate::config::ConfigError;

/// Why the core refused to create, activate or destroy an interpreter.
///
/// Returned by [`Subinterpreter::create`](crate::Subinterpreter::create) (`Config`,
/// `CreateFailed`, `Finalizing`), [`ScopedActivate::new`](crate::ScopedActivate::new)
/// (`Empty`) and [`Subinterpreter::try_close`](crate::Subinterpreter::try_close) (every other
/// variant). Each is checked before the C call that would abort the process on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// The configuration is invalid ([`Config::validate`](crate::Config::validate)); CPython
    /// never saw it.
    Config(ConfigError),
    /// `Py_NewInterpreterFromConfig` returned a failed `PyStatus` with this message (e.g. out
    /// of memory, or a config this CPython refuses); the caller's thread state is restored.
    CreateFailed(String),
    /// The handle is empty (default-constructed, or its interpreter is gone).
    Empty,
    /// The handle does not own its interpreter (main, current, or disarmed).
    NotOwned,
    /// The main interpreter can only be ended by finalizing the runtime.
    IsMain,
    /// The interpreter is the current one of this thread (ending it would end the caller).
    IsCurrent,
    /// The interpreter runs its `__main__` in some thread (ours or the stdlib's `exec`).
    Running,
    /// Threads still live in the interpreter: `daemon` daemon threads of `threading`, and
    /// `foreign` thread states no `threading` thread accounts for (other OS threads using it).
    ThreadsAlive {
        /// Running daemon threads.
        daemon: usize,
        /// Thread states of other OS threads.
        foreign: usize,
    },
    /// The Python runtime is finalizing (or not initialized): no interpreter is created or
    /// destroyed then.
    Finalizing,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(e) => write!(f, "invalid interpreter config: {e}"),
            Error::CreateFailed(msg) => write!(f, "interpreter creation failed: {msg}"),
            Error::Empty => f.write_str("the interpreter handle is empty or already closed"),
            Error::NotOwned => f.write_str(
                "this handle does not own its interpreter (main, current or disarmed); \
                 only the owning handle can close it",
            ),
            Error::IsMain => f.write_str("the main interpreter cannot be closed"),
            Error::IsCurrent => f.write_str(
                "cannot close the interpreter that is running in the current thread; \
                 close it from another interpreter after it returns",
            ),
            Error::Running => f.write_str(
                "interpreter is running in another thread; wait for it to finish, then close",
            ),
            Error::ThreadsAlive { daemon, foreign } => write!(
                f,
                "interpreter still has {daemon} daemon thread(s) and {foreign} thread state(s) \
                 of other threads; stop them before closing it"
            ),
            Error::Finalizing => f.write_str("the Python runtime is finalizing"),
        }
    }
}

impl std::error::Error for Error {}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Error::Config(e)
    }
}
