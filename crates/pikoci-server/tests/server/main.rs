//! The server against the real store and the in-memory broker, with scripted fake workers.

mod harness;
mod store;

mod builds;
mod checks;
mod delivery;
mod leases;
mod secrets;
mod triggers;
