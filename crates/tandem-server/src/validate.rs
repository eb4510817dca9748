//! The check every API makes on what a client submits that belongs to the server, not the
//! core: branch URLs (http, https or a gRPC target, optionally on an allow-listed host).
//! Counts, sizes, ids and options are `tandem_core::spec`'s.

use crate::error::ApiError;
use crate::ServerConfig;

/// An empty URL is allowed (a no-op branch, as in DTM); anything else must be an absolute
/// `http://` or `https://` URL or a gRPC target (see [`crate::target`]), with its host on
/// the allow-list when one is configured.
pub fn branch_url(cfg: &ServerConfig, url: &str) -> Result<(), ApiError> {
    let kind = crate::target::parse(url).map_err(|m| ApiError::bad_request("invalid_url", m))?;
    if kind == crate::target::Target::Empty {
        return Ok(());
    }
    let authority = crate::target::authority(url);
    if authority.is_empty()
        || url.len() > 2048
        || url.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(ApiError::bad_request(
            "invalid_url",
            format!("branch URL {url:?} is not a valid URL"),
        ));
    }
    if let Some(allowed) = &cfg.allowed_hosts {
        let host = if authority.starts_with('[') {
            authority
                .split(']')
                .next()
                .map(|h| format!("{h}]"))
                .unwrap_or_default()
        } else {
            authority.split(':').next().unwrap_or("").to_string()
        };
        if !allowed
            .iter()
            .any(|a| a.eq_ignore_ascii_case(authority) || a.eq_ignore_ascii_case(&host))
        {
            return Err(ApiError::bad_request(
                "host_not_allowed",
                format!("branch URL host {authority:?} is not on the allow-list"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let mut cfg = ServerConfig::default();
        assert!(branch_url(&cfg, "").is_ok());
        assert!(branch_url(&cfg, "http://127.0.0.1:8080/api/a?x=1").is_ok());
        assert!(branch_url(&cfg, "https://svc/a").is_ok());
        assert!(branch_url(&cfg, "ftp://svc/a").is_err());
        assert!(branch_url(&cfg, "127.0.0.1:9000/busi.Busi/TransIn").is_ok());
        assert!(branch_url(&cfg, "grpcs://svc:443/busi.Busi/TransIn").is_ok());
        assert!(branch_url(&cfg, "/relative").is_err());
        assert!(branch_url(&cfg, "http:///nohost").is_err());
        cfg.allowed_hosts = Some(vec!["svc".into(), "127.0.0.1:9000".into()]);
        assert!(branch_url(&cfg, "http://svc:1234/a").is_ok());
        assert!(branch_url(&cfg, "http://127.0.0.1:9000/a").is_ok());
        assert!(branch_url(&cfg, "http://127.0.0.1:9001/a").is_err());
        assert!(branch_url(&cfg, "http://evil/a").is_err());
        assert!(branch_url(&cfg, "127.0.0.1:9000/busi.Busi/TransIn").is_ok());
        assert!(branch_url(&cfg, "evil:9000/busi.Busi/TransIn").is_err());
    }
}
