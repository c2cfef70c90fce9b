//! Streams that follow a paging cursor.

use std::future::Future;

use futures_core::Stream;
use futures_util::{TryStreamExt, stream};

use crate::Error;

/// One page: its items, and the request of the next page (`None` after the last).
pub(crate) struct Paged<T, S> {
    pub items: Vec<T>,
    pub next: Option<S>,
}

/// The items of `fetch(first)`, then of `fetch(next)` while there is a next page. Ends with
/// the first error.
pub(crate) fn items<T, S, F, Fut>(
    first: S,
    fetch: F,
) -> impl Stream<Item = Result<T, Error>> + Send + use<T, S, F, Fut>
where
    T: Send + 'static,
    S: Send + 'static,
    F: Fn(S) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Paged<T, S>, Error>> + Send + 'static,
{
    stream::try_unfold((Some(first), fetch), |(request, fetch)| async move {
        let Some(request) = request else {
            return Ok::<_, Error>(None);
        };
        let page = fetch(request).await?;
        Ok(Some((page.items, (page.next, fetch))))
    })
    .map_ok(|items| stream::iter(items.into_iter().map(Ok::<T, Error>)))
    .try_flatten()
}
