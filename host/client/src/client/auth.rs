//! `/v1/auth`: who the client is, and (with `auth:admin`) users, roles and tokens.

use scarab_types::auth::{
    CreateToken, CreatedToken, Grant, Permission, PutRole, PutUser, Role, TokenInfo, User, WhoAmI,
};

use super::*;

impl Client {
    /// `GET /v1/auth/whoami`: the principal this client is, its roles and permissions.
    pub async fn whoami(&self) -> Result<WhoAmI, Error> {
        let call = self.call(Method::GET, &["auth", "whoami"]);
        self.execute(&call).await?.json()
    }

    /// `GET /v1/auth/users`.
    pub async fn users(&self) -> Result<Vec<User>, Error> {
        let call = self.call(Method::GET, &["auth", "users"]);
        self.execute(&call).await?.json()
    }

    /// `GET /v1/auth/users/{name}`.
    pub async fn user(&self, name: &str) -> Result<User, Error> {
        let call = self.call(Method::GET, &["auth", "users", name]);
        self.execute(&call).await?.json()
    }

    /// `PUT /v1/auth/users/{name}`: creates the user, or replaces its roles.
    pub async fn put_user(&self, name: &str, roles: &[String]) -> Result<User, Error> {
        let call = self
            .call(Method::PUT, &["auth", "users", name])
            .json(&PutUser {
                roles: roles.to_vec(),
            })
            .idempotency(Idempotency::Write {
                retry_unknown: true,
            });
        self.execute(&call).await?.json()
    }

    /// `DELETE /v1/auth/users/{name}`: the user and all its tokens.
    pub async fn delete_user(&self, name: &str) -> Result<(), Error> {
        let call = self.call(Method::DELETE, &["auth", "users", name]);
        self.execute(&call).await.map(drop)
    }

    /// `POST /v1/auth/users/{name}/roles`: grants one role.
    pub async fn grant_role(&self, user: &str, role: &str) -> Result<User, Error> {
        let call = self
            .call(Method::POST, &["auth", "users", user, "roles"])
            .json(&Grant {
                grant: role.to_string(),
            })
            .idempotency(Idempotency::Write {
                retry_unknown: true,
            });
        self.execute(&call).await?.json()
    }

    /// `DELETE /v1/auth/users/{name}/roles/{role}`: revokes one role.
    pub async fn revoke_role(&self, user: &str, role: &str) -> Result<User, Error> {
        let call = self.call(Method::DELETE, &["auth", "users", user, "roles", role]);
        self.execute(&call).await?.json()
    }

    /// `GET /v1/auth/roles`: the built-in `admin` first.
    pub async fn roles(&self) -> Result<Vec<Role>, Error> {
        let call = self.call(Method::GET, &["auth", "roles"]);
        self.execute(&call).await?.json()
    }

    /// `GET /v1/auth/roles/{name}`.
    pub async fn role(&self, name: &str) -> Result<Role, Error> {
        let call = self.call(Method::GET, &["auth", "roles", name]);
        self.execute(&call).await?.json()
    }

    /// `PUT /v1/auth/roles/{name}`: creates the role, or replaces its permissions.
    pub async fn put_role(&self, name: &str, permissions: &[Permission]) -> Result<Role, Error> {
        let call = self
            .call(Method::PUT, &["auth", "roles", name])
            .json(&PutRole {
                permissions: permissions.to_vec(),
            })
            .idempotency(Idempotency::Write {
                retry_unknown: true,
            });
        self.execute(&call).await?.json()
    }

    /// `DELETE /v1/auth/roles/{name}` (409 `role_in_use` while a user holds it).
    pub async fn delete_role(&self, name: &str) -> Result<(), Error> {
        let call = self.call(Method::DELETE, &["auth", "roles", name]);
        self.execute(&call).await.map(drop)
    }

    /// `GET /v1/auth/tokens`: every token's metadata with `auth:admin`, else the caller's.
    pub async fn tokens(&self) -> Result<Vec<TokenInfo>, Error> {
        let call = self.call(Method::GET, &["auth", "tokens"]);
        self.execute(&call).await?.json()
    }

    /// `POST /v1/auth/tokens`: a new token; its secret is in the answer and nowhere else.
    pub async fn create_token(&self, request: &CreateToken) -> Result<CreatedToken, Error> {
        let call = self.call(Method::POST, &["auth", "tokens"]).json(request);
        self.execute(&call).await?.json()
    }

    /// `DELETE /v1/auth/tokens/{id}`: revokes a token on every node once applied.
    pub async fn revoke_token(&self, id: &str) -> Result<(), Error> {
        let call = self.call(Method::DELETE, &["auth", "tokens", id]);
        self.execute(&call).await.map(drop)
    }
}
