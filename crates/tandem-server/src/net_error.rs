//! Words for a failed HTTP call that a person can act on: `connection refused to
//! 127.0.0.1:8081`, `timed out connecting to svc:80`, `cannot resolve svc`, instead of the
//! HTTP client's `client error (Connect)`. Used for branch calls (the error recorded in a
//! branch's attempts and logged) and by the `tandem` CLI for its own calls to a server.

use std::error::Error;
use std::io::ErrorKind;

/// `host:port` of `url` (the port defaulting by scheme), or `url` itself when it has none.
pub fn authority(url: &str) -> String {
    match url.parse::<hyper::Uri>() {
        Ok(uri) => match (uri.host(), uri.port_u16()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) if uri.scheme_str() == Some("https") => format!("{h}:443"),
            (Some(h), None) => format!("{h}:80"),
            _ => url.to_string(),
        },
        Err(_) => url.to_string(),
    }
}

/// Describes `err`, a failed call to `url`, naming the cause and where it happened. Each
/// cause appears once (a message that repeats the one below it is dropped).
pub fn describe(err: &(dyn Error + 'static), url: &str) -> String {
    let to = authority(url);
    let mut chain: Vec<&(dyn Error + 'static)> = Vec::new();
    let mut cur = Some(err);
    while let Some(e) = cur {
        chain.push(e);
        cur = e.source();
    }
    for e in &chain {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            match io.kind() {
                ErrorKind::ConnectionRefused => return format!("connection refused to {to}"),
                ErrorKind::TimedOut => return format!("timed out connecting to {to}"),
                ErrorKind::ConnectionReset => return format!("connection reset by {to}"),
                ErrorKind::ConnectionAborted => return format!("connection aborted by {to}"),
                ErrorKind::AddrNotAvailable => {
                    return format!("cannot connect to {to}: address not available")
                }
                _ => {}
            }
        }
    }
    let texts: Vec<String> = chain.iter().map(|e| e.to_string()).collect();
    let all = texts.join(" ").to_lowercase();
    if all.contains("dns error") || all.contains("failed to lookup address") {
        let host = to.rsplit_once(':').map_or(to.as_str(), |(h, _)| h);
        return format!("cannot resolve host {host} (DNS lookup failed)");
    }
    if all.contains("connection closed before message completed") {
        return format!("{to} closed the connection before answering");
    }
    // Otherwise the causes from the outside in, each once.
    let mut kept: Vec<&str> = Vec::new();
    for (i, t) in texts.iter().enumerate() {
        let repeated_below = texts[i + 1..]
            .iter()
            .any(|below| t.contains(below.as_str()));
        let generic = t.starts_with("client error (") || t == "tcp connect error";
        // The innermost cause is always kept; an outer one only if it adds something.
        let innermost = i + 1 == texts.len();
        if innermost || !(repeated_below || generic) {
            kept.push(t);
        }
    }
    format!("{}: {}", to, kept.join(": "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("client error (Connect)")
        }
    }
    impl Error for Outer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn names_the_cause_and_the_place() {
        let refused = Outer(std::io::Error::from(ErrorKind::ConnectionRefused));
        assert_eq!(
            describe(&refused, "http://127.0.0.1:8081/debit?gid=1"),
            "connection refused to 127.0.0.1:8081"
        );
        let timed_out = Outer(std::io::Error::from(ErrorKind::TimedOut));
        assert_eq!(
            describe(&timed_out, "http://svc/x"),
            "timed out connecting to svc:80"
        );
        let other = Outer(std::io::Error::other("tls handshake eof"));
        assert_eq!(
            describe(&other, "https://svc/x"),
            "svc:443: tls handshake eof"
        );
    }
}
