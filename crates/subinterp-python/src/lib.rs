//! # subinterp-python
//!
//! The Python extension `subinterp_rs._native`, built on the [`subinterp_rs`] core: one
//! pyo3-ffi multi-phase module that every interpreter, main or isolated subinterpreter,
//! imports with its own module state.
//!
//! Two layers, and the core below them (which cannot name either):
//!
//! | module | what |
//! |---|---|
//! | `module` | the module functions: parse arguments, one call into the runtime, convert the result; the method table, generated |
//! | `runtime::lifecycle` | the one owner of every interpreter's lifecycle (its doc holds the transition table) |
//! | `runtime::run` | running code in one of them from any thread |
//! | `runtime::xi`, `runtime::buffer`, `runtime::queue`, `runtime::excinfo` | what crosses: values, shared buffers, queues, uncaught exceptions |
//! | `runtime::guards` | process guards: the exit hook, the fork guard of subinterpreters |
//! | `runtime::pyutil` | small raw C-API helpers |
//!
//! The GIL phrases of the docs ("the GIL is held", "needs no GIL", "call with no GIL held")
//! are the core's (see [`subinterp_rs`]).

mod module;
mod runtime;
