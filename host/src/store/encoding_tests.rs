//! The log encoding and the stored metadata, pinned byte for byte: commands and results (which
//! travel in log entries and between nodes) and the state machine's metadata, as the versions
//! before the typed results wrote them (a membership entry is pinned in
//! `raft::state_machine`). Test only.

use std::collections::{BTreeMap, BTreeSet};

use openraft::CommittedLeaderId;

use super::*;

const COMMANDS: [&str; 11] = [
    r#"{"actor":"actor","at_ms":42,"op":{"PutConfig":{"key":"k","schema":"s","schema_version":1,"plugin_digest":"d","value":"{\"a\":1}","precondition":{"Revision":3}}},"context":{"reason":"why"}}"#,
    r#"{"actor":"actor","at_ms":42,"op":{"DeleteConfig":{"key":"k","precondition":"Absent"}},"context":{"reason":"why"}}"#,
    r#"{"actor":"actor","at_ms":42,"op":{"PutSchema":{"name":"s","version":1,"schema":"{}","plugin_digest":"d","plugin":"AAEC/w==","plugin_contract":{"wit":"0.2.0","migration":{"from_version":1,"downgrade":true}}}},"context":{"reason":"why"}}"#,
    r#"{"actor":"actor","at_ms":42,"op":{"PutSchema":{"name":"s","version":1,"schema":"{}","plugin_digest":null,"plugin":null,"plugin_contract":null}},"context":{"reason":"why"}}"#,
    r#"{"actor":"actor","at_ms":42,"op":{"SetSchemaPolicy":{"name":"s","policy":{"writes":"latest"}}},"context":{"reason":"why"}}"#,
    r#"{"actor":"actor","at_ms":42,"op":{"SetHistoryRetention":{"retention":{"keep":3,"max_age_seconds":60}}},"context":{"reason":"why"}}"#,
    r#"{"actor":"actor","at_ms":42,"op":{"StartMigration":{"name":"s","target_version":2,"total":10}},"context":{"reason":"why"}}"#,
    r#"{"actor":"actor","at_ms":42,"op":{"MigrateBatch":{"name":"s","id":9,"writes":[{"key":"k","expected_revision":1,"plugin_digest":null,"value":"1"}],"failures":[{"key":"x","revision":2,"reason":"r"}]}},"context":{"reason":"why"}}"#,
    r#"{"actor":"actor","at_ms":42,"op":{"FinishMigration":{"name":"s","id":9}},"context":{"reason":"why"}}"#,
    r#"{"actor":"actor","at_ms":42,"op":{"DeleteSchema":{"name":"s","version":1}},"context":{"reason":"why"}}"#,
    r#"{"actor":"actor","at_ms":42,"op":{"Txn":{"conditions":[{"key":"a","test":{"Revision":1}},{"key":"a","test":{"Exists":false}},{"key":"a","test":{"ValueAt":{"pointer":"/x","equals":1}}},{"key":"a","test":{"ValueEquals":{"pointer":"","equals":"2"}}}],"ops":[{"Put":{"key":"a","schema":"s","schema_version":1,"plugin_digest":null,"value":"2"}},{"Delete":{"key":"b"}}]}},"context":{"reason":"why"}}"#,
];

const RESULTS: [&str; 10] = [
    r#"{"ConfigWritten":{"meta":{"key":"k","schema":"s","schema_version":2,"revision":7,"key_version":3,"created_at":1,"created_by":"a","updated_at":2,"updated_by":"b","plugin_digest":"sha256:00"},"created":true}}"#,
    r#"{"ConfigDeleted":{"meta":{"key":"k","schema":"s","schema_version":2,"revision":7,"key_version":3,"created_at":1,"created_by":"a","updated_at":2,"updated_by":"b","plugin_digest":"sha256:00","deleted":true}}}"#,
    r#"{"SchemaRegistered":{"record":{"name":"s","version":2,"schema":"{}","plugin_digest":null,"revision":4,"registered_at":5,"registered_by":"c","plugin_contract":{"wit":"0.2.0","migration":{"from_version":1,"downgrade":true}}},"created":false}}"#,
    r#"{"SchemaDeleted":{"record":{"name":"s","version":2,"schema":"{}","plugin_digest":null,"revision":4,"registered_at":5,"registered_by":"c","plugin_contract":{"wit":"0.2.0","migration":{"from_version":1,"downgrade":true}}}}}"#,
    r#"{"SchemaPolicySet":{"name":"s","policy":{"writes":"any"},"revision":3}}"#,
    r#"{"Migration":{"id":9,"name":"s","target_version":2,"status":"running","total":3,"done":1,"skipped":0,"failed":[{"key":"x","revision":2,"reason":"r"}],"failed_count":1,"started_at":1,"started_by":"a","updated_at":2,"finished_at":null}}"#,
    r#"{"HistoryRetentionSet":{"retention":{"keep":100},"revision":4}}"#,
    r#"{"TxnApplied":{"revision":5,"results":[{"key":"k","schema":"s","schema_version":2,"revision":7,"key_version":3,"created_at":1,"created_by":"a","updated_at":2,"updated_by":"b","plugin_digest":"sha256:00"}]}}"#,
    r#"{"Rejected":{"PreconditionFailed":{"key":"k","current":1}}}"#,
    r#"{"Rejected":{"ConditionFailed":{"failed":[{"index":0,"key":"k","current_revision":null}]}}}"#,
];

