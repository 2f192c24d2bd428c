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
//! The crate is also the Python extension `subinterp_rs._native` (feature `extension-module`,
//! on by default): one pyo3-ffi multi-phase module that every interpreter, main or isolated
//! subinterpreter, imports with its own module state.
//!
//! ## Use from another PyO3 extension
//!
//! Depend on `subinterp-rs` with `default-features = false`, and call the core with PyO3
//! detached (so that PyO3's own thread-local GIL bookkeeping never sees another interpreter):
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

pub mod buffer;
pub mod config;
pub mod error;
pub mod excinfo;
pub mod ffi_ext;
pub mod interp;
pub mod owned;
pub mod pyutil;
pub mod queue;
pub mod registry;
pub mod run;
pub mod scope;
mod tstate;
pub mod xi;

#[cfg(feature = "extension-module")]
mod module;

pub use config::{Config, ConfigError, Gil};
pub use error::Error;
pub use interp::{Borrowed, Subinterpreter};
pub use scope::{ScopedActivate, ScopedSubinterpreter};
