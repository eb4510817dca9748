//! What a branch URL names, and so which transport calls it.
//!
//! - empty: a no-op that succeeds (DTM's convention);
//! - `http://…`, `https://…`: an HTTP participant ([`crate::http_transport`]);
//! - `host:port/package.Service/Method` (DTM's gRPC form), `grpc://host:port/…` (the same,
//!   said explicitly) or `grpcs://host:port/…` (over TLS): a gRPC participant
//!   ([`crate::grpc::transport`]). A missing port is 80 (`grpc`) or 443 (`grpcs`).
//!
//! Anything else (DTM's service-discovery schemes such as `discovery:///`, `etcd://`, a
//! relative path, …) is refused when the transaction is submitted, with a message saying
//! which forms are accepted.

/// A parsed branch URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    Empty,
    Http,
    Grpc(GrpcTarget<'a>),
}

/// A gRPC method on a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrpcTarget<'a> {
    pub tls: bool,
    /// `host:port` (or `host`, `[v6]:port`).
    pub authority: &'a str,
    /// `/package.Service/Method`.
    pub path: &'a str,
}

impl GrpcTarget<'_> {
    /// The URI of the server, as a channel dials it.
    pub fn origin(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.authority)
    }
}

/// Classifies `url`, or says why it is not a branch URL.
pub fn parse(url: &str) -> Result<Target<'_>, String> {
    if url.is_empty() {
        return Ok(Target::Empty);
    }
    if url.starts_with("http://") || url.starts_with("https://") {
        return Ok(Target::Http);
    }
    let (tls, rest) = if let Some(r) = url.strip_prefix("grpcs://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("grpc://") {
        (false, r)
    } else if url.contains("://") {
        return Err(format!(
            "branch URL {url:?}: only http://, https://, grpc:// and grpcs:// URLs or a gRPC \
             target host:port/package.Service/Method are supported (no service discovery)"
        ));
    } else {
        (false, url)
    };
    let bad = || {
        format!(
            "branch URL {url:?} must start with http:// or https://, or be a gRPC target \
             host:port/package.Service/Method"
        )
    };
    let slash = rest.find('/').ok_or_else(bad)?;
    let (authority, path) = rest.split_at(slash);
    let mut parts = path[1..].split('/');
    let (service, method) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let ident = |s: &str, dots: bool| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || (dots && b == b'.'))
    };
    let authority_ok = !authority.is_empty()
        && authority
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:[]".contains(&b));
    if !authority_ok || parts.next().is_some() || !ident(service, true) || !ident(method, false) {
        return Err(bad());
    }
    Ok(Target::Grpc(GrpcTarget {
        tls,
        authority,
        path,
    }))
}

/// The `host:port` (or `host`) part of a URL of either kind, for the allow-list.
pub fn authority(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    authority.rsplit('@').next().unwrap_or(authority)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_dtm_url_forms() {
        assert_eq!(parse(""), Ok(Target::Empty));
        assert_eq!(parse("http://a/b"), Ok(Target::Http));
        assert_eq!(parse("https://a/b?x=1"), Ok(Target::Http));
        let g = |tls, authority, path| {
            Ok(Target::Grpc(GrpcTarget {
                tls,
                authority,
                path,
            }))
        };
        assert_eq!(
            parse("localhost:58081/busi.Busi/TransIn"),
            g(false, "localhost:58081", "/busi.Busi/TransIn")
        );
        assert_eq!(
            parse("grpc://127.0.0.1:9/a.b.C/Do_1"),
            g(false, "127.0.0.1:9", "/a.b.C/Do_1")
        );
        assert_eq!(
            parse("grpcs://svc.example:443/pkg.Svc/M"),
            g(true, "svc.example:443", "/pkg.Svc/M")
        );
        assert_eq!(parse("[::1]:7/S/M"), g(false, "[::1]:7", "/S/M"));
        for bad in [
            "discovery:///busi/busi.Busi/TransIn",
            "etcd://x/a.B/C",
            "/relative",
            "localhost:1/api/busi/TransIn",
            "localhost:1/busi.Busi/",
            "localhost:1//M",
            "host with space:1/a.B/C",
            "ftp://a/b",
            "localhost:1",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
