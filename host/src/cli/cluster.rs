//! `scarab cluster ...`: the membership, and changes to it.

use clap::Subcommand;
use comfy_table::Table;

use scarab_client::types::{ClusterView, JoinRequest};

use super::output::{cell, print_json, wire_text};
use super::{ClientOpts, Output};

#[derive(Subcommand)]
pub enum ClusterCmd {
    /// Members, roles, leader, term, and each member's matched index and lag.
    Status {
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Add a node: it must answer at both URLs, joins as a learner, catches up, and is then
    /// promoted (unless --learner). Refused with member_unreachable if it does not answer;
    /// left a learner (learner_not_caught_up) if it does not catch up within the leader's
    /// write timeout: promote it later.
    Add {
        node_id: u64,
        /// The node's API URL.
        #[arg(long)]
        api: String,
        /// The node's peer URL.
        #[arg(long)]
        peer: String,
        /// Keep it a learner (no vote).
        #[arg(long)]
        learner: bool,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Make a learner a voter, once it answers and has caught up. Also finishes a change a
    /// dead leader left half-done that adds this node.
    Promote {
        node_id: u64,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Remove a member (the leader too: the others elect a new one). Refused with
    /// quorum_at_risk when too few of the remaining voters answer. Also rolls back a change a
    /// dead leader left half-done that adds this node.
    Remove {
        node_id: u64,
        #[command(flatten)]
        opts: ClientOpts,
    },
}

/// Every command prints the cluster view that the leader answers with.
pub async fn run(cmd: ClusterCmd) -> anyhow::Result<()> {
    let (opts, view) = match cmd {
        ClusterCmd::Status { opts } => {
            let view = opts.client()?.cluster().await?;
            (opts, view)
        }
        ClusterCmd::Add {
            node_id,
            api,
            peer,
            learner,
            opts,
        } => {
            let mut member = JoinRequest::new(node_id, api, peer);
            if learner {
                member = member.learner();
            }
            let view = opts.client()?.add_member(&member).await?;
            (opts, view)
        }
        ClusterCmd::Promote { node_id, opts } => {
            let view = opts.client()?.promote_member(node_id).await?;
            (opts, view)
        }
        ClusterCmd::Remove { node_id, opts } => {
            let view = opts.client()?.remove_member(node_id).await?;
            (opts, view)
        }
    };
    match opts.output {
        Output::Json | Output::Yaml => print_json(&view),
        Output::Table => print_cluster(&view),
    }
    Ok(())
}

fn print_cluster(v: &ClusterView) {
    println!(
        "leader: {}   term: {}   last log index: {}",
        cell(v.leader),
        v.term,
        cell(v.last_log_index)
    );
    let mut t = Table::new();
    t.set_header(["node", "role", "leader", "api", "peer", "matched", "lag"]);
    for m in &v.members {
        t.add_row([
            m.node_id.to_string(),
            wire_text(&m.role),
            if m.leader { "*" } else { "" }.into(),
            m.api.clone(),
            m.peer.clone(),
            cell(m.matched_index),
            cell(m.lag),
        ]);
    }
    println!("{t}");
    if let [from, to, ..] = v.voter_sets.as_slice() {
        let set = |s: &std::collections::BTreeSet<u64>| {
            serde_json::to_string(s).expect("numbers serialise")
        };
        println!(
            "membership change under way: voters {} changing to {}",
            set(from),
            set(to)
        );
    }
    if !v.membership_committed {
        println!(
            "the configuration at log index {} has not committed: no other membership change is accepted until it does (README: Running a cluster)",
            cell(v.membership_index)
        );
    }
}
