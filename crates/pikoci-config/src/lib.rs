//! The PikoCI pipeline language: HCL text in, a validated [`pikoci_core::Pipeline`] out, or every
//! problem of the file as a diagnostic with its location.

pub mod diagnostic;
mod eval;
mod functions;
pub mod value;
