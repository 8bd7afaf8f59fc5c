//! The server against the real store and the in-memory broker, with scripted fake workers.

// The server's futures (its loops, the router's layers) nest deeper than the default limit
// lets the compiler lay out.
#![recursion_limit = "256"]

mod harness;
mod store;

mod builds;
mod checks;
mod delivery;
mod leases;
mod secrets;
mod tokens;
mod triggers;
