//! Users, roles and tokens: who may do what, replicated like everything else (so a revocation
//! applied on a node takes effect there), in snapshots, and audited.
//!
//! Owns: the `sm_auth` keyspace (`user/{name}`, `role/{name}`, `token/{id}`), the in-memory
//! [`AuthView`] every request is checked against (rebuilt from the keyspace after an apply
//! call that changed it, at open and after a snapshot install), and applying
//! [`AuthChange`]s. Does not own: verifying a presented token or deciding a request
//! (`crate::api::authn`), nor generating secrets (the API does, before proposing: apply is
//! deterministic and the log only ever holds hashes).
//!
//! Retention: a user's tokens go with the user; expired tokens are removed by the next auth
//! change (they are refused from the moment they expire, whether removed or not).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use scarab_types::auth::{ADMIN_ROLE, Permission};
use serde::{Deserialize, Serialize};

use super::apply::{ApplyTx, By};
use super::audit::Entry;
use super::keys::{Ks, decode_json};
use super::{
    AuthChange, AuthChanged, CommandResult, Rejection, StateStore, StoreError, TokenRecord,
};

/// The name of the principal a bootstrap creates.
pub const ROOT_USER: &str = "root";

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct UserRecord {
    pub roles: Vec<String>,
    pub created_ms: u64,
    pub created_by: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RoleRecord {
    pub permissions: Vec<Permission>,
    pub updated_ms: u64,
    pub updated_by: String,
}

/// The access state in memory: read by every request.
#[derive(Default, Debug)]
pub struct AuthView {
    pub users: BTreeMap<String, UserRecord>,
    /// Stored roles (the built-in `admin` is not stored).
    pub roles: BTreeMap<String, RoleRecord>,
    pub tokens: HashMap<String, TokenRecord>,
    /// Each user's permissions, their roles resolved.
    grants: HashMap<String, Arc<[Permission]>>,
}

impl AuthView {
    fn build(
        users: BTreeMap<String, UserRecord>,
        roles: BTreeMap<String, RoleRecord>,
        tokens: HashMap<String, TokenRecord>,
    ) -> Self {
        let admin = Permission::admin();
        let grants = users
            .iter()
            .map(|(name, u)| {
                let mut perms: Vec<Permission> = Vec::new();
                for r in &u.roles {
                    if r == ADMIN_ROLE {
                        perms.extend(admin.iter().cloned());
                    } else if let Some(role) = roles.get(r) {
                        perms.extend(role.permissions.iter().cloned());
                    }
                }
                perms.sort();
                perms.dedup();
                (name.clone(), Arc::from(perms))
            })
            .collect();
        AuthView {
            users,
            roles,
            tokens,
            grants,
        }
    }

    /// A user's permissions (`None`: no such user).
    pub fn permissions_of(&self, user: &str) -> Option<Arc<[Permission]>> {
        self.grants.get(user).cloned()
    }

    /// Whether the cluster has any user (authentication was bootstrapped).
    pub fn bootstrapped(&self) -> bool {
        !self.users.is_empty()
    }

    /// A role's permissions, the built-in `admin` included.
    pub fn role(&self, name: &str) -> Option<Vec<Permission>> {
        if name == ADMIN_ROLE {
            Some(Permission::admin())
        } else {
            self.roles.get(name).map(|r| r.permissions.clone())
        }
    }
}

fn user_key(name: &str) -> Vec<u8> {
    format!("user/{name}").into_bytes()
}

fn role_key(name: &str) -> Vec<u8> {
    format!("role/{name}").into_bytes()
}

fn token_key(id: &str) -> Vec<u8> {
    format!("token/{id}").into_bytes()
}

fn name_of<'k>(key: &'k [u8], prefix: &str) -> Result<&'k str, StoreError> {
    std::str::from_utf8(key)
        .ok()
        .and_then(|k| k.strip_prefix(prefix))
        .ok_or_else(|| StoreError::Corrupt {
            keyspace: "sm_auth",
            reason: format!("unexpected key {:?}", String::from_utf8_lossy(key)),
        })
}

impl StateStore {
    /// The access state as of the last apply.
    pub fn auth(&self) -> Arc<AuthView> {
        self.auth_view.read().expect("auth view lock").clone()
    }

