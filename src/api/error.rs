//! The one place where errors become gRPC statuses (AIP-193: canonical
//! codes, `google.rpc.BadRequest` field violations).

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

use crate::domain::Violation;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    InvalidArgument {
        message: String,
        violations: Vec<Violation>,
    },
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    NotFound(String),
    /// The server listens but its store is still being prepared.
    #[error("the server is starting")]
    Starting,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ApiError {
    pub fn invalid(violations: Vec<Violation>) -> Self {
        let message = match violations.as_slice() {
            [one] => format!("{}: {}", one.field, one.description),
            many => format!("{} fields are invalid", many.len()),
        };
        ApiError::InvalidArgument {
            message,
            violations,
        }
    }

    pub fn invalid_field(
        field: &str,
        reason: &'static str,
        description: impl Into<String>,
    ) -> Self {
        Self::invalid(vec![Violation::new(field, reason, description)])
    }
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Status {
        match e {
            ApiError::InvalidArgument {
                message,
                violations,
            } => {
                let violations: Vec<FieldViolation> = violations
                    .into_iter()
                    .map(|v| FieldViolation {
                        field: v.field,
                        description: v.description,
                        reason: v.reason.to_string(),
                        localized_message: None,
                    })
                    .collect();
                let details = ErrorDetails::with_bad_request(violations);
                Status::with_error_details(Code::InvalidArgument, message, details)
            }
            ApiError::Unauthenticated(m) => Status::unauthenticated(m),
            ApiError::PermissionDenied(m) => Status::permission_denied(m),
            ApiError::NotFound(m) => Status::not_found(m),
            ApiError::Starting => Status::with_error_details(
                Code::Unavailable,
                "the server is starting: it is counting the backlog tallies of its database \
                 (once; minutes on a large one); retry shortly",
                ErrorDetails::with_retry_info(Some(STARTING_RETRY)),
            ),
            ApiError::Store(e @ StoreError::Unavailable(_)) => {
                tracing::warn!(error = %chain(&e), "database unavailable");
                Status::unavailable("the database is unavailable; retry later")
            }
            ApiError::Store(e @ StoreError::Contended(_)) => {
                tracing::warn!(error = %chain(&e), "write contended after retries");
                Status::aborted("a concurrent write conflicted with this one; retry")
            }
            ApiError::Store(e) => {
                tracing::error!(error = %chain(&e), "storage failure");
                Status::internal("internal storage error")
            }
        }
    }
}

/// When a client should try again while the server is starting.
const STARTING_RETRY: std::time::Duration = std::time::Duration::from_secs(5);

/// An error and its causes on one line, for the log.
fn chain(e: &dyn std::error::Error) -> String {
    let mut line = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        line.push_str(": ");
        line.push_str(&c.to_string());
        cause = c.source();
    }
    line
}
