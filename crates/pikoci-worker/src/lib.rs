//! The worker library: the worker loop on top of the engine. Filled by the server issue; this crate holds nothing yet.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]
