//! The error every `Store` method returns: an [`ErrorKind`](crate::ErrorKind) callers branch on, a message for
//! people, and an opaque source for logs. The source never exposes a database driver's types
//! (implementations wrap driver errors into their own opaque type before attaching them).

crate::error::port_error!(
    /// An error from a [`Store`](super::Store): a kind, a message naming the thing that failed,
    /// and an optional source.
    StoreError
);

/// The result of every `Store` method.
pub type StoreResult<T> = Result<T, StoreError>;
