//! What a call can fail with.

use reqwest::Url;
use scarab_types::{
    CompatReport, ConditionFailedReport, ErrorBody, ErrorCode, FailedCondition, Violation,
};
use serde_json::Value;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered with its error body (every 4xx and 5xx of the API).
    #[error(transparent)]
    Api(#[from] Box<ApiError>),
    /// No answer: the connection failed, broke, or the request timed out.
    #[error("{endpoint}: {}: {source}", if *.maybe_sent { "no answer" } else { "not sent" })]
    Transport {
        endpoint: Url,
        /// `false` when the request certainly never left (the connection could not be
        /// made): nothing happened. `true` when it may have reached the server: a write
        /// may then have been applied.
        maybe_sent: bool,
        /// A [`reqwest::Error`], or the client's own timeout of an SSE connection.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// An answer that is not what the API sends (a proxy's error page, a body of another
    /// shape, an event that does not decode).
    #[error("{endpoint}: unexpected answer (HTTP {status}): {message}")]
    Decode {
        endpoint: Url,
        status: u16,
        message: String,
    },
    /// An endpoint that is not an http(s) base URL.
    #[error("invalid endpoint URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    /// An argument the client refuses before sending anything (a key that would address
    /// another route, a header that is not visible ASCII, options that contradict).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl From<ApiError> for Error {
    fn from(e: ApiError) -> Self {
        Error::Api(Box::new(e))
    }
}

impl Error {
    /// The server's error, if it answered with one.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Error::Api(e) => Some(e),
            _ => None,
        }
    }

    /// The error code, if the server answered with one.
    pub fn code(&self) -> Option<&ErrorCode> {
        self.api().map(|e| &e.code)
    }

    /// `404 not_found`.
    pub fn is_not_found(&self) -> bool {
        self.code() == Some(&ErrorCode::NotFound)
    }

    /// Whether a change that failed with this error may nevertheless have been applied:
    /// `timeout` or `leader_unreachable`, or no answer after the request may have been
    /// sent. Read the state (or use a conditional write) to find out.
    pub fn is_outcome_unknown(&self) -> bool {
        match self {
            Error::Api(e) => e.is_outcome_unknown(),
            Error::Transport { maybe_sent, .. } => *maybe_sent,
            _ => false,
        }
    }
}

/// The server's error body, with the HTTP status it came with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    pub status: u16,
    pub code: ErrorCode,
    pub message: String,
    /// Every violation of a `validation_failed` (or `conversion_failed`); else empty.
    pub violations: Vec<Violation>,
    /// The structured report of `incompatible_schema_version` and `condition_failed` (see
    /// [`ApiError::compat_report`], [`ApiError::failed_conditions`]).
    pub report: Option<Value>,
}

impl ApiError {
    /// The error of an error body received with `status`.
    pub fn from_body(status: u16, body: ErrorBody) -> Self {
        let e = body.error;
        Self {
            status,
            code: e.code,
            message: e.message,
            violations: e.violations.unwrap_or_default(),
            report: e.report,
        }
    }

    /// See [`ErrorCode::is_retry_safe`].
    pub fn is_retry_safe(&self) -> bool {
        self.code.is_retry_safe()
    }

    /// See [`ErrorCode::is_outcome_unknown`].
    pub fn is_outcome_unknown(&self) -> bool {
        self.code.is_outcome_unknown()
    }

    /// The conditions of a transaction that did not hold (`condition_failed`).
    pub fn failed_conditions(&self) -> Option<Vec<FailedCondition>> {
        if self.code != ErrorCode::ConditionFailed {
            return None;
        }
        let report: ConditionFailedReport = serde_json::from_value(self.report.clone()?).ok()?;
        Some(report.failed)
    }

    /// The compatibility report of a refused registration (`incompatible_schema_version`).
    pub fn compat_report(&self) -> Option<CompatReport> {
        if self.code != ErrorCode::IncompatibleSchemaVersion {
            return None;
        }
        serde_json::from_value(self.report.clone()?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_decode_by_code() {
        let body: ErrorBody = serde_json::from_str(
            r#"{"error":{"code":"condition_failed","message":"m","report":{"failed":[{"index":0,"key":"a","current_revision":3}]}}}"#,
        )
        .unwrap();
        let e = ApiError::from_body(412, body);
        assert_eq!(e.failed_conditions().unwrap()[0].current_revision, Some(3));
        assert!(e.compat_report().is_none());
        assert!(e.violations.is_empty());
        assert_eq!(e.to_string(), "412 condition_failed: m");
        let body: ErrorBody = serde_json::from_str(
            r#"{"error":{"code":"incompatible_schema_version","message":"m","report":{"name":"s","version":2,"from_version":1,"checked":1,"compatible":false,"failed":1,"failures":[{"key":"k","revision":1,"step":"upgrade","reason":"r"}]}}}"#,
        )
        .unwrap();
        let e = ApiError::from_body(409, body);
        assert_eq!(e.compat_report().unwrap().failed, 1);
        let e = Error::from(e);
        assert!(!e.is_outcome_unknown() && !e.is_not_found());
        assert_eq!(e.code(), Some(&ErrorCode::IncompatibleSchemaVersion));
    }
}
