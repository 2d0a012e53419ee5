//! The HTTP side: the client (proxy, timeouts, no automatic redirects), GET from a byte offset
//! following redirects by hand, and the headers that carry ranges and hashes.

use crate::catalog::entries::is_sha256;
use crate::catalog::error::CatalogError;

use super::options::{DownloadOptions, ProxyChoice};

/// The client for one download: redirects are returned, not followed (see [`get`]), and HTTP
/// error statuses are responses, not errors.
pub(super) fn agent(opts: &DownloadOptions) -> ureq::Agent {
    let proxy = match opts.proxy {
        ProxyChoice::FromEnv => ureq::Proxy::try_from_env(),
        ProxyChoice::Direct => None,
    };
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .max_redirects_will_error(false)
        .proxy(proxy)
        .timeout_connect(Some(opts.connect_timeout))
        .timeout_recv_response(Some(opts.read_timeout))
        .timeout_per_read(Some(opts.read_timeout))
        .user_agent(format!("locosep/{}", env!("CARGO_PKG_VERSION")))
        .build();
    ureq::Agent::new_with_config(config)
}

/// What the server said about the file besides its body.
#[derive(Debug, Default)]
pub(super) struct Announced {
    /// A sha256 from `X-Linked-Etag` or `ETag`.
    pub(super) sha256: Option<String>,
    /// `X-Linked-Size` of a redirect.
    pub(super) size: Option<u64>,
}

/// GET `url` from byte `offset` on, following up to 10 redirects by hand (collecting the
/// sha256 and size a redirect announces).
pub(super) fn get(
    agent: &ureq::Agent,
    url: &str,
    offset: u64,
) -> Result<(ureq::http::Response<ureq::Body>, Announced), CatalogError> {
    let mut announced = Announced::default();
    let mut current = url.to_string();
    for _ in 0..10 {
        let mut req = agent.get(&current);
        if offset > 0 {
            req = req.header("Range", format!("bytes={offset}-"));
        }
        let resp = req.call().map_err(|e| CatalogError::Network {
            url: current.clone(),
            detail: e.to_string(),
        })?;
        let status = resp.status().as_u16();
        if !(300..400).contains(&status) || status == 304 {
            return Ok((resp, announced));
        }
        let header = |k: &str| header_of(&resp, k);
        if announced.sha256.is_none() {
            announced.sha256 = header("x-linked-etag").and_then(|e| etag_sha256(&e));
        }
        if announced.size.is_none() {
            announced.size = header("x-linked-size").and_then(|v| v.trim().parse().ok());
        }
        let Some(location) = header("location") else {
            return Err(CatalogError::Http {
                url: current,
                status,
            });
        };
        current = join_url(&current, &location);
    }
    Err(CatalogError::Network {
        url: url.to_string(),
        detail: "too many redirects".into(),
    })
}

/// Resolves a `Location` against the URL it came from.
fn join_url(base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        return location.to_string();
    }
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    if let Some(rest) = location.strip_prefix("//") {
        return format!("{}{rest}", &base[..scheme_end]);
    }
    let authority_end = base[scheme_end..]
        .find('/')
        .map(|i| i + scheme_end)
        .unwrap_or(base.len());
    if location.starts_with('/') {
        return format!("{}{location}", &base[..authority_end]);
    }
    let path = base.split(['?', '#']).next().unwrap_or(base);
    let dir_end = path
        .rfind('/')
        .filter(|&i| i >= authority_end)
        .map(|i| i + 1);
    match dir_end {
        Some(i) => format!("{}{location}", &path[..i]),
        None => format!("{path}/{location}"),
    }
}

/// `bytes START-END/TOTAL` (TOTAL may be `*`) → (START, TOTAL); `bytes */TOTAL` → (0, TOTAL).
pub(super) fn parse_content_range(v: &str) -> Option<(u64, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes")?.trim();
    let (range, total) = rest.split_once('/')?;
    let total = total.trim().parse().ok();
    if range.trim() == "*" {
        return Some((0, total));
    }
    let (start, _end) = range.split_once('-')?;
    Some((start.trim().parse().ok()?, total))
}

/// The sha256 carried by an entity tag (`"…64 hex…"`, maybe weak), else `None`.
pub(super) fn etag_sha256(etag: &str) -> Option<String> {
    let t = etag.trim();
    let t = t.strip_prefix("W/").unwrap_or(t).trim_matches('"');
    is_sha256(t).then(|| t.to_ascii_lowercase())
}

/// The value of header `name` of `resp` as text, when present and readable.
pub(super) fn header_of(resp: &ureq::http::Response<ureq::Body>, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_that_are_sha256() {
        let h = "a".repeat(64);
        assert_eq!(etag_sha256(&format!("\"{h}\"")), Some(h.clone()));
        assert_eq!(etag_sha256(&format!("W/\"{}\"", h.to_uppercase())), Some(h));
        // A git blob id (sha1) or a CDN tag is not a sha256.
        assert_eq!(
            etag_sha256("\"0123456789abcdef0123456789abcdef01234567\""),
            None
        );
        assert_eq!(etag_sha256("\"abc-123\""), None);
    }

    #[test]
    fn content_ranges() {
        assert_eq!(
            parse_content_range("bytes 100-199/200"),
            Some((100, Some(200)))
        );
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, None)));
        assert_eq!(parse_content_range("bytes */42"), Some((0, Some(42))));
        assert_eq!(parse_content_range("items 1-2/3"), None);
    }

    #[test]
    fn redirect_targets() {
        let b = "https://h.co/org/repo/resolve/abc/models/x.pth";
        assert_eq!(
            join_url(b, "https://cdn.example/y?sig=1"),
            "https://cdn.example/y?sig=1"
        );
        assert_eq!(join_url(b, "/api/z"), "https://h.co/api/z");
        assert_eq!(join_url(b, "//cdn.example/y"), "https://cdn.example/y");
        assert_eq!(
            join_url(b, "y.pth"),
            "https://h.co/org/repo/resolve/abc/models/y.pth"
        );
        assert_eq!(join_url("http://h:1", "a"), "http://h:1/a");
    }
}
