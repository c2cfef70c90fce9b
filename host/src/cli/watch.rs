//! `scarab config watch`: the changes under a prefix, one JSON line per changed key, until
//! interrupted.

use futures::StreamExt;

use scarab_client::types::WatchEvent;
use scarab_client::{Client, WatchOptions};

/// Follows the watch over Server-Sent Events and prints each change (a key's metadata,
/// `type` and `value`, as the server sends it) on a line of its own, in revision order.
///
/// The client's watch reconnects when a connection fails, to the next `--server` when
/// there are several, and resumes after the last revision printed: nothing is missed or
/// printed twice. It ends only with an error that retrying cannot cure (410
/// `revision_compacted`, a refused request), which is returned.
pub async fn follow(client: &Client, opts: WatchOptions) -> anyhow::Result<()> {
    let mut watch = client.watch(opts);
    while let Some(event) = watch.next().await {
        match event? {
            WatchEvent::Change(batch) => {
                for change in &batch.events {
                    println!(
                        "{}",
                        serde_json::to_string(change).expect("wire types serialise")
                    );
                }
            }
            // Nothing new through a revision: nothing to print.
            WatchEvent::Progress(_) => {}
        }
    }
    Ok(())
}
