//! The error body every failed request carries, and the codes in it.
//!
//! ```json
//! {"error": {"code": "validation_failed", "message": "the document has 1 violation(s)",
//!            "violations": [{"path": "/timeout_ms", "message": "0 is less than the minimum of 1",
//!                            "code": "minimum", "source": "schema"}]}}
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// Declares [`ErrorCode`] from one table: variant, wire text, HTTP status, whether nothing
/// was applied (retry-safe), and its documentation.
macro_rules! error_codes {
    ($(
        $(#[doc = $doc:literal])*
        $variant:ident = $text:literal, $status:literal, $retry_safe:literal;
    )*) => {
        /// What went wrong, as the `code` of an [`ErrorBody`].
        ///
        /// The server answers each code with one HTTP status ([`ErrorCode::http_status`]); the
        /// README's error table lists [`ErrorCode::ALL`] (a test of this crate checks it).
        ///
        /// A code this version does not know (a newer server) parses as
        /// [`ErrorCode::Other`], keeping its text, so a client never fails on it.
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $( $(#[doc = $doc])* $variant, )*
            /// A code this version of `scarab-types` does not know (sent by a newer server).
            /// The server never produces it from this crate.
            Other(String),
        }

        impl ErrorCode {
            /// Every code the server may send, in the order of the README's table.
            pub const ALL: &'static [ErrorCode] = &[ $( ErrorCode::$variant, )* ];

            /// The documentation of each code of [`ErrorCode::ALL`], in its order (for the
            /// OpenAPI description).
            #[cfg(feature = "openapi")]
            const DOCS: &'static [&'static str] = &[ $( concat!($( $doc, )*), )* ];

            /// The text on the wire (`"no_leader"`).
            pub fn as_str(&self) -> &str {
                match self {
                    $( ErrorCode::$variant => $text, )*
                    ErrorCode::Other(text) => text,
                }
            }

            /// The HTTP status the server answers this code with. [`ErrorCode::Other`] has
            /// none this version knows: 500 (the status actually received is in the
            /// response).
            pub fn http_status(&self) -> u16 {
                match self {
                    $( ErrorCode::$variant => $status, )*
                    ErrorCode::Other(_) => 500,
                }
            }

            /// Whether the code says that nothing was applied and that the same request may
            /// succeed later or on another node (a leader election, a full queue, a limit of
            /// this node). `false` for every refusal that a retry would meet again, and for
            /// `timeout` and `leader_unreachable`, whose outcome is unknown.
            pub fn is_retry_safe(&self) -> bool {
                match self {
                    $( ErrorCode::$variant => $retry_safe, )*
                    ErrorCode::Other(_) => false,
                }
            }

            /// The code spelt `text`; an unknown one is [`ErrorCode::Other`].
            pub fn parse(text: &str) -> ErrorCode {
                match text {
                    $( $text => ErrorCode::$variant, )*
                    other => ErrorCode::Other(other.to_string()),
                }
            }
        }
    };
}

error_codes! {
    // 400
    /// The request is not what the route takes (syntax, a missing or extra field, a limit).
    MalformedRequest = "malformed_request", 400, false;
    /// The key breaks the key rules (see [`crate::validate_key`]).
    InvalidKey = "invalid_key", 400, false;
    /// The schema name breaks the name rules (see [`crate::validate_schema_name`]).
    InvalidSchemaName = "invalid_schema_name", 400, false;
    /// The schema version in the path is not an integer from 1.
    InvalidSchemaVersion = "invalid_schema_version", 400, false;
    /// The JSON Schema is not valid draft 2020-12.
    InvalidSchema = "invalid_schema", 400, false;
    /// The JSON Schema's evaluation could explode; it is refused.
    SchemaTooComplex = "schema_too_complex", 400, false;
    /// A document is nested deeper than `--max-json-depth`.
    JsonTooDeep = "json_too_deep", 400, false;
    /// An object has the same key twice.
    DuplicateKey = "duplicate_key", 400, false;
    /// A number is beyond a finite double.
    NumberOutOfRange = "number_out_of_range", 400, false;
    /// A percent-escape in the path of a character that needs none.
    InvalidPath = "invalid_path", 400, false;
    /// A change that could not enter the log; nothing was proposed.
    InvalidCommand = "invalid_command", 400, false;
    /// A transaction with more operations or conditions than `--max-txn-ops`.
    TxnTooLarge = "txn_too_large", 400, false;
    // 401
    /// No valid credentials: no token, or one that is unknown, expired or revoked (on the
    /// peer port: no or a wrong cluster secret).
    Unauthenticated = "unauthenticated", 401, false;
    // 403
    /// The principal lacks the permission the request needs (the message names it and the
    /// resource); on the peer port, a certificate of a node that is not a member.
    Forbidden = "forbidden", 403, false;
    // 404
    /// No such key, schema version, migration, member or route.
    NotFound = "not_found", 404, false;
    // 405
    /// The route does not take this method.
    MethodNotAllowed = "method_not_allowed", 405, false;
    // 408
    /// The request body did not arrive in full within `--body-timeout`; nothing was read.
    BodyTimeout = "body_timeout", 408, true;
    // 409
    /// Different content under an existing schema version.
    SchemaVersionConflict = "schema_version_conflict", 409, false;
    /// A config still uses the schema version.
    SchemaInUse = "schema_in_use", 409, false;
    /// The schema version was deleted and registered again between validation and apply.
    SchemaChanged = "schema_changed", 409, false;
    /// The node is already a member with other addresses.
    NodeConflict = "node_conflict", 409, false;
    /// Registering would break stored configs; `report` has the compatibility report.
    IncompatibleSchemaVersion = "incompatible_schema_version", 409, false;
    /// The role is still granted to users; revoke it from them first.
    RoleInUse = "role_in_use", 409, false;
    /// The cluster holds `--max-tokens` live tokens already; revoke some first.
    TooManyTokens = "too_many_tokens", 409, false;
    /// A migration of the schema is already running.
    MigrationRunning = "migration_running", 409, false;
    /// The migration is not running.
    MigrationNotRunning = "migration_not_running", 409, false;
    /// The learner did not catch up in time to be promoted (it stays a learner).
    LearnerNotCaughtUp = "learner_not_caught_up", 409, false;
    /// A membership change has not committed; no other is accepted until it does.
    MembershipChangeInProgress = "membership_change_in_progress", 409, false;
    /// The change would leave fewer than a majority of the voters answering.
    QuorumAtRisk = "quorum_at_risk", 409, false;
    // 410
    /// That part of the history was dropped by the retention (the message names the oldest
    /// revision kept).
    RevisionCompacted = "revision_compacted", 410, false;
    // 412
    /// `If-Match` / `If-None-Match` did not hold.
    PreconditionFailed = "precondition_failed", 412, false;
    /// A transaction's condition did not hold; `report` is a [`ConditionFailedReport`].
    ConditionFailed = "condition_failed", 412, false;
    // 413
    /// The body or the value is larger than its limit.
    PayloadTooLarge = "payload_too_large", 413, false;
    // 415
    /// The body's Content-Type is not the one the route takes.
    UnsupportedMediaType = "unsupported_media_type", 415, false;
    // 422
    /// The document breaks its schema or its plugin: every violation is listed.
    ValidationFailed = "validation_failed", 422, false;
    /// The schema version is not registered.
    UnknownSchema = "unknown_schema", 422, false;
    /// The plugin failed (trapped, ran out of time or memory, refused, answered garbage).
    PluginFailed = "plugin_failed", 422, false;
    /// The plugin is not a component implementing a released plugin world.
    InvalidPlugin = "invalid_plugin", 422, false;
    /// A config could not be converted to another version of its schema.
    ConversionFailed = "conversion_failed", 422, false;
    /// The schema's write policy is `latest` and the version is not the latest.
    SchemaVersionNotLatest = "schema_version_not_latest", 422, false;
    /// The node to add or promote does not answer at its addresses.
    MemberUnreachable = "member_unreachable", 422, false;
    // 500
    /// A fault of the server.
    Internal = "internal", 500, false;
    // 503
    /// The node cannot serve the request now (no confirmed leader or not caught up).
    NotReady = "not_ready", 503, true;
    /// No leader took the request: not applied, safe to retry.
    NoLeader = "no_leader", 503, true;
    /// The leader's proposal queue is full: nothing was applied, retry later.
    Overloaded = "overloaded", 503, true;
    /// The request did not complete in time: its outcome is unknown (it may have been
    /// applied).
    Timeout = "timeout", 503, false;
    /// The leader could not be reached or did not answer: the outcome is unknown.
    LeaderUnreachable = "leader_unreachable", 503, false;
    /// The node serves `--max-watches` watches already; retry later or on another node.
    TooManyWatches = "too_many_watches", 503, true;
    /// The node serves its connection limit already; retry later or on another node.
    TooManyConnections = "too_many_connections", 503, true;
}

impl ErrorCode {
    /// Whether the outcome of a change answered with this code is unknown: it may have been
    /// applied (`timeout`, `leader_unreachable`).
    pub fn is_outcome_unknown(&self) -> bool {
        matches!(self, ErrorCode::Timeout | ErrorCode::LeaderUnreachable)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ErrorCode {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(ErrorCode::parse(s))
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ErrorCode;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an error code string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ErrorCode, E> {
                Ok(ErrorCode::parse(v))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

/// A string of every code of [`ErrorCode::ALL`] (not [`ErrorCode::Other`]), described with
/// each code's HTTP status and documentation; clients must accept other codes.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for ErrorCode {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let mut description = String::from(
            "What went wrong. The server answers each code with one HTTP status. A newer server \
             may send a code not listed here: clients must accept it (and go by the HTTP \
             status). Retry-safe codes say that nothing was applied and that the same request \
             may succeed later or on another node.\n",
        );
        for (code, doc) in ErrorCode::ALL.iter().zip(ErrorCode::DOCS) {
            let retry = if code.is_retry_safe() {
                ", retry-safe"
            } else {
                ""
            };
            description.push_str(&format!(
                "\n- `{}` ({}{retry}): {}",
                code.as_str(),
                code.http_status(),
                crate::openapi::unlink(doc.trim())
            ));
        }
        crate::openapi::string_enum(&description, ErrorCode::ALL)
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for ErrorCode {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("ErrorCode")
    }
}

/// The body of every error response: `{"error": {...}}`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    pub code: ErrorCode,
    pub message: String,
    /// Every violation, for `validation_failed` (and `conversion_failed` when the converted
    /// document is not valid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub violations: Option<Vec<Violation>>,
    /// A structured report: the compatibility report ([`crate::CompatReport`]) of
    /// `incompatible_schema_version`, or the [`ConditionFailedReport`] of
    /// `condition_failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub report: Option<Value>,
}

impl ErrorBody {
    /// An error body without violations or report.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            error: ErrorDetail {
                code,
                message: message.into(),
                violations: None,
                report: None,
            },
        }
    }
}