    /// Rebuilds [`AuthView`] from the keyspace.
    pub(super) fn reload_auth(&self) -> Result<(), StoreError> {
        let mut users = BTreeMap::new();
        let mut roles = BTreeMap::new();
        let mut tokens = HashMap::new();
        for guard in self.auth.iter() {
            let (k, v) = guard.into_inner()?;
            if k.starts_with(b"user/") {
                users.insert(
                    name_of(&k, "user/")?.to_string(),
                    decode_json("sm_auth", &v)?,
                );
            } else if k.starts_with(b"role/") {
                roles.insert(
                    name_of(&k, "role/")?.to_string(),
                    decode_json("sm_auth", &v)?,
                );
            } else if k.starts_with(b"token/") {
                tokens.insert(
                    name_of(&k, "token/")?.to_string(),
                    decode_json("sm_auth", &v)?,
                );
            }
        }
        *self.auth_view.write().expect("auth view lock") =
            Arc::new(AuthView::build(users, roles, tokens));
        Ok(())
    }
}

impl ApplyTx<'_> {
    /// The records under `prefix`, as this apply call sees them (stored, then its own writes).
    fn auth_records(&self, prefix: &str) -> Result<BTreeMap<Vec<u8>, Vec<u8>>, StoreError> {
        let mut out = BTreeMap::new();
        for guard in self.store.auth.prefix(prefix.as_bytes()) {
            let (k, v) = guard.into_inner()?;
            out.insert(k.to_vec(), v.to_vec());
        }
        for ((ks, k), v) in &self.overlay {
            if *ks == Ks::Auth && k.starts_with(prefix.as_bytes()) {
                match v {
                    Some(v) => out.insert(k.clone(), v.clone()),
                    None => out.remove(k),
                };
            }
        }
        Ok(out)
    }

    fn auth_get<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
    ) -> Result<Option<T>, StoreError> {
        self.get(Ks::Auth, key)?
            .map(|v| decode_json("sm_auth", &v))
            .transpose()
    }

    fn auth_put<T: Serialize>(&mut self, key: Vec<u8>, value: &T) {
        self.auth_changed = true;
        self.put(
            Ks::Auth,
            key,
            serde_json::to_vec(value).expect("auth record serialises"),
        );
    }

    fn auth_remove(&mut self, key: Vec<u8>) {
        self.auth_changed = true;
        self.remove(Ks::Auth, key);
    }

    fn role_exists(&self, name: &str) -> Result<bool, StoreError> {
        Ok(name == ADMIN_ROLE || self.get(Ks::Auth, &role_key(name))?.is_some())
    }

    /// The ids of the tokens of `user` (or of every token if `None`) with their records.
    fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        self.auth_records("token/")?
            .values()
            .map(|v| decode_json("sm_auth", v))
            .collect()
    }

    pub(super) fn auth_change(
        &mut self,
        op: AuthChange,
        by: &By,
    ) -> Result<CommandResult, StoreError> {
        let refused = |r: Rejection| Ok(CommandResult::Rejected(r));
        let (action, object, detail) = match op {
            AuthChange::PutUser { name, roles } => {
                for r in &roles {
                    if !self.role_exists(r)? {
                        return refused(Rejection::NotFound(format!("role {r}")));
                    }
                }
                let created = self.auth_get::<UserRecord>(&user_key(&name))?;
                let record = UserRecord {
                    roles: dedup(roles),
                    created_ms: created.as_ref().map_or(by.at_ms, |c| c.created_ms),
                    created_by: created.map_or_else(|| by.actor.to_string(), |c| c.created_by),
                };
                let detail = serde_json::json!({ "roles": record.roles });
                self.auth_put(user_key(&name), &record);
                ("auth.user.put", format!("auth/user/{name}"), detail)
            }
            AuthChange::DeleteUser { name } => {
                if self.get(Ks::Auth, &user_key(&name))?.is_none() {
                    return refused(Rejection::NotFound(format!("user {name}")));
                }
                self.auth_remove(user_key(&name));
                let mut revoked = Vec::new();
                for t in self.tokens()? {
                    if t.principal == name {
                        self.auth_remove(token_key(&t.id));
                        revoked.push(t.id);
                    }
                }
                let detail = serde_json::json!({ "tokens_revoked": revoked });
                ("auth.user.delete", format!("auth/user/{name}"), detail)
            }
            AuthChange::GrantRole { user, role } => {
                let Some(mut record) = self.auth_get::<UserRecord>(&user_key(&user))? else {
                    return refused(Rejection::NotFound(format!("user {user}")));
                };
                if !self.role_exists(&role)? {
                    return refused(Rejection::NotFound(format!("role {role}")));
                }
                if !record.roles.contains(&role) {
                    record.roles.push(role.clone());
                }
                let detail = serde_json::json!({ "role": role, "roles": record.roles });
                self.auth_put(user_key(&user), &record);
                ("auth.user.grant", format!("auth/user/{user}"), detail)
            }
            AuthChange::RevokeRole { user, role } => {
                let Some(mut record) = self.auth_get::<UserRecord>(&user_key(&user))? else {
                    return refused(Rejection::NotFound(format!("user {user}")));
                };
                if !record.roles.contains(&role) {
                    return refused(Rejection::NotFound(format!("role {role} of user {user}")));
                }
                record.roles.retain(|r| *r != role);
                let detail = serde_json::json!({ "role": role, "roles": record.roles });
                self.auth_put(user_key(&user), &record);
                ("auth.user.revoke", format!("auth/user/{user}"), detail)
            }
            AuthChange::PutRole { name, permissions } => {
                if name == ADMIN_ROLE {
                    return refused(Rejection::AuthRefused(
                        "the role admin is built in and cannot be changed".into(),
                    ));
                }
                let mut permissions = permissions;
                permissions.sort();
                permissions.dedup();
                let detail = serde_json::json!({
                    "permissions": permissions.iter().map(|p| p.to_string()).collect::<Vec<_>>()
                });
                let record = RoleRecord {
                    permissions,
                    updated_ms: by.at_ms,
                    updated_by: by.actor.to_string(),
                };
                self.auth_put(role_key(&name), &record);
                ("auth.role.put", format!("auth/role/{name}"), detail)
            }
            AuthChange::DeleteRole { name } => {
                if name == ADMIN_ROLE {
                    return refused(Rejection::AuthRefused(
                        "the role admin is built in and cannot be deleted".into(),
                    ));
                }
                if self.get(Ks::Auth, &role_key(&name))?.is_none() {
                    return refused(Rejection::NotFound(format!("role {name}")));
                }
                let mut users = Vec::new();
                for (k, v) in self.auth_records("user/")? {
                    let u: UserRecord = decode_json("sm_auth", &v)?;
                    if u.roles.contains(&name) {
                        users.push(name_of(&k, "user/")?.to_string());
                    }
                }
                if !users.is_empty() {
                    return refused(Rejection::RoleInUse { role: name, users });
                }
                self.auth_remove(role_key(&name));
                (
                    "auth.role.delete",
                    format!("auth/role/{name}"),
                    serde_json::json!({}),
                )
            }
            AuthChange::CreateToken(token) => {
                if self.get(Ks::Auth, &user_key(&token.principal))?.is_none() {
                    return refused(Rejection::NotFound(format!("user {}", token.principal)));
                }
                if self.get(Ks::Auth, &token_key(&token.id))?.is_some() {
                    return refused(Rejection::AuthRefused(format!(
                        "a token with id {} exists already",
                        token.id
                    )));
                }
                let detail = token_detail(&token);
                self.auth_put(token_key(&token.id), &token);
                (
                    "auth.token.create",
                    format!("auth/token/{}", token.id),
                    detail,
                )
            }
            AuthChange::RevokeToken { id } => {
                let Some(token) = self.auth_get::<TokenRecord>(&token_key(&id))? else {
                    return refused(Rejection::NotFound(format!("token {id}")));
                };
                self.auth_remove(token_key(&id));
                let detail = serde_json::json!({ "principal": token.principal });
                ("auth.token.revoke", format!("auth/token/{id}"), detail)
            }
            AuthChange::Bootstrap(token) => {
                if !self.auth_records("user/")?.is_empty() {
                    return Ok(CommandResult::AuthChanged(AuthChanged { changed: false }));
                }
                let user = UserRecord {
                    roles: vec![ADMIN_ROLE.to_string()],
                    created_ms: by.at_ms,
                    created_by: by.actor.to_string(),
                };
                self.auth_put(user_key(&token.principal), &user);
                let detail = token_detail(&token);
                self.auth_put(token_key(&token.id), &token);
                (
                    "auth.bootstrap",
                    format!("auth/user/{}", token.principal),
                    detail,
                )
            }
        };
        self.purge_expired_tokens(by.at_ms)?;
        self.audit(Entry {
            actor: by.actor.to_string(),
            at_ms: Some(by.at_ms),
            action,
            object,
            revision_before: None,
            revision_after: None,
            reason: by.context.reason.clone(),
            validation: None,
            detail: Some(detail),
        });
        Ok(CommandResult::AuthChanged(AuthChanged { changed: true }))
    }

    /// Removes the tokens expired at `now_ms` (the command's clock: every node removes the
    /// same ones).
    fn purge_expired_tokens(&mut self, now_ms: u64) -> Result<(), StoreError> {
        for t in self.tokens()? {
            if t.expires_ms.is_some_and(|e| e <= now_ms) {
                self.auth_remove(token_key(&t.id));
            }
        }
        Ok(())
    }
}