const SM_META: &str = r#"{"last_applied":{"leader_id":{"term":3,"node_id":1},"index":17},"membership":{"log_id":{"leader_id":{"term":3,"node_id":1},"index":17},"membership":{"configs":[[1]],"nodes":{"1":{"api":"http://a","peer":"http://p"},"2":{"api":"http://b","peer":"http://q"}}}},"revision":5,"live_configs":2,"schema_versions":1,"history":{"keep":3,"max_age_seconds":9},"audit_seq":4,"history_floor":1}"#;

fn meta() -> ConfigMeta {
    ConfigMeta {
        key: "k".into(),
        schema: "s".into(),
        schema_version: 2,
        revision: 7,
        key_version: 3,
        created_at: 1,
        created_by: "a".into(),
        updated_at: 2,
        updated_by: "b".into(),
        plugin_digest: Some("sha256:00".into()),
        deleted: false,
    }
}

fn record() -> SchemaRecord {
    SchemaRecord {
        name: "s".into(),
        version: 2,
        schema: "{}".into(),
        plugin_digest: None,
        revision: 4,
        registered_at: 5,
        registered_by: "c".into(),
        plugin_contract: Some(PluginContract {
            wit: "0.2.0".into(),
            migration: Some(MigrationSpec {
                from_version: 1,
                downgrade: true,
            }),
        }),
        refs: vec![],
    }
}

fn failures() -> Vec<MigrationFailure> {
    vec![MigrationFailure {
        key: "x".into(),
        revision: 2,
        reason: "r".into(),
    }]
}

fn ops() -> Vec<Op> {
    vec![
        PutConfig {
            key: "k".into(),
            schema: "s".into(),
            schema_version: 1,
            plugin_digest: Some("d".into()),
            value: "{\"a\":1}".into(),
            precondition: Precondition::Revision(3),
        }
        .into(),
        DeleteConfig {
            key: "k".into(),
            precondition: Precondition::Absent,
        }
        .into(),
        PutSchema {
            name: "s".into(),
            version: 1,
            schema: "{}".into(),
            plugin_digest: Some("d".into()),
            plugin: Some(vec![0, 1, 2, 255]),
            plugin_contract: record().plugin_contract,
            refs: vec![],
        }
        .into(),
        PutSchema {
            name: "s".into(),
            version: 1,
            schema: "{}".into(),
            plugin_digest: None,
            plugin: None,
            plugin_contract: None,
            refs: vec![],
        }
        .into(),
        SetSchemaPolicy {
            name: "s".into(),
            policy: SchemaPolicy {
                writes: WritePolicy::Latest,
            },
        }
        .into(),
        SetHistoryRetention {
            retention: HistoryRetention {
                keep: 3,
                max_age_seconds: Some(60),
                ..Default::default()
            },
        }
        .into(),
        StartMigration {
            name: "s".into(),
            target_version: 2,
            total: 10,
        }
        .into(),
        MigrateBatch {
            name: "s".into(),
            id: 9,
            writes: vec![MigrationWrite {
                key: "k".into(),
                expected_revision: 1,
                plugin_digest: None,
                value: "1".into(),
            }],
            failures: failures(),
        }
        .into(),
        FinishMigration {
            name: "s".into(),
            id: 9,
        }
        .into(),
        DeleteSchema {
            name: "s".into(),
            version: 1,
        }
        .into(),
        Txn {
            conditions: vec![
                Condition {
                    key: "a".into(),
                    test: Test::Revision(1),
                },
                Condition {
                    key: "a".into(),
                    test: Test::Exists(false),
                },
                Condition {
                    key: "a".into(),
                    test: Test::ValueAt {
                        pointer: "/x".into(),
                        equals: serde_json::json!(1),
                    },
                },
                Condition {
                    key: "a".into(),
                    test: Test::ValueEquals {
                        pointer: "".into(),
                        equals: "2".into(),
                    },
                },
            ],
            ops: vec![
                TxnOp::Put {
                    key: "a".into(),
                    schema: "s".into(),
                    schema_version: 1,
                    plugin_digest: None,
                    value: "2".into(),
                },
                TxnOp::Delete { key: "b".into() },
            ],
        }
        .into(),
    ]
}

