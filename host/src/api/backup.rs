//! `GET /v1/backup`: a consistent copy of the whole state, streamed (see `store::backup`).
//!
//! After a read barrier (so that it holds every write acknowledged before the request), the
//! node writes its applied state at one point into a temporary file under its data
//! directory, unlinks it and streams it: memory stays bounded whatever the size, writes go
//! on meanwhile, and nothing is left behind if the client goes away. Needs `cluster:admin`:
//! a backup holds everything, audit trail and token hashes included.

use std::io::BufWriter;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use scarab_types::auth::Action;

use super::authn::Principal;
use super::{ApiError, AppState};

#[utoipa::path(get, path = "/v1/backup", operation_id = "backup", tag = "node",
    responses((status = 200, description = "A consistent copy of the state (`scarab backup verify` checks it; `scarab restore` makes a node of it).",
        content_type = "application/vnd.scarab.backup", body = Vec<u8>)))]
pub async fn backup(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Response, ApiError> {
    principal.require(Action::ClusterAdmin, "")?;
    let _one = state.backups.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            scarab_types::ErrorCode::Overloaded,
            "a backup is being taken on this node; retry when it is done (or ask another node)",
        )
    })?;
    state.linearize().await?;
    let dir = state.config.data_dir.join("backups");
    let store = state.store.clone();
    let (summary, file) = tokio::task::spawn_blocking(move || {
        let fail =
            |e: &dyn std::fmt::Display| ApiError::internal(format!("writing the backup: {e}"));
        std::fs::create_dir_all(&dir).map_err(|e| fail(&e))?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let path = dir.join(format!("backup-{nanos}.tmp"));
        let written: Result<_, ApiError> = (|| {
            let file = std::fs::File::create(&path).map_err(|e| fail(&e))?;
            let (summary, out) = store
                .write_backup(BufWriter::new(file))
                .map_err(|e| fail(&e))?;
            out.into_inner().map_err(|e| fail(e.error()))?;
            let file = std::fs::File::open(&path).map_err(|e| fail(&e))?;
            Ok((summary, file))
        })();
        // Unlinked at once: the open file is what is streamed.
        let _ = std::fs::remove_file(&path);
        written
    })
    .await
    .map_err(|e| ApiError::internal(format!("backup task: {e}")))??;
    let length = file.metadata().map(|m| m.len()).ok();
    // The permit goes with the stream: one backup at a time until it is sent.
    let stream = futures::StreamExt::map(
        tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(file)),
        move |chunk| {
            let _held = &_one;
            chunk
        },
    );
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.scarab.backup"),
    );
    if let Some(length) = length {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    headers.insert("x-scarab-revision", HeaderValue::from(summary.revision));
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"scarab-backup-{}.snap\"",
        summary.revision
    )) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}