/// Where a violation was found.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ViolationSource {
    /// The JSON Schema.
    Schema,
    /// The schema version's plugin.
    Plugin,
    /// A source this version does not know (never sent by a server of this version).
    #[serde(other)]
    Unknown,
}

#[cfg(feature = "openapi")]
crate::openapi::open_enum_schema!(
    ViolationSource as "ViolationSource",
    [Schema, Plugin],
    catch_all Unknown,
    "Where a violation was found: `schema` (the JSON Schema) or `plugin` (the schema \
     version's plugin)."
);

/// One reason a document is not valid.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Violation {
    /// JSON Pointer into the document (in a transaction, into the request:
    /// `/ops/0/value/timeout_ms`).
    pub path: String,
    pub message: String,
    /// The JSON Schema keyword, or the plugin's own code. Sent as `null` when absent.
    /// [`VIOLATIONS_LEFT_OUT`] on the entry that ends a list that was cut.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required))]
    pub code: Option<String>,
    pub source: ViolationSource,
    /// For a JSON Schema violation: the JSON Pointer of the keyword that failed, along the
    /// path evaluation took (through `$ref`s: `/properties/a/$ref/maxContains`), as the
    /// specification's `keywordLocation`. Absent for plugin violations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub schema_path: Option<String>,
}