fn token_detail(t: &TokenRecord) -> serde_json::Value {
    serde_json::json!({
        "principal": t.principal,
        "token_id": t.id,
        "expires_ms": t.expires_ms,
    })
}

fn dedup(mut v: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    v.retain(|x| seen.insert(x.clone()));
    v
}

#[cfg(test)]
mod tests {
    use crate::store::testing::Fixture;
    use crate::store::*;
    use scarab_types::auth::{Action, Permission};

    fn token(id: &str, principal: &str, expires_ms: Option<u64>) -> TokenRecord {
        TokenRecord {
            id: id.into(),
            hash: "00".into(),
            principal: principal.into(),
            created_ms: 1,
            created_by: "t".into(),
            expires_ms,
            description: None,
        }
    }

    #[test]
    fn bootstrap_creates_root_once() {
        let mut f = Fixture::new();
        f.apply(Op::AuthChange(AuthChange::Bootstrap(token(
            "a", "root", None,
        ))));
        assert!(f.store.auth().bootstrapped());
        assert!(f.store.auth().tokens.contains_key("a"));
        let again = f.apply(Op::AuthChange(AuthChange::Bootstrap(token(
            "b", "root", None,
        ))));
        assert_eq!(
            again,
            CommandResult::AuthChanged(AuthChanged { changed: false })
        );
        assert!(!f.store.auth().tokens.contains_key("b"));
        let perms = f.store.auth().permissions_of("root").unwrap();
        assert!(perms.iter().any(|p| p.allows(Action::AuthAdmin, "")));
    }

