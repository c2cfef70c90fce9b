//! `/v1/schemas`: registrations, plugins, validation, policies and storage migrations.

use super::*;

impl Client {
    // ---------------------------------------------------------------- schemas

    /// `GET /v1/schemas`: every schema name and its versions.
    pub async fn schemas(&self) -> Result<Read<SchemaList>, Error> {
        let call = self
            .call(Method::GET, &["schemas"])
            .consistency(self.consistency);
        self.execute(&call).await?.read()
    }

    /// `GET /v1/schemas/{name}`: every version's registration.
    pub async fn schema_versions(&self, name: &str) -> Result<Read<SchemaVersions>, Error> {
        let call = self
            .call(Method::GET, &["schemas", name])
            .consistency(self.consistency);
        self.execute(&call).await?.read()
    }

    /// `GET /v1/schemas/{name}/versions/{version}`: the registration and its JSON Schema.
    pub async fn schema_version(
        &self,
        name: &str,
        version: u32,
    ) -> Result<Read<SchemaVersion>, Error> {
        let v = version.to_string();
        let call = self
            .call(Method::GET, &["schemas", name, "versions", &v])
            .consistency(self.consistency);
        self.execute(&call).await?.read()
    }

    /// `PUT /v1/schemas/{name}/versions/{version}`: registers a version (`created`: 201;
    /// registering the identical content again is a no-op, 200). Refused with 409
    /// `incompatible_schema_version` when stored configs would not survive the upgrade
    /// ([`ApiError::compat_report`]), unless [`SchemaUpload::force`].
    pub async fn register_schema(
        &self,
        name: &str,
        version: u32,
        upload: &SchemaUpload,
    ) -> Result<Written<Registered>, Error> {
        let v = version.to_string();
        let mut call = self.call(Method::PUT, &["schemas", name, "versions", &v]);
        if upload.force {
            call = call.query("force", "true");
        }
        call.body = Body::Multipart {
            schema: upload.schema.clone(),
            plugin: upload.plugin.clone(),
        };
        self.execute(&call).await?.written()
    }

    /// `POST /v1/schemas/{name}/versions/{version}/compatibility`: the report registering
    /// this upload would give, without registering anything.
    pub async fn check_compatibility(
        &self,
        name: &str,
        version: u32,
        upload: &SchemaUpload,
    ) -> Result<CompatibilityCheck, Error> {
        let v = version.to_string();
        let mut call = self
            .call(
                Method::POST,
                &["schemas", name, "versions", &v, "compatibility"],
            )
            .idempotency(Idempotency::Read);
        call.body = Body::Multipart {
            schema: upload.schema.clone(),
            plugin: upload.plugin.clone(),
        };
        self.execute(&call).await?.json()
    }

    /// `DELETE /v1/schemas/{name}/versions/{version}` (409 `schema_in_use` while a config
    /// uses it).
    pub async fn delete_schema(&self, name: &str, version: u32) -> Result<SchemaVersion, Error> {
        let v = version.to_string();
        let call = self.call(Method::DELETE, &["schemas", name, "versions", &v]);
        self.execute(&call).await?.json()
    }

    /// `GET /v1/schemas/{name}/versions/{version}/plugin`: the plugin's bytes (404 without
    /// one).
    pub async fn plugin(&self, name: &str, version: u32) -> Result<Plugin, Error> {
        let v = version.to_string();
        let call = self
            .call(Method::GET, &["schemas", name, "versions", &v, "plugin"])
            .consistency(self.consistency);
        let answer = self.execute(&call).await?;
        let digest = answer
            .headers
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .map(|t| t.trim_matches('"').to_string());
        Ok(Plugin {
            digest,
            bytes: answer.body,
        })
    }

    /// `POST /v1/schemas/{name}/versions/{version}/validate`: validates `document` without
    /// storing it; `key` tells the plugin where it would go.
    pub async fn validate(
        &self,
        name: &str,
        version: u32,
        document: &serde_json::Value,
        key: Option<&str>,
    ) -> Result<ValidateResult, Error> {
        let v = version.to_string();
        let call = self
            .call(Method::POST, &["schemas", name, "versions", &v, "validate"])
            .opt_query("key", key)
            .json(document)
            .idempotency(Idempotency::Read);
        self.execute(&call).await?.json()
    }

    /// `GET /v1/schemas/{name}/policy`.
    pub async fn policy(&self, name: &str) -> Result<Read<PolicyView>, Error> {
        let call = self
            .call(Method::GET, &["schemas", name, "policy"])
            .consistency(self.consistency);
        self.execute(&call).await?.read()
    }

    /// `PUT /v1/schemas/{name}/policy`: which versions accept writes.
    pub async fn set_policy(&self, name: &str, policy: &SchemaPolicy) -> Result<PolicySet, Error> {
        let call = self
            .call(Method::PUT, &["schemas", name, "policy"])
            .json(policy);
        self.execute(&call).await?.json()
    }

    // ---------------------------------------------------------------- migrations

    /// `POST /v1/schemas/{name}/migrations`: starts rewriting every config of the schema
    /// to `target_version` (202; follow it with [`Client::migration`]).
    pub async fn start_migration(
        &self,
        name: &str,
        target_version: u32,
    ) -> Result<Migration, Error> {
        let call = self
            .call(Method::POST, &["schemas", name, "migrations"])
            .json(&StartMigration {
                target_version,
                dry_run: false,
            });
        self.execute(&call).await?.json()
    }

    /// The same with `dry_run`: converts every config and reports, writes nothing.
    pub async fn dry_run_migration(
        &self,
        name: &str,
        target_version: u32,
    ) -> Result<DryRun, Error> {
        let call = self
            .call(Method::POST, &["schemas", name, "migrations"])
            .json(&StartMigration {
                target_version,
                dry_run: true,
            })
            .idempotency(Idempotency::Read);
        self.execute(&call).await?.json()
    }

    /// `GET /v1/schemas/{name}/migrations`: the schema's migrations and their progress.
    pub async fn migrations(&self, name: &str) -> Result<Read<MigrationList>, Error> {
        let call = self
            .call(Method::GET, &["schemas", name, "migrations"])
            .consistency(self.consistency);
        self.execute(&call).await?.read()
    }

    /// `GET /v1/schemas/{name}/migrations/{id}`.
    pub async fn migration(&self, name: &str, id: u64) -> Result<Read<Migration>, Error> {
        let id = id.to_string();
        let call = self
            .call(Method::GET, &["schemas", name, "migrations", &id])
            .consistency(self.consistency);
        self.execute(&call).await?.read()
    }
}
