//! Label and field selectors (`labelSelector=` / `fieldSelector=` query
//! parameters and `metav1.LabelSelector` objects), with Kubernetes semantics
//! and error messages.

mod field;
mod label;

pub use field::{FieldOperator, FieldRequirement, FieldSelector};
pub use label::{LabelSelector, Operator, Requirement};

/// A selector parse or validation error; `Display` gives Kubernetes' message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// Syntax or validation problem, e.g. `unable to parse requirement: …`.
    #[error("{0}")]
    Invalid(String),
    /// A field selector names a field the kind does not support.
    #[error("field label not supported: {0}")]
    UnsupportedField(String),
}
