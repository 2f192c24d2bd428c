//! The package runtime: what the module functions call. Private to this crate.

pub mod buffer;
pub mod excinfo;
pub mod executor;
pub mod frames;
pub mod guards;
pub mod lifecycle;
pub mod pyutil;
pub mod queue;
pub mod run;
pub mod shared_dict;
pub mod xi;
