//! Errors from reading RBAC objects.

/// An RBAC object could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RbacError {
    /// The object has no `metadata.name`.
    #[error("{kind} without metadata.name")]
    MissingName {
        /// The object's kind.
        kind: &'static str,
    },
    /// A field of the object has the wrong shape.
    #[error("{kind} {name:?} is invalid: {reason}")]
    InvalidObject {
        /// The object's kind.
        kind: &'static str,
        /// The object's name.
        name: String,
        /// Which field, and what is wrong with it.
        reason: String,
    },
}
