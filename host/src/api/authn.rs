//! Who is asking: every API request is authenticated once, by a middleware, into a
//! [`Principal`] that handlers ask for the permission their route needs.
//!
//! Owns: the bearer token format and its check (the secret's SHA-256 against the replicated
//! hash, compared in constant time; expiry against this node's clock), the open routes, what
//! `X-Scarab-Actor` means, and the 401/403 answers. Does not own: the access state (the
//! replicated [`crate::store::AuthView`]) nor managing it (`api/auth.rs`).
//!
//! A token is `scarab_<id>_<secret>`: 16 hex digits of public id (the record's key, named in
//! lists and revocations), then 43 base64url characters of secret (256 random bits). The
//! state holds only the secret's hash, so neither the log, a snapshot nor a backup holds a
//! usable token.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use scarab_types::ErrorCode;
use scarab_types::auth::{Action, Permission, Scope};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{ApiError, AppState};
use crate::store::TokenRecord;

const TOKEN_PREFIX: &str = "scarab_";
const ID_CHARS: usize = 16;
const SECRET_CHARS: usize = 43;

/// Routes served without credentials: liveness and readiness for load balancers, and the
/// node's own identity (`--bootstrap-expect` and joining nodes ask it before they hold
/// anything).
const OPEN_ROUTES: [&str; 4] = ["/v1/health", "/v1/readyz", "/v1/cluster/self", "/metrics"];

/// How a principal was authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Via {
    Token(String),
    Certificate,
    /// Authentication is off on this node (`scarab dev`, `--insecure-no-auth`): everything
    /// is allowed, and the actor is `X-Scarab-Actor`.
    Open,
    /// An open route, asked without credentials.
    Nobody,
}

/// The authenticated caller of a request.
#[derive(Clone, Debug)]
pub struct Principal {
    pub name: String,
    pub via: Via,
    /// `None`: everything (authentication off).
    permissions: Option<Arc<[Permission]>>,
}

/// What a principal may read under a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// Every key under it.
    All,
    /// Only keys under some narrower prefixes: a list shows only those.
    Some,
}

impl Principal {
    fn open(name: String) -> Self {
        Principal {
            name,
            via: Via::Open,
            permissions: None,
        }
    }

    pub fn allows(&self, action: Action, resource: &str) -> bool {
        match &self.permissions {
            None => true,
            Some(perms) => perms.iter().any(|p| p.allows(action, resource)),
        }
    }

    /// 403 `forbidden` unless the principal may do `action` on `resource` (a key, a schema
    /// name, or nothing for global actions).
    pub fn require(&self, action: Action, resource: &str) -> Result<(), ApiError> {
        if self.allows(action, resource) {
            return Ok(());
        }
        let what = match action.scope() {
            Scope::Global => String::new(),
            Scope::Prefix if resource.is_empty() => " on every key".to_string(),
            Scope::Prefix => format!(" on {resource:?}"),
            Scope::Schema => format!(" on schema {resource:?}"),
        };
        Err(ApiError::new(
            ErrorCode::Forbidden,
            format!("{} lacks the permission {action}{what}", self.name),
        ))
    }

    /// What the principal may do with `action` under `prefix`: everything, some narrower
    /// prefixes, or nothing (403).
    pub fn reach(&self, action: Action, prefix: &str) -> Result<Reach, ApiError> {
        if self.allows(action, prefix) {
            return Ok(Reach::All);
        }
        let some = self.permissions.as_ref().is_some_and(|perms| {
            perms
                .iter()
                .any(|p| p.action == action && p.resource.starts_with(prefix))
        });
        if some {
            return Ok(Reach::Some);
        }
        self.require(action, prefix).map(|()| Reach::All)
    }

