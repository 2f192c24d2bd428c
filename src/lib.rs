//! # subinterp-rs
//!
//! CPython subinterpreters with their own GIL, owned by RAII types whose semantics follow
//! pybind11's `subinterpreter.h`:
//!
//! | pybind11 | here |
//! |---|---|
//! | `subinterpreter` | [`Subinterpreter`] |
//! | `subinterpreter_scoped_activate` | [`ScopedActivate`] |
//! | `scoped_subinterpreter` | [`ScopedSubinterpreter`] |
//! | `PyInterpreterConfig` | [`Config`] |
//!
//! It depends on `pyo3-ffi` (and `libc`) only, and knows nothing of any Python package: the
//! Python package `subinterp-rs` binds it in a crate of its own (`crates/subinterp-python` in
//! the repository), which another extension author can read as a worked example.
//!
//! ## Thread states and the GIL
//!
//! Every CPython call needs a *thread state* of some interpreter attached to the calling OS
//! thread, which means holding that interpreter's GIL (with `gil = Own` each interpreter has
//! its own). The docs of this crate use these phrases for it:
//!
//! - "the GIL is held" / "the current interpreter's GIL is held": a thread state is attached
//!   to this OS thread, and the function works on the objects of *its* interpreter (objects
//!   never cross interpreters);
//! - "a thread state is attached": the same, whichever interpreter it belongs to;
//! - "needs no GIL": the function only touches Rust data or reads a runtime field, and may be
//!   called with any thread state attached or none;
//! - "call with no GIL held": the function may wait for a lock that a thread holding a GIL
//!   could be waiting for in turn, or switches interpreters itself.
//!
//! The safe entry points of the core ([`Subinterpreter`], [`ScopedActivate`],
//! [`ScopedSubinterpreter`], [`Config`]) work whatever the calling thread holds, and give it
//! back exactly the thread state it had. The `unsafe fn`s of the lower modules state their
//! requirement in a `# Safety` section.
//!
//! ## Modules, top to bottom
//!
//! | module | what |
//! |---|---|
//! | [`interp`], [`scope`], [`config`], [`error`] | owning handles, activation guards, configs, errors |
//! | [`tstate`], [`owned`], [`ffi_ext`] | raw C-API helpers: the calling thread's thread state, owned references, private CPython entry points |
//!
//! ## Use from another PyO3 extension
//!
//! Depend on `subinterp-rs`, and call the core with PyO3 detached (so that PyO3's own thread-local GIL bookkeeping never sees another interpreter):
//!
//! ```
//! use pyo3::prelude::*;
//! use subinterp_rs::{ScopedActivate, Subinterpreter};
//!
//! Python::attach(|py| {
//!     let id = py.detach(|| {
//!         let si = Subinterpreter::create_default().expect("create");
//!         {
//!             let scope = ScopedActivate::new(&si).expect("activate");
//!             assert!(si.state_dict(&scope).is_some());
//!         }
//!         si.id()
//!     }); // `si` dropped here: the interpreter is destroyed.
//!     assert!(id > 0);
//! });
//! ```

pub mod config;
pub mod error;
pub mod ffi_ext;
pub mod interp;
pub mod owned;
pub mod scope;
pub mod tstate;

pub use config::{Config, ConfigError, Gil};
pub use error::Error;
pub use interp::{Borrowed, Subinterpreter};
pub use scope::{ScopedActivate, ScopedSubinterpreter};
