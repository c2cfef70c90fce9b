//! The one place where errors of every boundary become HTTP: a status and
//! `{"error": {"code", "message", "violations"?}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use scarab_types::{ErrorBody, ErrorCode, ErrorDetail};

use crate::schema::{SchemaError, Violation};
use crate::store::{Rejection, StoreError};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    pub violations: Option<Vec<Violation>>,
    /// A structured report (the compatibility report of a refused schema version).
    pub report: Option<Box<serde_json::Value>>,
}

impl ApiError {
    /// An error with `code`, answered with the code's one status
    /// ([`ErrorCode::http_status`]).
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::from_u16(code.http_status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code,
            message: message.into(),
            violations: None,
            report: None,
        }
    }

    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::MalformedRequest, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }

    pub fn validation(violations: Vec<Violation>) -> Self {
        let n = violations.len();
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: ErrorCode::ValidationFailed,
            // A list that was cut ends with an entry saying so (see `schema::violations`).
            message: match violations.last() {
                Some(last) if last.code.as_deref() == Some(scarab_types::VIOLATIONS_LEFT_OUT) => {
                    format!(
                        "the document has more than {} violation(s); the first {} are listed, then how many were left out",
                        n - 1,
                        n - 1
                    )
                }
                _ => format!("the document has {n} violation(s)"),
            },
            violations: Some(violations),
            report: None,
        }
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotReady, message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(code = %self.code, message = %self.message, "request failed");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                violations: self.violations,
                report: self.report.map(|r| *r),
            },
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<crate::json::JsonError> for ApiError {
    fn from(e: crate::json::JsonError) -> Self {
        use crate::json::JsonError as J;
        let message = e.to_string();
        match e {
            J::TooDeep { .. } => ApiError::new(ErrorCode::JsonTooDeep, message),
            J::DuplicateKey { .. } => ApiError::new(ErrorCode::DuplicateKey, message),
            J::NumberOutOfRange { .. } => ApiError::new(ErrorCode::NumberOutOfRange, message),
            J::Syntax(_) => ApiError::malformed(message),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::internal(e.to_string())
    }
}

impl From<SchemaError> for ApiError {
    fn from(e: SchemaError) -> Self {
        let message = e.to_string();
        match e {
            SchemaError::Unknown { .. } => ApiError::new(ErrorCode::UnknownSchema, message),
            SchemaError::InvalidSchema(_)
            | SchemaError::UnsupportedMetaschema(_)
            | SchemaError::Reference(_) => ApiError::new(ErrorCode::InvalidSchema, message),
            SchemaError::TooComplex(_) => ApiError::new(ErrorCode::SchemaTooComplex, message),
            SchemaError::InvalidPlugin(_) => ApiError::new(ErrorCode::InvalidPlugin, message),
            SchemaError::PluginFailed { .. } => ApiError::new(ErrorCode::PluginFailed, message),
            SchemaError::Conversion(failure) => ApiError {
                violations: (!failure.violations.is_empty()).then_some(failure.violations),
                ..ApiError::new(ErrorCode::ConversionFailed, message)
            },
            SchemaError::Incompatible { report, .. } => ApiError {
                report: serde_json::to_value(super::schemas::compat_view(&report))
                    .ok()
                    .map(Box::new),
                ..ApiError::new(ErrorCode::IncompatibleSchemaVersion, message)
            },
            SchemaError::Store(_) | SchemaError::Internal(_) => ApiError::internal(message),
        }
    }
}

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> Self {
        let message = r.to_string();
        match r {
            Rejection::PreconditionFailed { .. } => {
                ApiError::new(ErrorCode::PreconditionFailed, message)
            }
            Rejection::NotFound(_) => ApiError::not_found(message),
            Rejection::UnknownSchema { .. } => ApiError::new(ErrorCode::UnknownSchema, message),
            // The version was deleted and registered again between validation and apply.
            Rejection::PluginMismatch { .. } => ApiError::new(ErrorCode::SchemaChanged, message),
            Rejection::SchemaConflict { .. } => {
                ApiError::new(ErrorCode::SchemaVersionConflict, message)
            }
            Rejection::SchemaInUse { .. } | Rejection::SchemaReferenced { .. } => {
                ApiError::new(ErrorCode::SchemaInUse, message)
            }
            Rejection::ReferenceChanged { .. } => ApiError::new(ErrorCode::SchemaChanged, message),
            Rejection::NotLatest { .. } => {
                ApiError::new(ErrorCode::SchemaVersionNotLatest, message)
            }
            Rejection::NoVersions(_) => ApiError::not_found(message),
            Rejection::MigrationRunning { .. } => {
                ApiError::new(ErrorCode::MigrationRunning, message)
            }
            Rejection::MigrationNotRunning { .. } => {
                ApiError::new(ErrorCode::MigrationNotRunning, message)
            }
            Rejection::ConditionFailed { failed } => ApiError {
                report: serde_json::to_value(scarab_types::ConditionFailedReport {
                    failed: failed
                        .into_iter()
                        .map(|f| scarab_types::FailedCondition {
                            index: f.index as u64,
                            key: f.key,
                            current_revision: f.current_revision,
                        })
                        .collect(),
                })
                .ok()
                .map(Box::new),
                ..ApiError::new(ErrorCode::ConditionFailed, message)
            },
            Rejection::InvalidTxn(_) => ApiError::malformed(message),
            Rejection::RoleInUse { .. } => ApiError::new(ErrorCode::RoleInUse, message),
            Rejection::AuthRefused(_) => ApiError::malformed(message),
        }
    }
}

/// An error's message followed by its causes ("the leader is unreachable: error sending
/// request: Connection refused").
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        message.push_str(": ");
        message.push_str(&c.to_string());
        cause = c.source();
    }
    message
}

impl From<crate::cluster::ClusterError> for ApiError {
    fn from(e: crate::cluster::ClusterError) -> Self {
        use crate::cluster::ClusterError as C;
        let message = with_causes(&e);
        match e {
            C::NoLeader => ApiError::new(ErrorCode::NoLeader, message),
            C::Overloaded { .. } => ApiError::new(ErrorCode::Overloaded, message),
            C::Timeout(_) => ApiError::new(ErrorCode::Timeout, message),
            C::Conflict { .. } | C::Refused(_) => ApiError::new(ErrorCode::NodeConflict, message),
            C::NotMember(_) => ApiError::not_found(message),
            C::Forward(_) | C::Unreachable(_) | C::BadAnswer(_) => {
                ApiError::new(ErrorCode::LeaderUnreachable, message)
            }
            // The change may or may not have been made: unknown outcome, like a timeout.
            C::LeadershipMoved | C::WriteInterrupted(_) => {
                ApiError::new(ErrorCode::Timeout, message)
            }
            C::Consensus(_) | C::ShuttingDown => ApiError::unavailable(message),
            C::MemberUnreachable(_) => ApiError::new(ErrorCode::MemberUnreachable, message),
            C::LearnerNotCaughtUp(_) => ApiError::new(ErrorCode::LearnerNotCaughtUp, message),
            C::ChangeInProgress(_) => ApiError::new(ErrorCode::MembershipChangeInProgress, message),
            C::QuorumAtRisk(_) => ApiError::new(ErrorCode::QuorumAtRisk, message),
            C::InvalidCommand(_) => ApiError::new(ErrorCode::InvalidCommand, message),
        }
    }
}
