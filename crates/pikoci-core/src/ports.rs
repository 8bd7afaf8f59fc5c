//! Every port of the domain in one place: the traits backends implement and their error types.
//! `ARCHITECTURE.md` ("Ports") lists where each is defined and which crates implement it.

pub use crate::broker::{Broker, BrokerError, BrokerResult, Settle};
pub use crate::engine::{EventSink, NativeCheckError, NativeChecks, Runner, RunnerError};
pub use crate::error::ErrorKind;
pub use crate::secrets::{SecretError, SecretSource, SecretTable};
pub use crate::store::{Store, StoreError, StoreResult};
