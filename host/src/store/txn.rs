//! Transactions (`Txn`): every condition and every operation is checked against the state
//! (and the earlier commands of the same apply call) before anything is written; then every
//! operation is written at one new revision, so a reader sees all or none of them.
//!
//! Owns: the checks of a transaction (duplicate keys, conditions, each operation's own check)
//! and its all-or-nothing write. Does not own: how one config is written or deleted
//! (`configs.rs`).

use super::apply::{ApplyTx, By};
use super::configs::NewValue;
use super::{CommandResult, FailedCondition, Rejection, StoreError, Test, Txn, TxnApplied, TxnOp};

impl ApplyTx<'_> {
    /// A transaction: every condition and every operation is checked before anything is
    /// written, then all operations are written at one new revision.
    pub(super) fn txn(&mut self, op: Txn, by: &mut By) -> Result<CommandResult, StoreError> {
        let Txn { conditions, ops } = op;
        let mut keys = std::collections::HashSet::new();
        if let Some(dup) = ops.iter().find(|op| !keys.insert(op.key())) {
            return Ok(CommandResult::Rejected(Rejection::InvalidTxn(format!(
                "key {} appears in more than one operation",
                dup.key()
            ))));
        }
        if ops.is_empty() {
            return Ok(CommandResult::Rejected(Rejection::InvalidTxn(
                "a transaction needs at least one operation".into(),
            )));
        }
        let mut failed = Vec::new();
        for (index, c) in conditions.iter().enumerate() {
            let current = self.live_config(&c.key)?;
            let holds = match &c.test {
                Test::Revision(r) => current.as_ref().is_some_and(|e| e.meta.revision == *r),
                Test::Exists(exists) => current.is_some() == *exists,
                Test::ValueAt { pointer, equals } => current.as_ref().is_some_and(|e| {
                    serde_json::from_str::<serde_json::Value>(&e.value)
                        .ok()
                        .is_some_and(|v| v.pointer(pointer) == Some(equals))
                }),
                Test::ValueEquals { pointer, equals } => current.as_ref().is_some_and(|e| {
                    match (
                        serde_json::from_str::<serde_json::Value>(&e.value),
                        serde_json::from_str::<serde_json::Value>(equals),
                    ) {
                        (Ok(v), Ok(equals)) => v
                            .pointer(pointer)
                            .is_some_and(|at| crate::json::equal(at, &equals)),
                        _ => false,
                    }
                }),
            };
            if !holds {
                failed.push(FailedCondition {
                    index,
                    key: c.key.clone(),
                    current_revision: current.map(|e| e.meta.revision),
                });
            }
        }
        if !failed.is_empty() {
            return Ok(CommandResult::Rejected(Rejection::ConditionFailed {
                failed,
            }));
        }
        let mut previous = Vec::with_capacity(ops.len());
        for op in &ops {
            let prev = self.raw_config(op.key())?;
            let rejected = match op {
                TxnOp::Put {
                    schema,
                    schema_version,
                    plugin_digest,
                    ..
                } => self
                    .check_put(schema, *schema_version, plugin_digest)?
                    .err(),
                TxnOp::Delete { key } => prev
                    .as_ref()
                    .is_none_or(|p| p.deleted)
                    .then(|| Rejection::NotFound(format!("config {key}"))),
            };
            if let Some(r) = rejected {
                return Ok(CommandResult::Rejected(r));
            }
            previous.push(prev);
        }
        self.meta.revision += 1;
        by.revision = self.meta.revision;
        let detail = serde_json::json!({"txn": {"operations": ops.len()}});
        let mut results = Vec::with_capacity(ops.len());
        for (op, prev) in ops.into_iter().zip(previous) {
            let before = prev.as_ref().filter(|p| !p.deleted).map(|p| p.revision);
            let (meta, action) = match op {
                TxnOp::Put {
                    key,
                    schema,
                    schema_version,
                    plugin_digest,
                    value,
                } => {
                    let v = NewValue {
                        key,
                        schema,
                        schema_version,
                        plugin_digest,
                        value,
                    };
                    let action = if before.is_some() {
                        "config.update"
                    } else {
                        "config.create"
                    };
                    (self.write_config(v, by, prev)?, action)
                }
                TxnOp::Delete { .. } => {
                    let current = prev.expect("checked above");
                    (self.write_tombstone(current, by)?, "config.delete")
                }
            };
            self.audit_config(action, &meta, before, by, Some(detail.clone()));
            results.push(meta);
        }
        Ok(CommandResult::TxnApplied(TxnApplied {
            revision: by.revision,
            results,
        }))
    }
}

