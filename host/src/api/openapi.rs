//! The OpenAPI 3.1 document of `/v1`, served at `GET /v1/openapi.json`.
//!
//! It is generated from the code, so that it cannot drift from the handlers: each handler
//! carries a `#[utoipa::path]` (its path, parameters, body and success responses), the wire
//! types of `scarab-types` derive their schemas, and [`super::router`] registers the routes
//! through `utoipa_axum`, which puts into the document exactly the routes it serves. The
//! config routes are the exception: one axum wildcard (`/v1/configs/{*key}`) serves
//! `{key}`, `{key}/history` and `{key}/rollback`, which the document lists as three paths
//! ([`ConfigRoutes`]); a test sends every documented operation to the router.
//!
//! The error responses of every operation come from one table, [`errors_of`], grouped by
//! status, each with the [`ErrorBody`] shape and the codes it may carry. Every code of
//! [`ErrorCode::ALL`] is in some operation's list (a test checks it).

use std::collections::BTreeMap;

use scarab_types::{ErrorBody, ErrorCode};
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

/// The document's root: what `utoipa_axum` adds the routes to.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Scarab",
        description = "A replicated configuration service: JSON configs under path-like keys, each checked by its schema version's JSON Schema and WebAssembly plugin. Every failure answers with one shape, `{\"error\": {\"code\", \"message\", ...}}`; the codes are listed in `ErrorCode` with their statuses.",
        license(name = "Apache-2.0 OR MIT"),
    ),
    components(schemas(ErrorBody, ErrorCode, scarab_types::Consistency, scarab_types::WatchEvent)),
    modifiers(&Security),
    tags(
        (name = "configs", description = "Configs: create, read, list, update, delete, history, rollback, transactions"),
        (name = "watch", description = "Changes pushed to subscribers (SSE) or long polling"),
        (name = "schemas", description = "Schema versions, their plugins, validation, compatibility and write policy"),
        (name = "migrations", description = "Moving every config of a schema to another version"),
        (name = "audit", description = "Who changed what, when and why"),
        (name = "auth", description = "Users, roles and tokens"),
        (name = "cluster", description = "Membership, readiness and leadership"),
        (name = "node", description = "This node: health, status, settings and backups"),
    )
)]
pub struct ApiDoc;

/// The config operations served by the wildcard route (see the module doc).
#[derive(OpenApi)]
#[openapi(paths(
    super::configs::get,
    super::configs::put,
    super::configs::delete,
    super::configs::history,
    super::configs::post,
))]
pub struct ConfigRoutes;

/// Bearer tokens (`Authorization: Bearer scarab_...`), optional: a node without
/// `--auth` takes every request as the dev principal.
struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        let anonymous = utoipa::openapi::security::SecurityRequirement::default();
        let bearer =
            utoipa::openapi::security::SecurityRequirement::new("bearer", Vec::<String>::new());
        doc.security = Some(vec![anonymous, bearer]);
    }
}

/// Failures any route can answer: a query string or path it does not take, credentials,
/// a fault, the connection limit.
const ANY: &[ErrorCode] = &[
    ErrorCode::MalformedRequest,
    ErrorCode::InvalidPath,
    ErrorCode::Unauthenticated,
    ErrorCode::Forbidden,
    ErrorCode::Internal,
    ErrorCode::TooManyConnections,
];

/// A read that may need the leader (linearizable by default).
const READ: &[ErrorCode] = &[
    ErrorCode::NotReady,
    ErrorCode::NoLeader,
    ErrorCode::Timeout,
    ErrorCode::LeaderUnreachable,
];

/// A JSON body.
const BODY: &[ErrorCode] = &[
    ErrorCode::JsonTooDeep,
    ErrorCode::DuplicateKey,
    ErrorCode::NumberOutOfRange,
    ErrorCode::PayloadTooLarge,
    ErrorCode::UnsupportedMediaType,
    ErrorCode::BodyTimeout,
];

/// A change proposed through Raft.
const WRITE: &[ErrorCode] = &[
    ErrorCode::NotReady,
    ErrorCode::NoLeader,
    ErrorCode::Overloaded,
    ErrorCode::Timeout,
    ErrorCode::LeaderUnreachable,
    ErrorCode::InvalidCommand,
];

