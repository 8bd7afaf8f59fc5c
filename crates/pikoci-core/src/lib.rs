//! The PikoCI domain: the pipeline model every other crate works on, and the rules that belong to
//! it (names, durations, check schedules, the `if` condition language).
//!
//! This crate names no database, broker, HTTP framework or CLI library; it can be embedded in
//! another tool. The model is plain Rust, independent of HCL: `pikoci-config` produces it from
//! pipeline files.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

pub mod broker;
pub mod condition;
pub mod duration;
pub mod engine;
pub mod error;
pub mod expand;
pub mod model;
pub mod name;
pub mod percent;
pub mod ports;
pub mod protocol;
pub mod redact;
pub mod schedule;
pub mod secrets;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::ErrorKind;
pub use model::*;
