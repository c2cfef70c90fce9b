//! The web console at `/ui/`: a page and its scripts, compiled into the binary
//! (`host/ui/`), so every node serves the console of its own version and nothing is fetched
//! from elsewhere at run time.
//!
//! Owns: which files are served and the headers that confine them. Does not own: anything
//! the console shows: the page reads and writes through `/v1` like any other client, with
//! the user's token, so it can do nothing its user could not do with curl.
//!
//! Served without authentication: the files hold no data (a load balancer or a browser
//! without a token gets the login form, and the API refuses what the token does not allow).

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

/// One file of the console.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

/// Every file there is: a request names one of these or is 404 (a name is never a path).
const ASSETS: [Asset; 3] = [
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        bytes: include_bytes!("../../ui/index.html"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../ui/app.js"),
    },
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../ui/style.css"),
    },
];

/// Each file's ETag: a digest of its bytes, so a browser revalidates cheaply and never keeps
/// the script of an older version after an upgrade.
static ETAGS: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| {
            let digest = Sha256::digest(a.bytes);
            HeaderValue::from_str(&format!("\"{}\"", hex::encode(&digest[..12])))
                .expect("a hex ETag is a header value")
        })
        .collect()
});

/// The page may load only its own files and talk only to its own node: an injected
/// script (a config value rendered by mistake as HTML) could not load or send anything.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self' data:; form-action 'none'; base-uri 'none'; \
    frame-ancestors 'none'";

/// `/` and `/ui` lead to the console; `/ui/` is the page, `/ui/{file}` its files.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { Redirect::temporary("/ui/") }))
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(|headers: HeaderMap| async move { serve("index.html", &headers) }))
        .route(
            "/ui/{file}",
            get(
                |super::extract::Path(file): super::extract::Path<String>, headers: HeaderMap| async move {
                    serve(&file, &headers)
                },
            ),
        )
}

fn serve(name: &str, request: &HeaderMap) -> Response {
    let Some(i) = ASSETS.iter().position(|a| a.name == name) else {
        return super::ApiError::not_found(format!("the console has no file {name:?}"))
            .into_response();
    };
    let asset = &ASSETS[i];
    let etag = ETAGS[i].clone();
    let mut headers = HeaderMap::new();
    headers.insert(header::ETAG, etag.clone());
    // Revalidate every time: a 304 costs a round trip, a stale script costs a broken page.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if request
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    (headers, asset.bytes).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_the_page_loads_is_served() {
        let page = std::str::from_utf8(ASSETS[0].bytes).unwrap();
        for asset in &ASSETS[1..] {
            assert!(
                page.contains(&format!("\"{}\"", asset.name)),
                "index.html does not load {}",
                asset.name
            );
        }
    }

    #[test]
    fn a_name_outside_the_table_is_not_found() {
        for name in ["../Cargo.toml", "app.js.map", "", "INDEX.HTML"] {
            let resp = serve(name, &HeaderMap::new());
            assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{name:?}");
        }
    }

    #[test]
    fn a_matching_etag_is_not_modified() {
        let first = serve("app.js", &HeaderMap::new());
        assert_eq!(first.status(), StatusCode::OK);
        let mut again = HeaderMap::new();
        again.insert(header::IF_NONE_MATCH, first.headers()[header::ETAG].clone());
        assert_eq!(serve("app.js", &again).status(), StatusCode::NOT_MODIFIED);
    }
}