#[cfg(test)]
mod tests {
    use crate::store::testing::{Fixture, written};
    use crate::store::*;

    fn txn(f: &mut Fixture, conditions: Vec<Condition>, ops: Vec<TxnOp>) -> CommandResult {
        f.apply(Op::Txn(Txn { conditions, ops }))
    }

    fn tput(key: &str, value: &str) -> TxnOp {
        TxnOp::Put {
            key: key.into(),
            schema: "s".into(),
            schema_version: 1,
            plugin_digest: None,
            value: value.into(),
        }
    }

    #[test]
    fn a_transaction_writes_every_operation_at_one_revision() {
        let mut f = Fixture::new();
        f.schema();
        written(f.put("gone", "0", Precondition::None));
        let base = f.store.applied().revision;
        let CommandResult::TxnApplied(TxnApplied { revision, results }) = txn(
            &mut f,
            vec![Condition {
                key: "gone".into(),
                test: Test::ValueEquals {
                    pointer: "".into(),
                    equals: "0".into(),
                },
            }],
            vec![
                tput("a", "1"),
                tput("b", "2"),
                TxnOp::Delete { key: "gone".into() },
            ],
        ) else {
            panic!("expected the transaction to apply")
        };
        assert_eq!(revision, base + 1);
        assert!(results.iter().all(|m| m.revision == revision));
        assert!(results[2].deleted);
        assert_eq!(f.store.applied().revision, base + 1);
        assert_eq!(f.store.get_config("b").unwrap().unwrap().value, "2");
        assert!(f.store.get_config("gone").unwrap().is_none());
    }

    #[test]
    fn a_transaction_with_a_failed_condition_writes_nothing() {
        let mut f = Fixture::new();
        f.schema();
        let a = written(f.put("a", "1", Precondition::None));
        let before = f.store.applied();
        let r = txn(
            &mut f,
            vec![
                Condition {
                    key: "a".into(),
                    test: Test::Revision(a.revision),
                },
                Condition {
                    key: "b".into(),
                    test: Test::Exists(true),
                },
            ],
            vec![tput("a", "2"), tput("c", "3")],
        );
        let CommandResult::Rejected(Rejection::ConditionFailed { failed }) = r else {
            panic!("expected a failed condition, got {r:?}")
        };
        assert_eq!(failed.len(), 1);
        assert_eq!((failed[0].index, failed[0].key.as_str()), (1, "b"));
        assert_eq!(f.store.get_config("a").unwrap().unwrap().value, "1");
        assert!(f.store.get_config("c").unwrap().is_none());
        assert_eq!(f.store.applied().revision, before.revision);
        assert_eq!(f.store.applied().audit_seq, before.audit_seq);
    }

    #[test]
    fn a_transaction_with_one_impossible_operation_writes_nothing() {
        let mut f = Fixture::new();
        f.schema();
        let r = txn(
            &mut f,
            vec![],
            vec![tput("a", "1"), TxnOp::Delete { key: "nope".into() }],
        );
        assert!(matches!(r, CommandResult::Rejected(Rejection::NotFound(_))));
        assert!(f.store.get_config("a").unwrap().is_none());
    }
}
