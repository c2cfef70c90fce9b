//! The extractors of query strings and path parameters, with their rejections in the one
//! error shape (400 `malformed_request` as JSON) instead of axum's plain text.
//!
//! Every handler takes `Query` and `Path` from here, never from `axum::extract` (a test of
//! the layering checks it), so that no failure of the API answers with another shape.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::ApiError;

/// The query string, decoded as `T`; a query `T` does not take is 400 `malformed_request`.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        query(parts.uri.query().unwrap_or_default()).map(Query)
    }
}

/// A query string decoded as `T`, for a handler that decides which `T` from its path.
pub fn query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    serde_urlencoded::from_str(query)
        .map_err(|e| ApiError::malformed(format!("the query string: {e}")))
}

/// The path parameters, decoded as `T`; ones `T` does not take (text that is not UTF-8
/// once percent-decoded) are 400 `malformed_request`.
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(t)| Path(t))
            .map_err(|e| ApiError::malformed(format!("the path: {}", e.body_text())))
    }
}
