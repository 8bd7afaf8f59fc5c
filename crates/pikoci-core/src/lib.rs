//! The PikoCI domain: the pipeline model every other crate works on, and the rules that belong to
//! it (names, durations, check schedules, the `if` condition language).
//!
//! This crate names no database, broker, HTTP framework or CLI library; it can be embedded in
//! another tool. The model is plain Rust, independent of HCL: `pikoci-config` produces it from
//! pipeline files.

pub mod broker;
pub mod condition;
pub mod duration;
pub mod engine;
pub mod model;
pub mod name;
pub mod schedule;
pub mod secrets;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use model::*;
