//! Schema versions and per-schema policies: reading them (a version, a schema's versions, a
//! policy, plugin bytes) and the commands that change them, `PutSchema`, `DeleteSchema` and
//! `SetSchemaPolicy`, with the usage counts that keep a version in use from being deleted.
//!
//! Owns: the `sm_schemas`, `sm_plugins` and `sm_usage` records and the `policy/` records of
//! `sm_schema_meta`. Does not own: checking a JSON Schema or a plugin (done before proposing,
//! in `crate::schema`), the decode cache (`cache.rs`) or migrations (`migrations.rs`).

use std::sync::Arc;

use super::apply::{ApplyTx, By};
use super::keys::{Ks, decode_json, policy_key, schema_key, version_of};
use super::{
    CommandResult, DeleteSchema, PutSchema, Rejection, SchemaDeleted, SchemaPolicy,
    SchemaPolicySet, SchemaRecord, SchemaRegistered, SetSchemaPolicy, StateStore, StoreError,
};

impl StateStore {
    pub fn get_schema(&self, name: &str, version: u32) -> Result<Option<SchemaRecord>, StoreError> {
        self.schemas
            .get(schema_key(name, version))?
            .map(|b| decode_json("sm_schemas", &b))
            .transpose()
    }

    /// Whether `name` v`version` is registered (from the record cache while it is current).
    pub fn has_schema(&self, name: &str, version: u32) -> Result<bool, StoreError> {
        Ok(self.schema_record(name, version)?.is_some())
    }

    /// [`Self::get_schema`] for the write path: decoded once per stored record, shared, and
    /// read only once the schema records changed (`cache.rs`).
    pub fn schema_record(
        &self,
        name: &str,
        version: u32,
    ) -> Result<Option<Arc<SchemaRecord>>, StoreError> {
        if let Some(record) = self.schema_cache.current(name, version) {
            return Ok(Some(record));
        }
        let generation = self.schema_cache.generation();
        self.schemas
            .get(schema_key(name, version))?
            .map(|b| self.schema_cache.decode(name, version, &b, generation))
            .transpose()
    }

    /// Held while the schema records change: every reader of a schema record reads it again
    /// from when it is taken (so nothing read before the change is current during it) and
    /// again once it is dropped, after the change is committed or failed, which is before
    /// anyone learns that it applied.
    pub(super) fn schemas_changing(&self) -> SchemasChanging<'_> {
        self.schema_cache.changed();
        SchemasChanging(self)
    }

    /// All registered versions, ordered by name then version.
    pub fn list_schemas(&self, name: Option<&str>) -> Result<Vec<SchemaRecord>, StoreError> {
        let prefix = name.map(|n| format!("{n}/")).unwrap_or_default();
        self.schemas
            .prefix(prefix)
            .map(|g| {
                let (_, v) = g.into_inner()?;
                decode_json("sm_schemas", &v)
            })
            .collect()
    }

    /// The schema's policy (the default if none was set).
    pub fn schema_policy(&self, name: &str) -> Result<SchemaPolicy, StoreError> {
        Ok(match self.schema_meta.get(policy_key(name))? {
            Some(b) => decode_json("sm_schema_meta", &b)?,
            None => SchemaPolicy::default(),
        })
    }

    pub fn plugin_bytes(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.plugins.get(digest)?.map(|s| s.to_vec()))
    }
}

/// See [`StateStore::schemas_changing`].
pub(super) struct SchemasChanging<'s>(&'s StateStore);

impl Drop for SchemasChanging<'_> {
    fn drop(&mut self) {
        self.0.schema_cache.changed();
    }
}

