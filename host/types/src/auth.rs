//! Authentication and access control on the wire: permissions, roles, users, tokens, and
//! `GET /v1/auth/whoami`.
//!
//! A permission is an action on a resource: a key prefix for `config:*` and `audit:read`
//! (`""` is every key), a schema name or `*` for `schema:*`, nothing for the global ones
//! (`cluster:admin`, `auth:admin`, `auth:impersonate`). Written as text it is
//! `action` or `action:resource`, e.g. `config:read:stores/`, `schema:register:*`,
//! `cluster:admin`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

macro_rules! actions {
    ($( $(#[doc = $doc:literal])* $variant:ident = $text:literal, $scope:ident; )*) => {
        /// What a permission allows.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Action {
            $( $(#[doc = $doc])* $variant, )*
        }

        impl Action {
            /// Every action, in the order of the README's table.
            pub const ALL: &'static [Action] = &[$( Action::$variant, )*];

            /// The documentation of each action of [`Action::ALL`], in its order (for the
            /// OpenAPI description).
            #[cfg(feature = "openapi")]
            const DOCS: &'static [&'static str] = &[ $( concat!($( $doc, )*), )* ];

            pub fn as_str(&self) -> &'static str {
                match self {
                    $( Action::$variant => $text, )*
                }
            }

            /// What the action's resource is.
            pub fn scope(&self) -> Scope {
                match self {
                    $( Action::$variant => Scope::$scope, )*
                }
            }
        }

        impl FromStr for Action {
            type Err = InvalidPermission;
            fn from_str(s: &str) -> Result<Self, InvalidPermission> {
                match s {
                    $( $text => Ok(Action::$variant), )*
                    other => Err(InvalidPermission(format!(
                        "unknown action {other:?}; the actions are {}",
                        [$( $text, )*].join(", ")
                    ))),
                }
            }
        }
    };
}

actions! {
    /// Read configs under a key prefix (get, list, watch, history; a transaction's conditions).
    ConfigRead = "config:read", Prefix;
    /// Create and replace configs under a key prefix (and roll them back).
    ConfigWrite = "config:write", Prefix;
    /// Delete configs under a key prefix.
    ConfigDelete = "config:delete", Prefix;
    /// Read a schema's versions, plugin, policy and migrations; validate against it.
    SchemaRead = "schema:read", Schema;
    /// Register versions of a schema and set its policy.
    SchemaRegister = "schema:register", Schema;
    /// Delete versions of a schema.
    SchemaDelete = "schema:delete", Schema;
    /// Start storage migrations of a schema.
    SchemaMigrate = "schema:migrate", Schema;
    /// Read the audit records of the objects under a prefix.
    AuditRead = "audit:read", Prefix;
    /// Change membership and replicated settings (history retention).
    ClusterAdmin = "cluster:admin", Global;
    /// Manage users, roles and tokens.
    AuthAdmin = "auth:admin", Global;
    /// Act on behalf of another name (`X-Scarab-Actor`); both names are recorded. Never
    /// implied by `admin`: granted explicitly (e.g. to a deploy pipeline).
    AuthImpersonate = "auth:impersonate", Global;
}

/// What kind of resource an [`Action`] applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// A key prefix (`""`: every key).
    Prefix,
    /// A schema name, or `*` for every schema.
    Schema,
    /// No resource.
    Global,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Action {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A string of every action of [`Action::ALL`], described with each action's resource and
/// documentation.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Action {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let mut description = String::from(
            "What a permission allows. Its resource is a key prefix (`\"\"`: every key), a schema \
             name (`*`: every schema), or none (`\"\"`) for the global actions.\n",
        );
        for (action, doc) in Action::ALL.iter().zip(Action::DOCS) {
            let resource = match action.scope() {
                Scope::Prefix => "a key prefix",
                Scope::Schema => "a schema name or `*`",
                Scope::Global => "none",
            };
            description.push_str(&format!(
                "\n- `{action}` (resource: {resource}): {}",
                crate::openapi::unlink(doc.trim())
            ));
        }
        crate::openapi::string_enum(&description, Action::ALL)
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Action {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("Action")
    }
}

/// A permission or role that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidPermission(pub String);

/// One action on one resource.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Permission {
    pub action: Action,
    /// The key prefix or schema name (`*`: every schema); empty for global actions.
    #[serde(default)]
    pub resource: String,
}

impl Permission {
    pub fn new(action: Action, resource: impl Into<String>) -> Self {
        Permission {
            action,
            resource: resource.into(),
        }
    }

    /// Whether this permission is well-formed: global actions take no resource, schema
    /// actions a name or `*`.
    pub fn check(&self) -> Result<(), InvalidPermission> {
        match self.action.scope() {
            Scope::Global if !self.resource.is_empty() => Err(InvalidPermission(format!(
                "{} takes no resource (got {:?})",
                self.action, self.resource
            ))),
            Scope::Schema if self.resource.is_empty() => Err(InvalidPermission(format!(
                "{} needs a schema name or * (e.g. {}:*)",
                self.action, self.action
            ))),
            Scope::Schema if self.resource != "*" => crate::validate_schema_name(&self.resource)
                .map_err(|e| InvalidPermission(e.to_string())),
            _ if self.resource.len() > 512 => {
                Err(InvalidPermission("a resource is at most 512 bytes".into()))
            }
            _ => Ok(()),
        }
    }