    #[test]
    fn a_role_in_use_is_not_deleted_and_a_deleted_user_loses_its_tokens() {
        let mut f = Fixture::new();
        f.apply(Op::AuthChange(AuthChange::PutRole {
            name: "r".into(),
            permissions: Permission::reader("a/"),
        }));
        f.apply(Op::AuthChange(AuthChange::PutUser {
            name: "u".into(),
            roles: vec!["r".into()],
        }));
        f.apply(Op::AuthChange(AuthChange::CreateToken(token(
            "t", "u", None,
        ))));
        let r = f.apply(Op::AuthChange(AuthChange::DeleteRole { name: "r".into() }));
        assert!(matches!(
            r,
            CommandResult::Rejected(Rejection::RoleInUse { .. })
        ));
        f.apply(Op::AuthChange(AuthChange::DeleteUser { name: "u".into() }));
        assert!(f.store.auth().tokens.is_empty());
        let r = f.apply(Op::AuthChange(AuthChange::DeleteRole { name: "r".into() }));
        assert_eq!(r, CommandResult::AuthChanged(AuthChanged { changed: true }));
    }

    #[test]
    fn expired_tokens_are_removed_by_the_next_auth_change() {
        let mut f = Fixture::new();
        f.apply(Op::AuthChange(AuthChange::PutUser {
            name: "u".into(),
            roles: vec![],
        }));
        // The fixture's commands are at a fixed clock; this token expired before it.
        f.apply(Op::AuthChange(AuthChange::CreateToken(token(
            "old",
            "u",
            Some(2),
        ))));
        f.apply(Op::AuthChange(AuthChange::CreateToken(token(
            "new", "u", None,
        ))));
        let tokens = &f.store.auth().tokens;
        assert!(!tokens.contains_key("old"));
        assert!(tokens.contains_key("new"));
    }

    #[test]
    fn the_access_state_survives_a_snapshot() {
        let mut f = Fixture::new();
        f.apply(Op::AuthChange(AuthChange::PutUser {
            name: "u".into(),
            roles: vec!["admin".into()],
        }));
        let (meta, file) = f.store.build_snapshot_file().unwrap();
        let b = Fixture::new();
        b.store.install_snapshot_file(&meta, file).unwrap();
        assert!(b.store.auth().users.contains_key("u"));
    }
}
