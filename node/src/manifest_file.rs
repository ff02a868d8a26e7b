//! The federation manifest as a TOML file.
//!
//! ```toml
//! federation = "helseregistre"
//!
//! [[members]]
//! name = "NPR"
//! role = "register"
//! address = "npr.example.no:7400"
//! tls_spki_sha256 = "…64 hex digits…"
//! signing_key = "…"
//! hpke_key = "…"
//! operators = [
//!   { name = "Kari Nordmann", key = "…" },
//!   { name = "Ola Nordmann", key = "…" },
//! ]
//!
//! # A register domain (PROTOCOL.md §10); key_holders is optional and
//! # defaults to every register and the linker except the holder.
//! [[domains]]
//! name = "RESEPT"
//! holder = "RESEPT"
//! key_holders = ["NPR", "KPR", "LINKER"]
//! ```

use std::path::Path;

use anyhow::Context;
use kobling_protocol::manifest::Manifest;

/// The largest manifest file read.
const MAX_MANIFEST_BYTES: u64 = 1 << 20;

/// Reads, parses and validates a manifest file: opened once, checked on
/// the handle (a regular file), read from it with a bound.
pub(crate) fn load(path: &Path) -> anyhow::Result<Manifest> {
    use std::io::Read;
    let file = crate::private_fs::open_regular(path, false)
        .with_context(|| format!("cannot read the manifest {}", path.display()))?;
    let mut text = String::new();
    file.take(MAX_MANIFEST_BYTES + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read the manifest {}", path.display()))?;
    anyhow::ensure!(
        text.len() as u64 <= MAX_MANIFEST_BYTES,
        "the manifest {} is larger than 1 MiB",
        path.display()
    );
    parse(&text).with_context(|| format!("invalid manifest {}", path.display()))
}

/// Parses and validates manifest text.
pub(crate) fn parse(text: &str) -> anyhow::Result<Manifest> {
    let manifest: Manifest = toml::from_str(text)?;
    manifest.validate()?;
    Ok(manifest)
}

/// Renders a manifest as TOML.
#[cfg(any(test, fuzzing))]
pub(crate) fn render(manifest: &Manifest) -> anyhow::Result<String> {
    Ok(toml::to_string_pretty(manifest)?)
}

/// Renders a manifest that may still be incomplete (`kobling manifest
/// init` and `add`), with a header comment.
pub(crate) fn render_draft(manifest: &Manifest) -> anyhow::Result<String> {
    let mut text = String::from(
        "# The federation manifest: every node pins this file (its digest is part\n\
         # of every project). Members in chain order. Written by `kobling manifest\n\
         # init` and `kobling manifest add`; check it with `kobling manifest check`.\n\n",
    );
    text.push_str(&toml::to_string_pretty(manifest)?);
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
federation = "test"

[[members]]
name = "NPR"
role = "register"
address = "127.0.0.1:7401"
tls_spki_sha256 = "0101010101010101010101010101010101010101010101010101010101010101"
signing_key = "0202020202020202020202020202020202020202020202020202020202020202"
hpke_key = "0303030303030303030303030303030303030303030303030303030303030303"
operators = [
  { name = "a", key = "0404040404040404040404040404040404040404040404040404040404040404" },
  { name = "b", key = "0505050505050505050505050505050505050505050505050505050505050505" },
]

[[members]]
name = "LINKER"
role = "linker"
address = "127.0.0.1:7402"
tls_spki_sha256 = "0606060606060606060606060606060606060606060606060606060606060606"
signing_key = "0707070707070707070707070707070707070707070707070707070707070707"
hpke_key = "0808080808080808080808080808080808080808080808080808080808080808"
"#;

    #[test]
    fn parses_round_trips_and_rejects_bad_manifests() {
        let m = parse(EXAMPLE).expect("valid manifest");
        assert_eq!(m.members.len(), 2);
        let again = parse(&render(&m).expect("render")).expect("re-parse");
        assert_eq!(again, m);
        assert_eq!(again.digest(), m.digest());
        assert!(parse(&EXAMPLE.replace("role = \"linker\"", "role = \"register\"")).is_err());
        assert!(parse(&EXAMPLE.replace("0101010101", "zz01010101")).is_err());
        assert!(parse("not toml at all [").is_err());
    }

    const REGISTER: &str = r#"
[[members]]
name = "KPR"
role = "register"
address = "127.0.0.1:7403"
tls_spki_sha256 = "0909090909090909090909090909090909090909090909090909090909090909"
signing_key = "0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a"
hpke_key = "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b"
operators = [
  { name = "c", key = "0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c" },
  { name = "d", key = "0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d" },
]
"#;

    fn with_domain(domain: &str) -> String {
        format!("{EXAMPLE}{REGISTER}\n[[domains]]\n{domain}\n")
    }

    #[test]
    fn domains_parse_round_trip_and_broken_ones_are_refused_with_a_reason() {
        use kobling_protocol::types::Name;
        let n = |s: &str| Name::new(s).expect("valid");
        let m = parse(&with_domain("name = \"KPR\"\nholder = \"KPR\"")).expect("valid");
        let d = m.domain(&n("KPR")).expect("declared");
        assert_eq!(d.key_holders(&m), vec![n("NPR"), n("LINKER")]);
        let again = parse(&render(&m).expect("render")).expect("re-parse");
        assert_eq!(again, m);
        let listed = parse(&with_domain(
            "name = \"KPR\"\nholder = \"KPR\"\nkey_holders = [\"LINKER\", \"NPR\"]",
        ))
        .expect("valid");
        assert_ne!(listed.digest(), m.digest());

        for (domain, reason) in [
            (
                "name = \"X\"\nholder = \"GHOST\"",
                "holder GHOST is not a member",
            ),
            (
                "name = \"X\"\nholder = \"KPR\"\nkey_holders = [\"NPR\", \"SSB\", \"LINKER\"]",
                "key holder SSB is not a member",
            ),
            (
                "name = \"X\"\nholder = \"KPR\"\nkey_holders = [\"NPR\", \"KPR\", \"LINKER\"]",
                "must not be a key holder of its own domain",
            ),
            (
                "name = \"X\"\nholder = \"KPR\"\nkey_holders = [\"NPR\"]",
                "must include the linker",
            ),
            ("name = \"NPR\"\nholder = \"KPR\"", "name of member NPR"),
            ("name = \"X\"\nholder = \"LINKER\"", "must be a register"),
            ("name = \"x\"\nholder = \"KPR\"", "upper-case"),
        ] {
            let err = parse(&with_domain(domain)).expect_err(domain);
            let text = format!("{err:#}");
            assert!(text.contains(reason), "{domain}: {text}");
        }
        let twice = format!(
            "{}\n[[domains]]\nname = \"X\"\nholder = \"NPR\"\n",
            with_domain("name = \"X\"\nholder = \"KPR\"")
        );
        assert!(format!("{:#}", parse(&twice).expect_err("twice")).contains("declared twice"));
    }

    #[test]
    fn a_disclosure_log_parses_and_a_second_one_is_refused() {
        use kobling_protocol::{domain::DomainKind, types::Name};
        let n = |s: &str| Name::new(s).expect("valid");
        let m = parse(&with_domain(
            "name = \"DLOG\"\nholder = \"KPR\"\nkind = \"disclosure-log\"",
        ))
        .expect("valid");
        let d = m.disclosure_log().expect("the log");
        assert_eq!(
            (d.name.clone(), d.kind),
            (n("DLOG"), DomainKind::DisclosureLog)
        );
        let plain = parse(&with_domain("name = \"DLOG\"\nholder = \"KPR\"")).expect("valid");
        assert!(plain.disclosure_log().is_none());
        assert_ne!(plain.digest(), m.digest(), "the kind is in the digest");
        assert_eq!(parse(&render(&m).expect("render")).expect("re-parse"), m);
        let twice = format!(
            "{}\n[[domains]]\nname = \"DLOG2\"\nholder = \"NPR\"\nkind = \"disclosure-log\"\n",
            with_domain("name = \"DLOG\"\nholder = \"KPR\"\nkind = \"disclosure-log\"")
        );
        let text = format!("{:#}", parse(&twice).expect_err("two logs"));
        assert!(text.contains("one disclosure log"), "{text}");
        let linker = parse(&with_domain(
            "name = \"DLOG\"\nholder = \"LINKER\"\nkind = \"disclosure-log\"",
        ))
        .expect_err("held by the linker");
        assert!(format!("{linker:#}").contains("must be a register"));
    }
}