/// Validation of a document by a schema version and its plugin.
const VALIDATE: &[ErrorCode] = &[
    ErrorCode::InvalidSchemaName,
    ErrorCode::InvalidSchemaVersion,
    ErrorCode::ValidationFailed,
    ErrorCode::UnknownSchema,
    ErrorCode::PluginFailed,
];

/// The codes operation `id` may answer besides [`ANY`]; `None` for an operation this table
/// does not know (a test fails on it).
pub fn errors_of(id: &str) -> Option<Vec<ErrorCode>> {
    use ErrorCode::*;
    let groups: &[&[ErrorCode]] = match id {
        "health" | "self_info" => &[],
        "status" => &[&[NotFound]],
        "readyz" => &[&[NotReady]],
        "backup" => &[READ, &[Overloaded]],
        "cluster_view" => &[READ],
        "join_cluster" | "add_member" => &[
            BODY,
            WRITE,
            &[
                NodeConflict,
                MemberUnreachable,
                LearnerNotCaughtUp,
                MembershipChangeInProgress,
            ],
        ],
        "promote_member" => &[
            WRITE,
            &[
                NotFound,
                MemberUnreachable,
                LearnerNotCaughtUp,
                MembershipChangeInProgress,
                QuorumAtRisk,
            ],
        ],
        "remove_member" => &[WRITE, &[NotFound, MembershipChangeInProgress, QuorumAtRisk]],
        "whoami" => &[],
        "list_users" | "list_roles" | "list_tokens" => &[READ],
        "get_user" | "get_role" => &[READ, &[NotFound]],
        "put_user" | "grant_role" => &[BODY, WRITE, &[NotFound]],
        "delete_user" | "revoke_role" | "revoke_token" => &[WRITE, &[NotFound]],
        "put_role" => &[BODY, WRITE],
        "delete_role" => &[WRITE, &[NotFound, RoleInUse]],
        "create_token" => &[BODY, WRITE, &[NotFound, TooManyTokens]],
        "list_configs" => &[READ, &[InvalidSchemaName, ConversionFailed, NotFound]],
        "get_config" => &[
            READ,
            &[InvalidKey, NotFound, RevisionCompacted, ConversionFailed],
        ],
        "config_history" => &[READ, &[InvalidKey, NotFound, RevisionCompacted]],
        "put_config" => &[
            BODY,
            WRITE,
            VALIDATE,
            &[
                InvalidKey,
                PreconditionFailed,
                SchemaVersionNotLatest,
                SchemaChanged,
            ],
        ],
        "delete_config" => &[WRITE, &[InvalidKey, NotFound, PreconditionFailed]],
        "rollback_config" => &[
            BODY,
            WRITE,
            VALIDATE,
            &[
                InvalidKey,
                NotFound,
                RevisionCompacted,
                ConversionFailed,
                PreconditionFailed,
                SchemaVersionNotLatest,
                SchemaChanged,
            ],
        ],
        "txn" => &[
            BODY,
            WRITE,
            VALIDATE,
            &[
                InvalidKey,
                TxnTooLarge,
                ConditionFailed,
                SchemaVersionNotLatest,
                SchemaChanged,
            ],
        ],
        "watch" => &[
            READ,
            &[
                InvalidSchemaName,
                RevisionCompacted,
                ConversionFailed,
                TooManyWatches,
            ],
        ],
        "audit" => &[READ],
        "get_history_retention" => &[READ],
        "set_history_retention" => &[BODY, WRITE],
        "get_audit_retention" => &[READ],
        "set_audit_retention" => &[BODY, WRITE],
        "list_schemas" => &[READ],
        "list_schema_versions" | "get_schema_policy" | "list_migrations" => {
            &[READ, &[InvalidSchemaName, NotFound]]
        }
        "get_schema_version" | "get_plugin" => {
            &[READ, &[InvalidSchemaName, InvalidSchemaVersion, NotFound]]
        }
        "register_schema_version" => &[
            BODY,
            WRITE,
            &[
                InvalidSchemaName,
                InvalidSchemaVersion,
                InvalidSchema,
                SchemaTooComplex,
                InvalidPlugin,
                PluginFailed,
                SchemaVersionConflict,
                IncompatibleSchemaVersion,
                SchemaChanged,
                MigrationRunning,
            ],
        ],
        "check_compatibility" => &[
            BODY,
            READ,
            &[
                InvalidSchemaName,
                InvalidSchemaVersion,
                InvalidSchema,
                SchemaTooComplex,
                InvalidPlugin,
                PluginFailed,
            ],
        ],
        "delete_schema_version" => &[
            WRITE,
            &[
                InvalidSchemaName,
                InvalidSchemaVersion,
                NotFound,
                SchemaInUse,
                MigrationRunning,
            ],
        ],
        "validate" => &[BODY, VALIDATE, &[InvalidKey]],
        "set_schema_policy" => &[BODY, WRITE, &[InvalidSchemaName, NotFound]],
        "start_migration" => &[
            BODY,
            WRITE,
            &[
                InvalidSchemaName,
                UnknownSchema,
                MigrationRunning,
                ConversionFailed,
            ],
        ],
        "get_migration" => &[READ, &[InvalidSchemaName, NotFound]],
        _ => return None,
    };
    let mut codes: Vec<ErrorCode> = ANY.to_vec();
    for group in groups {
        for code in *group {
            if !codes.contains(code) {
                codes.push(code.clone());
            }
        }
    }
    Some(codes)
}

