//! The `Runner` implementation: process spawning, runner templates, exec/shell/docker, services. Filled by the engine issue; this crate holds nothing yet.