    /// The prefixes under `prefix` the principal holds `action` on, each once (none inside
    /// another), in key order.
    pub fn narrower_prefixes(&self, action: Action, prefix: &str) -> Vec<String> {
        let mut all: Vec<String> = self
            .permissions
            .iter()
            .flat_map(|perms| perms.iter())
            .filter(|p| p.action == action && p.resource.starts_with(prefix))
            .map(|p| p.resource.clone())
            .collect();
        all.sort();
        let mut out: Vec<String> = Vec::new();
        for p in all {
            if !out.last().is_some_and(|last| p.starts_with(last.as_str())) {
                out.push(p);
            }
        }
        out
    }

    /// The actor a change is recorded with and the name it was made for: the principal, and
    /// `X-Scarab-Actor` only if the principal may impersonate (with authentication off, the
    /// header is the actor, as before authentication existed).
    pub fn actor(&self, header: Option<String>) -> (String, Option<String>) {
        match (&self.via, header) {
            (Via::Open, Some(h)) => (h, None),
            (_, Some(h)) if self.allows(Action::AuthImpersonate, "") => {
                (self.name.clone(), Some(h))
            }
            _ => (self.name.clone(), None),
        }
    }

    /// The principal's permissions (`None`: all, authentication is off).
    pub fn permissions(&self) -> Option<&[Permission]> {
        self.permissions.as_deref()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| ApiError::internal("the request was not authenticated (a bug)"))
    }
}

/// A new token: its text (shown once) and its record (without principal and times).
pub struct NewToken {
    pub text: String,
    pub id: String,
    pub hash: String,
}

/// Makes a token from 64 + 256 bits of the operating system's randomness.
pub fn new_token() -> Result<NewToken, ApiError> {
    let mut id = [0u8; ID_CHARS / 2];
    let mut secret = [0u8; 32];
    getrandom::fill(&mut id)
        .and_then(|()| getrandom::fill(&mut secret))
        .map_err(|e| ApiError::internal(format!("no randomness for a token: {e}")))?;
    let id = hex::encode(id);
    let secret = URL_SAFE_NO_PAD.encode(secret);
    Ok(NewToken {
        text: format!("{TOKEN_PREFIX}{id}_{secret}"),
        hash: hash_secret(&secret),
        id,
    })
}

fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The id and secret of a token's text, if it has the token's shape.
fn parse_token(text: &str) -> Option<(&str, &str)> {
    let rest = text.strip_prefix(TOKEN_PREFIX)?;
    if rest.len() != ID_CHARS + 1 + SECRET_CHARS || !rest.is_char_boundary(ID_CHARS) {
        return None;
    }
    let (id, secret) = rest.split_at(ID_CHARS);
    let secret = secret.strip_prefix('_')?;
    let base64url = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    (id.bytes().all(|b| b.is_ascii_hexdigit()) && secret.bytes().all(base64url))
        .then_some((id, secret))
}

/// The id and the secret's hash of a token's text (the root token file's).
pub fn token_parts(text: &str) -> Option<(String, String)> {
    let (id, secret) = parse_token(text)?;
    Some((id.to_string(), hash_secret(secret)))
}

/// Whether `text` is a valid, unexpired token of the replicated state; its record if so.
pub fn verify_token<'v>(
    tokens: &'v std::collections::HashMap<String, TokenRecord>,
    text: &str,
    now_ms: u64,
) -> Result<&'v TokenRecord, &'static str> {
    let (id, secret) = parse_token(text).ok_or("it is not a Scarab token")?;
    let record = tokens.get(id).ok_or("it is unknown or revoked")?;
    let presented = hash_secret(secret);
    if !bool::from(presented.as_bytes().ct_eq(record.hash.as_bytes())) {
        return Err("it is unknown or revoked");
    }
    if record.expires_ms.is_some_and(|e| e <= now_ms) {
        return Err("it has expired");
    }
    Ok(record)
}

fn unauthenticated(message: impl Into<String>) -> Response {
    let mut resp = ApiError::new(ErrorCode::Unauthenticated, message).into_response();
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"scarab\""),
    );
    resp
}

/// The middleware: authenticates the request into a [`Principal`] (in its extensions) or
/// answers 401.
/// What the middleware needs: the access state, and whether authentication is on. Not the
/// whole `AppState`, whose clone per request is a handful of reference counts.
#[derive(Clone)]
pub struct Gate {
    store: Arc<crate::store::StateStore>,
    on: bool,
}