/// The finished document: the config routes merged in, and every operation's error
/// responses added from [`errors_of`].
///
/// Panics on an operation without an entry in [`errors_of`]: the router is built at start,
/// so a handler added without its errors fails every test that starts a node.
pub fn finish(mut doc: Document) -> Document {
    doc.merge(ConfigRoutes::openapi());
    for (path, item) in doc.paths.paths.iter_mut() {
        for op in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
        {
            add_errors(path, op);
            add_headers(op);
        }
    }
    doc
}

/// The operations that record who and why in the audit trail (they read
/// `X-Scarab-Actor` and `X-Scarab-Reason`, see `api::caller`).
const AUDITED: &[&str] = &[
    "put_config",
    "delete_config",
    "rollback_config",
    "txn",
    "set_history_retention",
    "set_audit_retention",
    "register_schema_version",
    "delete_schema_version",
    "set_schema_policy",
    "start_migration",
    "put_user",
    "delete_user",
    "grant_role",
    "revoke_role",
    "put_role",
    "delete_role",
    "create_token",
    "revoke_token",
];

/// Adds the headers every request may carry (`X-Request-Id`) and those of audited changes.
fn add_headers(op: &mut Operation) {
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    let id = op.operation_id.clone().unwrap_or_default();
    let mut headers = vec![(
        "X-Request-Id",
        "An id for this request, echoed in the response and in every log line of the request: \
         1 to 128 visible ASCII characters, else (or when absent) a generated one.",
    )];
    if AUDITED.contains(&id.as_str()) {
        headers.push((
            "X-Scarab-Reason",
            "Why, kept in the audit trail (at most 1024 characters).",
        ));
        headers.push((
            "X-Scarab-Actor",
            "Act on behalf of this user (needs `auth:impersonate`; with authentication off, \
             the actor recorded).",
        ));
    }
    let params = op.parameters.get_or_insert_with(Vec::new);
    for (name, description) in headers {
        let named = |p: &utoipa::openapi::RefOr<utoipa::openapi::path::Parameter>| matches!(p, utoipa::openapi::RefOr::T(p) if p.name == name);
        if params.iter().any(named) {
            continue;
        }
        params.push(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Header)
                .required(utoipa::openapi::Required::False)
                .description(Some(description))
                .schema(Some(
                    utoipa::openapi::ObjectBuilder::new()
                        .schema_type(utoipa::openapi::schema::Type::String),
                ))
                .build()
                .into(),
        );
    }
}

fn add_errors(path: &str, op: &mut Operation) {
    let id = op.operation_id.clone().unwrap_or_default();
    let codes = errors_of(&id)
        .unwrap_or_else(|| panic!("{path}: operation {id:?} has no entry in openapi::errors_of"));
    let mut by_status: BTreeMap<u16, Vec<ErrorCode>> = BTreeMap::new();
    for code in codes {
        by_status.entry(code.http_status()).or_default().push(code);
    }
    for (status, codes) in by_status {
        let list = codes
            .iter()
            .map(|c| format!("`{}`", c.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        let response = ResponseBuilder::new()
            .description(format!("An error; `error.code` is one of {list}."))
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build();
        op.responses
            .responses
            .entry(status.to_string())
            .or_insert(response.into());
    }
}