impl ApplyTx<'_> {
    /// `PutSchema`: registers a version with its plugin bytes; the same content again is a
    /// no-op, other content under a registered version is refused.
    pub(super) fn put_schema(
        &mut self,
        op: PutSchema,
        by: &By,
    ) -> Result<CommandResult, StoreError> {
        let PutSchema {
            name,
            version,
            schema,
            plugin_digest,
            plugin,
            plugin_contract,
            refs,
        } = op;
        for r in &refs {
            if self.schema(&r.name, r.version)?.map(|t| t.revision) != Some(r.revision) {
                return Ok(CommandResult::Rejected(Rejection::ReferenceChanged {
                    uri: r.uri.clone(),
                    name: r.name.clone(),
                    version: r.version,
                }));
            }
        }
        if let Some(existing) = self.schema(&name, version)? {
            return Ok(
                if existing.schema == schema && existing.plugin_digest == plugin_digest {
                    CommandResult::SchemaRegistered(SchemaRegistered {
                        record: existing,
                        created: false,
                    })
                } else {
                    CommandResult::Rejected(Rejection::SchemaConflict { name, version })
                },
            );
        }
        self.meta.revision += 1;
        self.meta.schema_versions += 1;
        if let (Some(digest), Some(bytes)) = (&plugin_digest, plugin) {
            self.put(Ks::Plugins, digest.clone().into_bytes(), bytes);
        }
        let record = SchemaRecord {
            name,
            version,
            schema,
            plugin_digest,
            revision: self.meta.revision,
            registered_at: by.at_ms,
            registered_by: by.actor.to_string(),
            plugin_contract,
            refs,
        };
        self.put(
            Ks::Schemas,
            schema_key(&record.name, version),
            serde_json::to_vec(&record).expect("schema record serialises"),
        );
        self.audit_other(
            "schema.register",
            format!("schema/{}/{version}", record.name),
            by,
            serde_json::json!({
                "plugin_digest": record.plugin_digest,
                "plugin_contract": record.plugin_contract,
            }),
        );
        Ok(CommandResult::SchemaRegistered(SchemaRegistered {
            record,
            created: true,
        }))
    }

    /// `DeleteSchema`: removes a version no config uses, and its plugin bytes unless another
    /// version has the same plugin.
    pub(super) fn delete_schema(
        &mut self,
        op: DeleteSchema,
        by: &By,
    ) -> Result<CommandResult, StoreError> {
        let DeleteSchema { name, version } = op;
        let Some(record) = self.schema(&name, version)? else {
            return Ok(CommandResult::Rejected(Rejection::NotFound(format!(
                "schema {name} version {version}"
            ))));
        };
        let configs = self.usage(&name, version)?;
        if configs > 0 {
            return Ok(CommandResult::Rejected(Rejection::SchemaInUse {
                name,
                version,
                configs,
            }));
        }
        let users = self.referrers(&name, version)?;
        if !users.is_empty() {
            return Ok(CommandResult::Rejected(Rejection::SchemaReferenced {
                name,
                version,
                users,
            }));
        }
        self.meta.revision += 1;
        self.meta.schema_versions = self.meta.schema_versions.saturating_sub(1);
        self.remove(Ks::Schemas, schema_key(&name, version));
        if let Some(digest) = &record.plugin_digest
            && !self.digest_used_elsewhere(digest, &name, version)?
        {
            self.remove(Ks::Plugins, digest.clone().into_bytes());
        }
        self.audit_other(
            "schema.delete",
            format!("schema/{name}/{version}"),
            by,
            serde_json::json!({"plugin_digest": record.plugin_digest}),
        );
        Ok(CommandResult::SchemaDeleted(SchemaDeleted { record }))
    }

    /// `SetSchemaPolicy`: the policy of a schema that has at least one version.
    pub(super) fn set_schema_policy(
        &mut self,
        op: SetSchemaPolicy,
        by: &By,
    ) -> Result<CommandResult, StoreError> {
        let SetSchemaPolicy { name, policy } = op;
        if self.latest_version(&name)?.is_none() {
            return Ok(CommandResult::Rejected(Rejection::NoVersions(name)));
        }
        self.meta.revision += 1;
        self.put(
            Ks::SchemaMeta,
            policy_key(&name),
            serde_json::to_vec(&policy).expect("policy serialises"),
        );
        let detail = serde_json::to_value(&policy).expect("serialises");
        self.audit_other("schema.policy", format!("schema/{name}"), by, detail);
        Ok(CommandResult::SchemaPolicySet(SchemaPolicySet {
            name,
            policy,
            revision: self.meta.revision,
        }))
    }

    pub(super) fn schema(
        &self,
        name: &str,
        version: u32,
    ) -> Result<Option<SchemaRecord>, StoreError> {
        self.get(Ks::Schemas, &schema_key(name, version))?
            .map(|b| decode_json("sm_schemas", &b))
            .transpose()
    }

    /// The registered versions (`name vN`) whose `$ref`s resolve to `name` v`version`, this
    /// apply call's changes included. A scan: deleting a version is rare, and versions few.
    fn referrers(&self, name: &str, version: u32) -> Result<Vec<String>, StoreError> {
        let mut records = Vec::new();
        for g in self.store.schemas.iter() {
            let (k, v) = g.into_inner()?;
            if !self.overlay.contains_key(&(Ks::Schemas, k.to_vec())) {
                records.push(decode_json::<SchemaRecord>("sm_schemas", &v)?);
            }
        }
        for ((ks, _), v) in &self.overlay {
            if let (Ks::Schemas, Some(v)) = (ks, v) {
                records.push(decode_json("sm_schemas", v)?);
            }
        }
        let mut users: Vec<String> = records
            .into_iter()
            .filter(|r| {
                r.refs
                    .iter()
                    .any(|t| t.name == name && t.version == version)
            })
            .map(|r| format!("{} v{}", r.name, r.version))
            .collect();
        users.sort();
        Ok(users)
    }

    /// The highest registered version of `name`, this apply call's changes included.
    pub(super) fn latest_version(&self, name: &str) -> Result<Option<u32>, StoreError> {
        let prefix = format!("{name}/");
        let mut latest = None;
        for g in self.store.schemas.prefix(&prefix) {
            let k = g.key()?;
            if self.overlay.get(&(Ks::Schemas, k.to_vec())) == Some(&None) {
                continue;
            }
            latest = latest.max(version_of(&k));
        }
        for ((ks, k), v) in &self.overlay {
            if *ks == Ks::Schemas && v.is_some() && k.starts_with(prefix.as_bytes()) {
                latest = latest.max(version_of(k));
            }
        }
        Ok(latest)
    }

    pub(super) fn policy(&self, name: &str) -> Result<SchemaPolicy, StoreError> {
        Ok(match self.get(Ks::SchemaMeta, &policy_key(name))? {
            Some(b) => decode_json("sm_schema_meta", &b)?,
            None => SchemaPolicy::default(),
        })
    }

    fn usage(&self, name: &str, version: u32) -> Result<u64, StoreError> {
        Ok(match self.get(Ks::Usage, &schema_key(name, version))? {
            Some(b) => decode_json("sm_usage", &b)?,
            None => 0,
        })
    }

    pub(super) fn add_usage(
        &mut self,
        name: &str,
        version: u32,
        delta: i64,
    ) -> Result<(), StoreError> {
        let n = self.usage(name, version)?.saturating_add_signed(delta);
        let key = schema_key(name, version);
        if n == 0 {
            self.remove(Ks::Usage, key);
        } else {
            self.put(Ks::Usage, key, n.to_string().into_bytes());
        }
        Ok(())
    }

    fn digest_used_elsewhere(
        &self,
        digest: &str,
        name: &str,
        version: u32,
    ) -> Result<bool, StoreError> {
        // Schema versions are few (hundreds at most), so a scan is cheaper than a refcount.
        for g in self.store.schemas.iter() {
            let (k, v) = g.into_inner()?;
            if k.as_ref() == schema_key(name, version).as_slice() {
                continue;
            }
            if self.overlay.get(&(Ks::Schemas, k.to_vec())) == Some(&None) {
                continue;
            }
            let rec: SchemaRecord = decode_json("sm_schemas", &v)?;
            if rec.plugin_digest.as_deref() == Some(digest) {
                return Ok(true);
            }
        }
        Ok(self.overlay.iter().any(|((ks, _), v)| {
            *ks == Ks::Schemas
                && v.as_ref()
                    .and_then(|b| serde_json::from_slice::<SchemaRecord>(b).ok())
                    .is_some_and(|r| {
                        r.plugin_digest.as_deref() == Some(digest)
                            && (r.name != name || r.version != version)
                    })
        }))
    }
}