fn results() -> Vec<CommandResult> {
    let migration = MigrationRecord {
        id: 9,
        name: "s".into(),
        target_version: 2,
        status: MigrationStatus::Running,
        total: 3,
        done: 1,
        skipped: 0,
        failed: failures(),
        failed_count: 1,
        started_at: 1,
        started_by: "a".into(),
        updated_at: 2,
        finished_at: None,
    };
    vec![
        CommandResult::ConfigWritten(ConfigWritten {
            meta: meta(),
            created: true,
        }),
        CommandResult::ConfigDeleted(ConfigDeleted {
            meta: ConfigMeta {
                deleted: true,
                ..meta()
            },
        }),
        CommandResult::SchemaRegistered(SchemaRegistered {
            record: record(),
            created: false,
        }),
        CommandResult::SchemaDeleted(SchemaDeleted { record: record() }),
        CommandResult::SchemaPolicySet(SchemaPolicySet {
            name: "s".into(),
            policy: SchemaPolicy::default(),
            revision: 3,
        }),
        CommandResult::Migration(migration),
        CommandResult::HistoryRetentionSet(HistoryRetentionSet {
            retention: HistoryRetention::default(),
            revision: 4,
        }),
        CommandResult::TxnApplied(TxnApplied {
            revision: 5,
            results: vec![meta()],
        }),
        CommandResult::Rejected(Rejection::PreconditionFailed {
            key: "k".into(),
            current: Some(1),
        }),
        CommandResult::Rejected(Rejection::ConditionFailed {
            failed: vec![FailedCondition {
                index: 0,
                key: "k".into(),
                current_revision: None,
            }],
        }),
    ]
}

/// `value` encodes to exactly `golden`, and `golden` decodes to `value`.
fn pinned<T>(value: &T, golden: &str)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    assert_eq!(serde_json::to_string(value).unwrap(), golden);
    assert_eq!(&serde_json::from_str::<T>(golden).unwrap(), value);
}

#[test]
fn commands_encode_as_they_always_did() {
    let ops = ops();
    assert_eq!(ops.len(), COMMANDS.len());
    for (op, golden) in ops.into_iter().zip(COMMANDS) {
        let mut cmd = Command::new("actor".into(), 42, op);
        cmd.context.reason = Some("why".into());
        pinned(&cmd, golden);
    }
}

#[test]
fn results_encode_as_they_always_did() {
    let results = results();
    assert_eq!(results.len(), RESULTS.len());
    for (result, golden) in results.iter().zip(RESULTS) {
        pinned(result, golden);
    }
}