    /// Whether this permission allows `action` on `resource` (a key, or a schema name).
    pub fn allows(&self, action: Action, resource: &str) -> bool {
        self.action == action
            && match action.scope() {
                Scope::Prefix => resource.starts_with(&self.resource),
                Scope::Schema => self.resource == "*" || self.resource == resource,
                Scope::Global => true,
            }
    }

    /// The permissions of a reader of a key prefix: its configs, and every schema.
    pub fn reader(prefix: &str) -> Vec<Permission> {
        vec![
            Permission::new(Action::ConfigRead, prefix),
            Permission::new(Action::SchemaRead, "*"),
        ]
    }

    /// The permissions of a writer of a key prefix: a reader's, plus writing and deleting
    /// its configs.
    pub fn writer(prefix: &str) -> Vec<Permission> {
        let mut p = Permission::reader(prefix);
        p.push(Permission::new(Action::ConfigWrite, prefix));
        p.push(Permission::new(Action::ConfigDelete, prefix));
        p
    }

    /// Everything but `auth:impersonate`: the built-in role `admin`.
    pub fn admin() -> Vec<Permission> {
        Action::ALL
            .iter()
            .filter(|a| **a != Action::AuthImpersonate)
            .map(|a| match a.scope() {
                Scope::Prefix => Permission::new(*a, ""),
                Scope::Schema => Permission::new(*a, "*"),
                Scope::Global => Permission::new(*a, ""),
            })
            .collect()
    }
}

/// `config:read:stores/`, `schema:read:*`, `cluster:admin`.
impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.action.scope() == Scope::Global {
            write!(f, "{}", self.action)
        } else {
            write!(f, "{}:{}", self.action, self.resource)
        }
    }
}

impl FromStr for Permission {
    type Err = InvalidPermission;

    /// `action` or `action:resource`; the action is its first two `:`-separated words.
    fn from_str(s: &str) -> Result<Self, InvalidPermission> {
        let (action, resource) = match s.match_indices(':').nth(1) {
            Some((at, _)) => (&s[..at], &s[at + 1..]),
            None => (s, ""),
        };
        let p = Permission::new(action.parse()?, resource);
        p.check()?;
        Ok(p)
    }
}

/// The built-in role with every permission but `auth:impersonate`.
pub const ADMIN_ROLE: &str = "admin";

/// A role: a named list of permissions.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Role {
    pub name: String,
    pub permissions: Vec<Permission>,
    /// `admin` is built in: it cannot be changed or deleted.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required))]
    pub builtin: bool,
}

/// A principal: a name with roles. Tokens and client certificates authenticate as one.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct User {
    pub name: String,
    pub roles: Vec<String>,
    pub created_at: String,
    pub created_by: String,
}

/// A token's metadata (never its secret, which is shown once, when it is created).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenInfo {
    pub id: String,
    pub principal: String,
    pub created_at: String,
    pub created_by: String,
    /// `None`: never expires.
    #[cfg_attr(feature = "openapi", schema(required))]
    pub expires_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub description: Option<String>,
}

/// `PUT /v1/auth/users/{name}`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PutUser {
    #[serde(default)]
    pub roles: Vec<String>,
}

/// `PUT /v1/auth/roles/{name}`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PutRole {
    pub permissions: Vec<Permission>,
}

/// `POST /v1/auth/users/{name}/roles` and `.../roles/{role}` (DELETE): grant or revoke one
/// role; `POST /v1/auth/roles/{name}/permissions`: grant one permission.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Grant<T> {
    #[cfg_attr(feature = "openapi", schema(inline))]
    pub grant: T,
}

/// `POST /v1/auth/tokens`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// The user the token authenticates as.
    pub principal: String,
    /// How long the token is valid (`30d`, `12h`); `None`: until revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub ttl: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub description: Option<String>,
}

/// The answer to `POST /v1/auth/tokens`: the secret, shown this once.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedToken {
    /// The bearer token: `Authorization: Bearer <token>`.
    pub token: String,
    pub info: TokenInfo,
}

/// `GET /v1/auth/whoami`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WhoAmI {
    pub principal: String,
    /// `token`, `certificate`, or `open` (authentication is off on this node).
    pub authenticated_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub token_id: Option<String>,
    pub roles: Vec<String>,
    pub permissions: Vec<Permission>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_read_and_print_as_text() {
        for text in [
            "config:read:stores/",
            "config:read:",
            "schema:read:*",
            "cluster:admin",
        ] {
            let p: Permission = text.parse().unwrap();
            assert_eq!(p.to_string(), text);
        }
        let p: Permission = "config:write:a:b/".parse().unwrap();
        assert_eq!(p.resource, "a:b/");
        assert!("cluster:admin:x".parse::<Permission>().is_err());
        assert!("schema:read".parse::<Permission>().is_err());
        assert!("config:fly:x".parse::<Permission>().is_err());
    }

    #[test]
    fn a_prefix_permission_covers_the_keys_under_it_only() {
        let p = Permission::new(Action::ConfigRead, "stores/");
        assert!(p.allows(Action::ConfigRead, "stores/orders"));
        assert!(!p.allows(Action::ConfigRead, "billing/x"));
        assert!(!p.allows(Action::ConfigWrite, "stores/orders"));
        let s = Permission::new(Action::SchemaRead, "*");
        assert!(s.allows(Action::SchemaRead, "store"));
    }

    #[test]
    fn admin_does_not_imply_impersonation() {
        assert!(
            !Permission::admin()
                .iter()
                .any(|p| p.action == Action::AuthImpersonate)
        );
    }
}
