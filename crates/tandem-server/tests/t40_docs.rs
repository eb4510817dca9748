//! The documents tell the truth about the code: every setting is in docs/operations.md's
//! table with its variable and default (the same table `tandem serve --help` prints); every
//! error code the API can answer is in docs/api-v1.md (DTM-only ones in docs/dtm-compat.md);
//! no document names a path of the machine it was written on.
//!
//! Guards against: `no_steps` answered but not documented; a new setting missing from the
//! docs; `/root/...` or `/home/...` in docs/benchmarks.md.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The error codes a source file can answer: the string literal right after
/// `bad_request(`, `StatusCode::X,`, `failure(` or `invalid(`, whitespace ignored.
fn codes_in(src: &str) -> Vec<String> {
    let flat: String = src.chars().filter(|c| !c.is_whitespace()).collect();
    let mut codes = Vec::new();
    let mut rest = flat.as_str();
    while let Some(i) = rest.find("\"") {
        let before = &rest[..i];
        let after = &rest[i + 1..];
        let Some(end) = after.find('"') else { break };
        let lit = &after[..end];
        let opener = before.ends_with("bad_request(")
            || before.ends_with("failure(")
            || before.ends_with("invalid(")
            || (before.ends_with(',')
                && before[..before.len() - 1]
                    .rsplit("StatusCode::")
                    .next()
                    .is_some_and(|s| s.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
                && before.contains("StatusCode::"));
        if opener && !lit.is_empty() && lit.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
            codes.push(lit.to_string());
        }
        rest = &after[end + 1..];
    }
    codes
}

#[test]
fn t40_every_error_code_is_documented() {
    let api = read("docs/api-v1.md");
    let dtm = read("docs/dtm-compat.md");
    let mut files = Vec::new();
    rust_files(&root().join("crates/tandem-server/src"), &mut files);
    let mut missing = Vec::new();
    let mut seen = 0;
    for f in files {
        let src = std::fs::read_to_string(&f).unwrap();
        let dtm_only = f.to_string_lossy().contains("/dtm/");
        for code in codes_in(&src) {
            seen += 1;
            let quoted = format!("`{code}`");
            let documented = api.contains(&quoted) || (dtm_only && dtm.contains(&quoted));
            if !documented {
                missing.push(format!("{code} ({})", f.display()));
            }
        }
    }
    // The codes of the core's transaction rules (`SpecError::code`), which the API answers.
    let spec = read("crates/tandem-core/src/spec.rs");
    let flat: String = spec.chars().filter(|c| !c.is_whitespace()).collect();
    let body = flat
        .split("pubfncode(&self)->&'staticstr{")
        .nth(1)
        .expect("SpecError::code in crates/tandem-core/src/spec.rs");
    let body = &body[..body.find("}}").unwrap_or(body.len())];
    for part in body.split("=>\"").skip(1) {
        let code = &part[..part.find('"').unwrap()];
        seen += 1;
        if !api.contains(&format!("`{code}`")) {
            missing.push(format!("{code} (tandem-core spec.rs)"));
        }
    }
    assert!(
        seen > 30,
        "the scan found only {seen} codes: is it still reading the code?"
    );
    assert!(missing.is_empty(), "undocumented error codes: {missing:#?}");
}

#[test]
fn t40_every_setting_is_in_the_operations_table() {
    let ops = read("docs/operations.md");
    for s in tandem_server::config::SETTINGS {
        let default = if s.default.starts_with("unset") {
            s.default.to_string()
        } else {
            format!("`{}`", s.default)
        };
        let row = format!("| `{}` | `{}` | {} | {} |", s.key, s.env, default, s.what);
        assert!(
            ops.contains(&row),
            "docs/operations.md lacks the row\n{row}"
        );
    }
}

#[test]
fn t40_no_document_names_a_path_of_this_machine() {
    let mut docs = vec![
        "README.md".to_string(),
        "examples/bank/README.md".to_string(),
    ];
    for e in std::fs::read_dir(root().join("docs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            docs.push(format!("docs/{}", p.file_name().unwrap().to_string_lossy()));
        }
    }
    for d in docs {
        let text = read(&d);
        for bad in ["/work/", "/root/", "/home/", "/tmp/"] {
            assert!(!text.contains(bad), "{d} names {bad}");
        }
    }
}