#[cfg(test)]
mod tests {
    use crate::store::testing::{Fixture, written};
    use crate::store::*;

    /// Deletes schema `s` v1.
    fn delete_schema(f: &mut Fixture) -> CommandResult {
        f.apply(Op::DeleteSchema(DeleteSchema {
            name: "s".into(),
            version: 1,
        }))
    }

    fn delete_config(f: &mut Fixture, key: &str) {
        f.apply(Op::DeleteConfig(DeleteConfig {
            key: key.into(),
            precondition: Precondition::None,
        }));
    }

    #[test]
    fn a_schema_version_in_use_cannot_be_deleted() {
        let mut f = Fixture::new();
        f.schema();
        written(f.put("a", "1", Precondition::None));
        assert!(matches!(
            delete_schema(&mut f),
            CommandResult::Rejected(Rejection::SchemaInUse { configs: 1, .. })
        ));
        delete_config(&mut f, "a");
        assert!(matches!(
            delete_schema(&mut f),
            CommandResult::SchemaDeleted(SchemaDeleted { .. })
        ));
    }

    /// Overwrites at the same version skip the count (`write_config`): it still counts each
    /// live config once, and none once they are deleted.
    #[test]
    fn overwritten_configs_count_once_each_for_their_version() {
        let mut f = Fixture::new();
        f.schema();
        for i in 0..5 {
            written(f.put("a", &i.to_string(), Precondition::None));
            written(f.put("b", &i.to_string(), Precondition::None));
        }
        assert!(matches!(
            delete_schema(&mut f),
            CommandResult::Rejected(Rejection::SchemaInUse { configs: 2, .. })
        ));
        delete_config(&mut f, "a");
        delete_config(&mut f, "b");
        assert!(matches!(
            delete_schema(&mut f),
            CommandResult::SchemaDeleted(SchemaDeleted { .. })
        ));
    }
}
