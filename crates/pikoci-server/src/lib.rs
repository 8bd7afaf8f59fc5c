//! The server library: HTTP API, scheduler, dispatcher, event ingestion. Filled by the server issue; this crate holds nothing yet.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]
