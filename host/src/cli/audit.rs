//! `scarab audit`: one page of the audit trail, newest first.

use comfy_table::Table;

use scarab_client::AuditQuery;

use super::output::{cell, print_json};
use super::{ClientOpts, Output};

#[derive(clap::Args)]
pub struct AuditArgs {
    /// Records whose object (key, schema/..., migration/..., settings/..., cluster) starts
    /// with this.
    #[arg(long, default_value = "")]
    prefix: String,
    /// Only changes made by this actor.
    #[arg(long = "by")]
    by: Option<String>,
    /// An action (config.update) or a family (config).
    #[arg(long)]
    action: Option<String>,
    /// From this time on (RFC 3339).
    #[arg(long)]
    since: Option<String>,
    /// Before this time (RFC 3339).
    #[arg(long)]
    until: Option<String>,
    #[arg(long, default_value_t = 50)]
    limit: usize,
    #[command(flatten)]
    opts: ClientOpts,
}

pub async fn run(a: AuditArgs) -> anyhow::Result<()> {
    let limit = u32::try_from(a.limit.clamp(1, 1000)).expect("at most 1000");
    let mut query = AuditQuery::new().prefix(a.prefix).limit(limit);
    if let Some(actor) = a.by {
        query = query.actor(actor);
    }
    if let Some(action) = a.action {
        query = query.action(action);
    }
    if let Some(since) = a.since {
        query = query.since(since);
    }
    if let Some(until) = a.until {
        query = query.until(until);
    }
    let page = a.opts.client()?.audit_page(&query).await?.into_inner();
    match a.opts.output {
        Output::Json | Output::Yaml => print_json(&page),
        Output::Table => {
            let mut t = Table::new();
            t.set_header([
                "seq",
                "at",
                "actor",
                "action",
                "object",
                "revision_after",
                "reason",
            ]);
            for r in &page.items {
                t.add_row([
                    r.seq.to_string(),
                    cell(r.at.as_deref()),
                    r.actor.clone(),
                    r.action.clone(),
                    r.object.clone(),
                    cell(r.revision_after),
                    cell(r.reason.as_deref()),
                ]);
            }
            println!("{t}");
        }
    }
    Ok(())
}