/// The `code` of the last entry of a violation list that was cut: its message says how many
/// violations were left out (see `--max-violations`).
pub const VIOLATIONS_LEFT_OUT: &str = "violations_left_out";

/// The `report` of a `condition_failed` error: the transaction's conditions that did not
/// hold.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConditionFailedReport {
    pub failed: Vec<FailedCondition>,
}

/// A transaction condition that did not hold.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FailedCondition {
    /// Its position in the request's `conditions`.
    pub index: u64,
    pub key: String,
    /// The key's revision when the transaction was applied (`None`: absent).
    #[cfg_attr(feature = "openapi", schema(required))]
    pub current_revision: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_its_text() {
        for code in ErrorCode::ALL {
            assert_eq!(&ErrorCode::parse(code.as_str()), code);
            let json = serde_json::to_string(code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(&serde_json::from_str::<ErrorCode>(&json).unwrap(), code);
        }
    }

    #[test]
    fn codes_are_unique_and_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "{s} twice");
            assert!(
                s.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{s} is not snake_case"
            );
            assert!((400..600).contains(&code.http_status()), "{s}");
        }
    }

    #[test]
    fn an_unknown_code_keeps_its_text() {
        let body: ErrorBody =
            serde_json::from_str(r#"{"error":{"code":"brand_new","message":"m"}}"#).unwrap();
        assert_eq!(body.error.code, ErrorCode::Other("brand_new".into()));
        assert_eq!(body.error.code.as_str(), "brand_new");
        assert!(!body.error.code.is_retry_safe());
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"error":{"code":"brand_new","message":"m"}}"#
        );
    }

    #[test]
    fn retry_safe_codes_are_the_ones_that_applied_nothing() {
        let safe: Vec<&str> = ErrorCode::ALL
            .iter()
            .filter(|c| c.is_retry_safe())
            .map(|c| c.as_str())
            .collect();
        assert_eq!(
            safe,
            [
                "body_timeout",
                "not_ready",
                "no_leader",
                "overloaded",
                "too_many_watches",
                "too_many_connections"
            ]
        );
        assert!(ErrorCode::Timeout.is_outcome_unknown());
        assert!(ErrorCode::LeaderUnreachable.is_outcome_unknown());
        assert!(!ErrorCode::Timeout.is_retry_safe());
        assert_eq!(ErrorCode::Overloaded.http_status(), 503);
    }

    #[test]
    fn the_error_body_is_what_the_server_sends() {
        let text = r#"{"error":{"code":"validation_failed","message":"the document has 2 violation(s)","violations":[{"path":"/timeout_ms","message":"0 is less than the minimum of 1","code":"minimum","source":"schema"},{"path":"/data_dir","message":"not absolute","code":null,"source":"plugin"}]}}"#;
        let body: ErrorBody = serde_json::from_str(text).unwrap();
        assert_eq!(body.error.code, ErrorCode::ValidationFailed);
        let v = body.error.violations.as_ref().unwrap();
        assert_eq!(v[0].source, ViolationSource::Schema);
        assert_eq!(v[0].code.as_deref(), Some("minimum"));
        assert_eq!(v[1].code, None);
        assert_eq!(serde_json::to_string(&body).unwrap(), text);
        // Without violations or report, neither is sent.
        let plain = ErrorBody::new(ErrorCode::NoLeader, "no leader");
        assert_eq!(
            serde_json::to_string(&plain).unwrap(),
            r#"{"error":{"code":"no_leader","message":"no leader"}}"#
        );
    }

    #[test]
    fn a_condition_failed_report_decodes() {
        let text = r#"{"error":{"code":"condition_failed","message":"m","report":{"failed":[{"index":1,"key":"b","current_revision":null}]}}}"#;
        let body: ErrorBody = serde_json::from_str(text).unwrap();
        let report: ConditionFailedReport =
            serde_json::from_value(body.error.report.unwrap()).unwrap();
        assert_eq!(
            report.failed,
            [FailedCondition {
                index: 1,
                key: "b".into(),
                current_revision: None
            }]
        );
    }
}
