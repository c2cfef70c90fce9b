//! `scarab txn FILE`: a transaction (the body of `POST /v1/txn`) from a JSON file.

use std::path::PathBuf;

use anyhow::anyhow;

use scarab_client::types::TxnRequest;

use super::ClientOpts;
use super::configs::read_value;

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
    let applied = a.opts.client()?.txn(&txn).await?;
    super::output::print_as(a.opts.output, &applied, |r| {
        let mut t = comfy_table::Table::new();
        t.set_header([
            "op",
            "key",
            "revision",
            "key_version",
            "schema",
            "schema_version",
        ]);
        for res in &r.results {
            t.add_row([
                super::output::wire_text(&res.op),
                res.meta.key.clone(),
                res.meta.revision.to_string(),
                res.meta.key_version.to_string(),
                res.meta.schema.clone(),
                res.meta.schema_version.to_string(),
            ]);
        }
        println!("{t}");
        println!("applied at revision {}", r.revision);
    });
    Ok(())
}
