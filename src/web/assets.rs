//! The front-end files of `web/`, embedded in the binary (rust-embed with
//! `debug-embed`, so debug builds and tests serve the very bytes a release
//! does, and the console works offline).
//!
//! Served with `Cache-Control: no-cache` and an ETag (the file's SHA-256),
//! so a browser revalidates each time and a new binary's files are never
//! mixed with stale ones; compressed with gzip when the client accepts it
//! (each file once, kept: they are few and small).

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Mutex, OnceLock};

use axum::body::Body;
use axum::http::header::{
    ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, ETAG, IF_NONE_MATCH, VARY,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use rust_embed::Embed;

#[derive(Embed)]
#[folder = "web/"]
struct Files;

/// Files no smaller than this are sent gzipped, when the client accepts it.
const GZIP_FROM: usize = 512;

/// The embedded file at `path` (`index.html`, `vendor/xterm/xterm.js`).
pub(crate) fn get(path: &str) -> Option<rust_embed::EmbeddedFile> {
    Files::get(path)
}

/// `path` as a response to a request with `headers`; 404 if there is none.
pub(crate) fn serve(path: &str, headers: &HeaderMap) -> Response {
    let Some(file) = Files::get(path) else {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    };
    let etag = format!(
        "\"{}\"",
        crate::tls::identity::hex(&file.metadata.sha256_hash())
    );
    let mut r = if headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag))
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else if file.data.len() >= GZIP_FROM && accepts_gzip(headers) {
        let mut r = Body::from(gzipped(path, &file.data)).into_response();
        r.headers_mut()
            .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        r
    } else {
        Body::from(Bytes::from(file.data.into_owned())).into_response()
    };
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type(path)));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(VARY, HeaderValue::from_static("accept-encoding"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(ETAG, v);
    }
    r
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|e| {
            let mut parts = e.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| matches!(p.trim(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
            name.eq_ignore_ascii_case("gzip") && !refused
        })
}

/// `data` (the file at `path`) gzipped, compressed once and kept.
fn gzipped(path: &str, data: &[u8]) -> Bytes {
    static CACHE: OnceLock<Mutex<HashMap<String, Bytes>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(b) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(path) {
        return b.clone();
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let out = match gz.write_all(data).and_then(|()| gz.finish()) {
        Ok(v) => Bytes::from(v),
        Err(_) => return Bytes::copy_from_slice(data),
    };
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(path.to_owned(), out.clone());
    out
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" => "application/json",
        _ => "text/plain; charset=utf-8",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_is_sent_when_accepted() {
        let mut h = HeaderMap::new();
        assert!(!accepts_gzip(&h));
        h.insert(
            ACCEPT_ENCODING,
            HeaderValue::from_static("deflate, gzip;q=1.0, br"),
        );
        assert!(accepts_gzip(&h));
        h.insert(ACCEPT_ENCODING, HeaderValue::from_static("gzip;q=0"));
        assert!(!accepts_gzip(&h));
        assert!(Files::get("index.html").is_some());
        assert!(Files::get("../Cargo.toml").is_none());
    }
}
