//! `scarab txn FILE`: a transaction (the body of `POST /v1/txn`) from a JSON file.

use std::path::PathBuf;

use anyhow::anyhow;

use scarab_client::types::TxnRequest;

use super::ClientOpts;
use super::configs::read_value;
use super::output::print_json;

#[derive(clap::Args)]
pub struct TxnArgs {
    /// The transaction as JSON (`-` for stdin):
    /// {"conditions": [{"key", "revision"|"exists"|"pointer"+"equals"}],
    ///  "ops": [{"op": "put", "key", "schema", "schema_version", "value"} | {"op": "delete", "key"}]}
    file: PathBuf,
    #[command(flatten)]
    opts: ClientOpts,
}

/// Prints the answer (the revision and each operation's result) as JSON, whatever `-o` says.
pub async fn run(a: TxnArgs) -> anyhow::Result<()> {
    let body = read_value(None, Some(&a.file))?;
    let txn: TxnRequest = serde_json::from_value(body)
        .map_err(|e| anyhow!("{} is not a transaction: {e}", a.file.display()))?;
    print_json(&a.opts.client()?.txn(&txn).await?);
    Ok(())
}