impl Gate {
    pub fn new(state: &AppState) -> Self {
        Gate {
            store: state.store.clone(),
            on: state.config.auth,
        }
    }
}

pub async fn authenticate(State(state): State<Gate>, mut req: Request, next: Next) -> Response {
    let principal = match identify(&state, &req) {
        Ok(p) => p,
        Err(Refused(why)) => return unauthenticated(why),
    };
    req.extensions_mut().insert(principal);
    next.run(req).await
}

/// Why a request is not authenticated (answered 401 with this message).
struct Refused(String);

fn refused(message: impl Into<String>) -> Refused {
    Refused(message.into())
}

fn identify(state: &Gate, req: &Request) -> Result<Principal, Refused> {
    if !state.on {
        // The actor of the open mode is the header (checked by `caller`).
        return Ok(Principal::open(String::new()));
    }
    // Open routes answer whatever credentials come with them (a probe's stale token).
    if OPEN_ROUTES.contains(&req.uri().path()) {
        return Ok(Principal {
            name: "anonymous".into(),
            via: Via::Nobody,
            permissions: Some(Arc::from(Vec::new())),
        });
    }
    let bearer = match req.headers().get(header::AUTHORIZATION) {
        None => None,
        Some(v) => {
            let v = v
                .to_str()
                .map_err(|_| refused("the Authorization header is not visible ASCII"))?;
            let token = v
                .strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
                .ok_or_else(|| refused("the Authorization header must be `Bearer <token>`"))?;
            Some(token.trim())
        }
    };
    let view = state.store.auth();
    if let Some(token) = bearer {
        let record = verify_token(&view.tokens, token, crate::clock::now_ms())
            .map_err(|why| refused(format!("the bearer token is refused: {why}")))?;
        let permissions = view
            .permissions_of(&record.principal)
            .ok_or_else(|| refused("the token's user no longer exists"))?;
        return Ok(Principal {
            name: record.principal.clone(),
            via: Via::Token(record.id.clone()),
            permissions: Some(permissions),
        });
    }
    // A client certificate verified against --tls-client-ca names a principal: the user of
    // that name (its roles), or one with no permission if there is no such user.
    if let Some(id) = req.extensions().get::<crate::tls::ClientIdentity>() {
        return Ok(Principal {
            name: id.name.clone(),
            via: Via::Certificate,
            permissions: Some(
                view.permissions_of(&id.name)
                    .unwrap_or_else(|| Arc::from(Vec::new())),
            ),
        });
    }
    Err(refused(
        "this node requires authentication: send `Authorization: Bearer <token>` (scarab --token, SCARAB_TOKEN), or a client certificate (--tls-client-ca)",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_verifies_only_with_its_secret_and_until_it_expires() {
        let t = new_token().unwrap();
        assert_eq!(
            t.text.len(),
            TOKEN_PREFIX.len() + ID_CHARS + 1 + SECRET_CHARS
        );
        let record = TokenRecord {
            id: t.id.clone(),
            hash: t.hash.clone(),
            principal: "alice".into(),
            created_ms: 0,
            created_by: "root".into(),
            expires_ms: Some(1_000),
            description: None,
        };
        let tokens = std::collections::HashMap::from([(t.id.clone(), record)]);
        assert_eq!(
            verify_token(&tokens, &t.text, 999).unwrap().principal,
            "alice"
        );
        assert_eq!(verify_token(&tokens, &t.text, 1_000), Err("it has expired"));
        let mut forged = t.text.clone();
        let last = forged.pop().unwrap();
        forged.push(if last == 'A' { 'B' } else { 'A' });
        assert_eq!(
            verify_token(&tokens, &forged, 0),
            Err("it is unknown or revoked")
        );
        assert_eq!(
            verify_token(&tokens, "scarab_x", 0),
            Err("it is not a Scarab token")
        );
        assert!(verify_token(&tokens, "", 0).is_err());
    }
}
