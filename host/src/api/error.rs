//! The one place where errors of every boundary become HTTP: a status and
//! `{"error": {"code", "message", "violations"?}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::schema::{SchemaError, Violation};
use crate::store::{Rejection, StoreError};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub violations: Option<Vec<Violation>>,
    /// A structured report (the compatibility report of a refused schema version).
    pub report: Option<Box<serde_json::Value>>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    violations: Option<&'a [Violation]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    report: Option<&'a serde_json::Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            violations: None,
            report: None,
        }
    }

    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    pub fn validation(violations: Vec<Violation>) -> Self {
        let n = violations.len();
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "validation_failed",
            // A list of MAX_VIOLATIONS may have been cut (see `schema::check_document`).
            message: if n >= crate::schema::MAX_VIOLATIONS {
                format!("the document has at least {n} violation(s); the first {n} are listed")
            } else {
                format!("the document has {n} violation(s)")
            },
            violations: Some(violations),
            report: None,
        }
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(code = self.code, message = %self.message, "request failed");
        }
        let body = Body {
            error: Inner {
                code: self.code,
                message: &self.message,
                violations: self.violations.as_deref(),
                report: self.report.as_deref(),
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
            J::TooDeep { .. } => ApiError::new(StatusCode::BAD_REQUEST, "json_too_deep", message),
            J::DuplicateKey { .. } => {
                ApiError::new(StatusCode::BAD_REQUEST, "duplicate_key", message)
            }
            J::NumberOutOfRange { .. } => {
                ApiError::new(StatusCode::BAD_REQUEST, "number_out_of_range", message)
            }
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
            SchemaError::Unknown { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unknown_schema", message)
            }
            SchemaError::InvalidSchema(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_schema", message)
            }
            SchemaError::TooComplex(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "schema_too_complex", message)
            }
            SchemaError::InvalidPlugin(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_plugin", message)
            }
            SchemaError::PluginFailed { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "plugin_failed", message)
            }
            SchemaError::Conversion(failure) => ApiError {
                violations: (!failure.violations.is_empty()).then_some(failure.violations),
                ..ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "conversion_failed",
                    message,
                )
            },
            SchemaError::Incompatible { report, .. } => ApiError {
                report: serde_json::to_value(&*report).ok().map(Box::new),
                ..ApiError::new(StatusCode::CONFLICT, "incompatible_schema_version", message)
            },
            SchemaError::Store(_) | SchemaError::Internal(_) => ApiError::internal(message),
        }
    }
}

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> Self {
        let message = r.to_string();
        match r {
            Rejection::PreconditionFailed { .. } => ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "precondition_failed",
                message,
            ),
            Rejection::NotFound(_) => ApiError::not_found(message),
            Rejection::UnknownSchema { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unknown_schema", message)
            }
            // The version was deleted and registered again between validation and apply.
            Rejection::PluginMismatch { .. } => {
                ApiError::new(StatusCode::CONFLICT, "schema_changed", message)
            }
            Rejection::SchemaConflict { .. } => {
                ApiError::new(StatusCode::CONFLICT, "schema_version_conflict", message)
            }
            Rejection::SchemaInUse { .. } => {
                ApiError::new(StatusCode::CONFLICT, "schema_in_use", message)
            }
            Rejection::NotLatest { .. } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "schema_version_not_latest",
                message,
            ),
            Rejection::NoVersions(_) => ApiError::not_found(message),
            Rejection::MigrationRunning { .. } => {
                ApiError::new(StatusCode::CONFLICT, "migration_running", message)
            }
            Rejection::MigrationNotRunning { .. } => {
                ApiError::new(StatusCode::CONFLICT, "migration_not_running", message)
            }
            Rejection::ConditionFailed { failed } => ApiError {
                report: Some(Box::new(serde_json::json!({ "failed": failed }))),
                ..ApiError::new(StatusCode::PRECONDITION_FAILED, "condition_failed", message)
            },
            Rejection::InvalidTxn(_) => ApiError::malformed(message),
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
            C::NoLeader => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no_leader", message),
            C::Overloaded { .. } => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", message)
            }
            C::Timeout(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "timeout", message),
            C::Conflict { .. } | C::Refused(_) => {
                ApiError::new(StatusCode::CONFLICT, "node_conflict", message)
            }
            C::NotMember(_) => ApiError::not_found(message),
            C::Forward(_) | C::Unreachable(_) | C::BadAnswer(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "leader_unreachable",
                message,
            ),
            // The change may or may not have been made: unknown outcome, like a timeout.
            C::LeadershipMoved => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "timeout", message)
            }
            C::Consensus(_) | C::ShuttingDown => ApiError::unavailable(message),
            C::MemberUnreachable(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "member_unreachable",
                message,
            ),
            C::LearnerNotCaughtUp(_) => {
                ApiError::new(StatusCode::CONFLICT, "learner_not_caught_up", message)
            }
            C::ChangeInProgress(_) => ApiError::new(
                StatusCode::CONFLICT,
                "membership_change_in_progress",
                message,
            ),
            C::QuorumAtRisk(_) => ApiError::new(StatusCode::CONFLICT, "quorum_at_risk", message),
            C::InvalidCommand(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_command", message)
            }
        }
    }
}