#[test]
fn the_state_machine_metadata_encodes_as_it_always_did() {
    let log_id = openraft::LogId::new(CommittedLeaderId::new(3, 1), 17);
    let nodes = BTreeMap::from([
        (
            1,
            NodeInfo {
                api: "http://a".into(),
                peer: "http://p".into(),
            },
        ),
        (
            2,
            NodeInfo {
                api: "http://b".into(),
                peer: "http://q".into(),
            },
        ),
    ]);
    let membership = Membership::new(vec![BTreeSet::from([1])], nodes);
    let sm = SmMeta {
        last_applied: Some(log_id),
        membership: StoredMembership::new(Some(log_id), membership),
        revision: 5,
        live_configs: 2,
        schema_versions: 1,
        history: HistoryRetention {
            keep: 3,
            max_age_seconds: Some(9),
            ..Default::default()
        },
        audit_seq: 4,
        history_floor: 1,
        // Defaults are not written: the metadata reads and writes as before retention.
        audit: AuditRetention::default(),
        audit_floor: 0,
    };
    pinned(&sm, SM_META);
    let with_retention = SmMeta {
        history: HistoryRetention {
            keep: 3,
            max_age_seconds: None,
            watch_window: 50,
        },
        audit: AuditRetention {
            max_records: 7,
            max_age_seconds: Some(8),
        },
        audit_floor: 2,
        ..sm
    };
    pinned(
        &with_retention,
        &SM_META.replace(
            r#""history":{"keep":3,"max_age_seconds":9},"audit_seq":4,"history_floor":1"#,
            r#""history":{"keep":3,"watch_window":50},"audit_seq":4,"history_floor":1,"audit":{"max_records":7,"max_age_seconds":8},"audit_floor":2"#,
        ),
    );
}

/// The retention commands added with the audit trail's retention, and their results.
#[test]
fn retention_commands_encode_as_pinned() {
    let history = Command {
        actor: "actor".into(),
        at_ms: 42,
        op: SetHistoryRetention {
            retention: HistoryRetention {
                keep: 3,
                max_age_seconds: None,
                watch_window: 500,
            },
        }
        .into(),
        context: Context::default(),
    };
    pinned(
        &history,
        r#"{"actor":"actor","at_ms":42,"op":{"SetHistoryRetention":{"retention":{"keep":3,"watch_window":500}}}}"#,
    );
    let audit = Command {
        actor: "actor".into(),
        at_ms: 42,
        op: SetAuditRetention {
            retention: AuditRetention {
                max_records: 10,
                max_age_seconds: Some(60),
            },
        }
        .into(),
        context: Context::default(),
    };
    pinned(
        &audit,
        r#"{"actor":"actor","at_ms":42,"op":{"SetAuditRetention":{"retention":{"max_records":10,"max_age_seconds":60}}}}"#,
    );
    pinned(
        &CommandResult::AuditRetentionSet(AuditRetentionSet {
            retention: AuditRetention::default(),
            revision: 4,
        }),
        r#"{"AuditRetentionSet":{"retention":{"max_records":100000},"revision":4}}"#,
    );
}

/// Each kind of command gets its own result back, and any other result is refused.
#[test]
fn a_proposal_takes_only_its_own_result() {
    let written = CommandResult::ConfigWritten(ConfigWritten {
        meta: meta(),
        created: true,
    });
    assert!(<PutConfig as Proposal>::output(written.clone()).is_ok());
    assert!(<DeleteConfig as Proposal>::output(written.clone()).is_err());
    let wrong = <Txn as Proposal>::output(written).unwrap_err();
    assert!(
        wrong
            .to_string()
            .starts_with("unexpected apply result ConfigWritten")
    );
    let rejected = CommandResult::Rejected(Rejection::NotFound("x".into()));
    assert!(<PutConfig as Proposal>::output(rejected).is_err());
}

/// A version's references (new in the record and the command): pinned, and absent from the
/// encoding when empty, so that every record and command written before them encodes as it
/// always did (above) and decodes with none.
#[test]
fn schema_references_encode_only_when_present() {
    let record = SchemaRecord {
        refs: vec![SchemaRef {
            uri: "scarab:schemas/common/versions/1".into(),
            name: "common".into(),
            version: 1,
            revision: 3,
        }],
        ..record()
    };
    pinned(
        &record,
        r#"{"name":"s","version":2,"schema":"{}","plugin_digest":null,"revision":4,"registered_at":5,"registered_by":"c","plugin_contract":{"wit":"0.2.0","migration":{"from_version":1,"downgrade":true}},"refs":[{"uri":"scarab:schemas/common/versions/1","name":"common","version":1,"revision":3}]}"#,
    );
    let put = PutSchema {
        name: "s".into(),
        version: 1,
        schema: "{}".into(),
        plugin_digest: None,
        plugin: None,
        plugin_contract: None,
        refs: record.refs.clone(),
    };
    pinned(
        &put,
        r#"{"name":"s","version":1,"schema":"{}","plugin_digest":null,"plugin":null,"plugin_contract":null,"refs":[{"uri":"scarab:schemas/common/versions/1","name":"common","version":1,"revision":3}]}"#,
    );
}
