//! `kobling manifest`: create a federation manifest, add members and
//! operators to it, and check it.
//!
//! ```text
//!  manifest init --federation NAME ──▶ federation.toml (no members yet)
//!  keys init … > npr.toml ──▶ manifest add FILE --entry npr.toml ──▶ [[members]] appended
//!  keys operator … > kari.pub ──▶ manifest add FILE --register NPR --operator NAME --key kari.pub
//!  manifest add FILE --entry new.toml --replace ──▶ a member's new keys, in place
//!  manifest remove FILE --register NPR --key old.pub ──▶ an operator removed
//!  manifest add FILE --domain RESEPT --holder RESEPT [--key-holder NPR …] [--disclosure-log] ──▶ [[domains]] appended
//!  manifest check FILE ──▶ digest and members (the complete manifest)
//! ```

use std::{path::PathBuf, process::ExitCode};

use anyhow::{bail, ensure, Context};
use clap::Subcommand;
use kobling_protocol::{
    domain::{DomainKind, DomainSpec},
    manifest::{Authority, Ed25519Key, Manifest, Member, Operator, Role},
};
use serde::Deserialize;

use crate::{console::say, manifest_file};

/// The largest entry or key file read.
const MAX_PART_BYTES: u64 = 64 * 1024;

/// Manifest subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum ManifestCommand {
    /// Create a manifest with no members yet (refuses to overwrite a file).
    Init {
        /// The federation's name.
        #[arg(long)]
        federation: String,
        /// The manifest file to create.
        #[arg(default_value = "federation.toml")]
        file: PathBuf,
    },
    /// Add a member (the entry `kobling keys init` printed, saved to a
    /// file), an operator to a register already in the manifest, or an
    /// access authority (`--authority NAME --key KEY`).
    /// Members are appended: add them in the order the chain should follow.
    Add {
        /// The manifest file.
        file: PathBuf,
        /// A member's entry, as `kobling keys init` printed it.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["register", "operator", "key", "authority"])]
        entry: Option<PathBuf>,
        /// With --entry: replace the member of the same name in place
        /// (new keys for a node; its operators are kept).
        #[arg(long, requires = "entry")]
        replace: bool,
        /// The register the operator is added to.
        #[arg(long, requires_all = ["operator", "key"])]
        register: Option<String>,
        /// The operator's name (for reports).
        #[arg(long, requires = "register")]
        operator: Option<String>,
        /// The operator's (or authority's) public key: 64 hex digits, or a
        /// file holding them (what `kobling keys operator` or `kobling keys
        /// authority` printed).
        #[arg(long)]
        key: Option<String>,
        /// An access authority's name (e.g. Helsedataservice): its
        /// signature on a project order is what the linker requires.
        #[arg(long, requires = "key", conflicts_with_all = ["register", "operator"])]
        authority: Option<String>,
        /// Declare a register domain (`[[domains]]`) of this name, held by
        /// --holder; add it once its holder, key holders and the linker
        /// are members.
        #[arg(long, requires = "holder", conflicts_with_all = ["entry", "register", "operator", "key", "authority"])]
        domain: Option<String>,
        /// The domain's holder: the register that stores data under its
        /// pseudonyms.
        #[arg(long, requires = "domain")]
        holder: Option<String>,
        /// A key holder of the domain (repeat it; default: every register
        /// but the holder, and the linker, which is always one).
        #[arg(long = "key-holder", value_name = "MEMBER", requires = "domain")]
        key_holders: Vec<String>,
        /// Declare the domain as the federation's disclosure log of
        /// identified projects (`kind = "disclosure-log"`; at most one, not
        /// held by the linker; see docs/identified.md).
        #[arg(long, requires = "domain")]
        disclosure_log: bool,
    },
    /// Remove an operator from a register (by public key).
    Remove {
        /// The manifest file.
        file: PathBuf,
        /// The register.
        #[arg(long)]
        register: String,
        /// The operator's public key: 64 hex digits, or a file holding them.
        #[arg(long)]
        key: String,
    },
    /// Validate a manifest and print its digest and members.
    Check {
        /// The manifest file (TOML).
        file: PathBuf,
    },
}

/// A manifest being written: members may be missing, so it is not
/// validated.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Draft {
    federation: String,
    #[serde(default)]
    members: Vec<Member>,
    #[serde(default)]
    authorities: Vec<Authority>,
    domains: Vec<DomainSpec>,
    #[serde(default)]
    portals: Vec<kobling_protocol::manifest::Portal>,
}

/// A member entry as `kobling keys init` prints it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryFile {
    members: Vec<Member>,
}

impl ManifestCommand {
    pub(crate) fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            ManifestCommand::Init { federation, file } => {
                ensure!(!federation.trim().is_empty(), "the federation needs a name");
                let text = manifest_file::render_draft(&Manifest {
                    federation,
                    portals: Vec::new(),
                    members: Vec::new(),
                    authorities: Vec::new(),
                    domains: Vec::new(),
                })?;
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&file)
                    .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()))
                    .with_context(|| format!("cannot create {}", file.display()))?;
                say!(
                    "{} created; add each node with `kobling manifest add {} --entry FILE`",
                    file.display(),
                    file.display()
                );
                Ok(ExitCode::SUCCESS)
            }
            ManifestCommand::Remove {
                file,
                register,
                key,
            } => {
                let mut manifest = load_draft(&file)?;
                let key = read_key(&key)?;
                let member = manifest
                    .members
                    .iter_mut()
                    .find(|m| m.name.as_str() == register)
                    .with_context(|| format!("{register} is not in the manifest"))?;
                let before = member.operators.len();
                member.operators.retain(|o| o.key != key);
                ensure!(
                    member.operators.len() < before,
                    "no operator of {register} has this key"
                );
                let left = member.operators.len();
                std::fs::write(&file, manifest_file::render_draft(&manifest)?)
                    .with_context(|| format!("cannot write {}", file.display()))?;
                say!("removed the operator from {register} ({left} operators left)");
                if left < 2 {
                    eprintln!("warning: {register} needs two operators to approve an extract");
                }
                Ok(ExitCode::SUCCESS)
            }
            ManifestCommand::Add {
                file,
                entry,
                replace,
                register,
                operator,
                key,
                authority,
                domain,
                holder,
                key_holders,
                disclosure_log,
            } => {
                let mut manifest = load_draft(&file)?;
                let done = match (entry, register, operator, key) {
                    (None, None, None, None) if domain.is_some() => add_domain(
                        &mut manifest,
                        domain.unwrap_or_default(),
                        holder.unwrap_or_default(),
                        key_holders,
                        if disclosure_log {
                            DomainKind::DisclosureLog
                        } else {
                            DomainKind::Register
                        },
                    )?,
                    (None, None, None, Some(key)) if authority.is_some() => {
                        let name = authority.unwrap_or_default();
                        ensure!(!name.trim().is_empty(), "the authority needs a name");
                        let key = read_key(&key)?;
                        ensure!(
                            !manifest.is_authority(&key),
                            "this key is already an authority"
                        );
                        manifest.authorities.push(Authority {
                            name: name.clone(),
                            key,
                        });
                        format!("added access authority {name}")
                    }
                    (Some(entry), None, None, None) => {
                        let member = parse_entry(&read_small(&entry)?).with_context(|| {
                            format!(
                                "{} is not a member entry of `kobling keys init`",
                                entry.display()
                            )
                        })?;
                        if replace {
                            replace_member(&mut manifest, member)?
                        } else {
                            add_member(&mut manifest, member)?
                        }
                    }
                    (None, Some(register), Some(operator), Some(key)) => {
                        add_operator(&mut manifest, &register, operator, &key)?
                    }
                    _ => bail!("give --entry FILE, or --register, --operator and --key, or --authority and --key, or --domain and --holder"),
                };
                let text = manifest_file::render_draft(&manifest)?;
                std::fs::write(&file, text)
                    .with_context(|| format!("cannot write {}", file.display()))?;
                say!("{done}");
                Ok(ExitCode::SUCCESS)
            }
            ManifestCommand::Check { file } => {
                let m = manifest_file::load(&file)?;
                say!(
                    "manifest OK: federation {:?}, digest {}",
                    m.federation,
                    m.digest()
                );
                for member in &m.members {
                    let role = match member.role {
                        Role::Register => "register",
                        Role::Linker => "linker",
                    };
                    say!(
                        "  {:<10} {:<8} {:<24} tls {}…  operators: {}",
                        member.name.as_str(),
                        role,
                        member.address,
                        &member.tls_spki_sha256.to_hex()[..16],
                        member
                            .operators
                            .iter()
                            .map(|o| o.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
                for d in &m.domains {
                    say!(
                        "  domain {:<10} holder {:<10} key holders: {}{}",
                        d.name.as_str(),
                        d.holder.as_str(),
                        d.key_holders(&m)
                            .iter()
                            .map(|n| n.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                        if d.kind == DomainKind::DisclosureLog {
                            " (the disclosure log)"
                        } else {
                            ""
                        }
                    );
                }
                for a in &m.authorities {
                    say!("  authority  {:<24} key {}…", a.name, &a.key.to_hex()[..16]);
                }
                if m.authorities.is_empty() {
                    eprintln!("warning: the manifest names no access authority ([[authorities]]): the linker refuses every project order");
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

/// Parses a member entry as `kobling keys init` prints it: exactly one
/// `[[members]]` table.
pub(crate) fn parse_entry(text: &str) -> anyhow::Result<Member> {
    let parsed: EntryFile = toml::from_str(text)?;
    let [member] = <[Member; 1]>::try_from(parsed.members)
        .map_err(|_| anyhow::anyhow!("an entry holds exactly one [[members]] table"))?;
    Ok(member)
}

fn read_small(path: &std::path::Path) -> anyhow::Result<String> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    ensure!(
        meta.len() <= MAX_PART_BYTES,
        "{} is larger than 64 KiB",
        path.display()
    );
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

fn load_draft(path: &std::path::Path) -> anyhow::Result<Manifest> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read the manifest {} (create it with `kobling manifest init`)",
            path.display()
        )
    })?;
    let draft: Draft =
        toml::from_str(&text).with_context(|| format!("invalid manifest {}", path.display()))?;
    Ok(Manifest {
        federation: draft.federation,
        portals: draft.portals,
        members: draft.members,
        authorities: draft.authorities,
        domains: draft.domains,
    })
}

/// Appends `member`; the text to print.
fn add_member(manifest: &mut Manifest, member: Member) -> anyhow::Result<String> {
    for m in &manifest.members {
        ensure!(m.name != member.name, "{} is already a member", member.name);
        ensure!(
            m.tls_spki_sha256 != member.tls_spki_sha256 && m.signing_key != member.signing_key,
            "{}'s keys are already in the manifest (as {})",
            member.name,
            m.name
        );
    }
    if member.role == Role::Linker {
        ensure!(
            manifest.linker().is_none(),
            "the manifest already has a linker"
        );
    }
    let text = match member.role {
        Role::Register => format!(
            "added register {} ({}); add its operators with --register {} --operator NAME --key KEY",
            member.name, member.address, member.name
        ),
        Role::Linker => format!("added the linker {} ({})", member.name, member.address),
    };
    manifest.members.push(member);
    Ok(text)
}

/// Replaces the member of `member`'s name, in place, keeping its
/// operators; the text to print.
fn replace_member(manifest: &mut Manifest, mut member: Member) -> anyhow::Result<String> {
    for m in manifest.members.iter().filter(|m| m.name != member.name) {
        ensure!(
            m.tls_spki_sha256 != member.tls_spki_sha256 && m.signing_key != member.signing_key,
            "{}'s keys are already in the manifest (as {})",
            member.name,
            m.name
        );
    }
    let slot = manifest
        .members
        .iter_mut()
        .find(|m| m.name == member.name)
        .with_context(|| format!("{} is not in the manifest: add it", member.name))?;
    ensure!(slot.role == member.role, "{} changes its role", member.name);
    if member.operators.is_empty() {
        member.operators = std::mem::take(&mut slot.operators);
    }
    *slot = member;
    Ok(format!("replaced the entry of {}", slot.name))
}

/// Declares register domain `name` held by `holder`; the text to print.
fn add_domain(
    manifest: &mut Manifest,
    name: String,
    holder: String,
    key_holders: Vec<String>,
    kind: DomainKind,
) -> anyhow::Result<String> {
    use kobling_protocol::types::Name;
    let name = Name::new(name).context("invalid --domain")?;
    let holder = Name::new(holder).context("invalid --holder")?;
    let key_holders = if key_holders.is_empty() {
        None
    } else {
        Some(
            key_holders
                .into_iter()
                .map(|k| Name::new(k).context("invalid --key-holder"))
                .collect::<anyhow::Result<Vec<_>>>()?,
        )
    };
    ensure!(
        manifest.domain(&name).is_none(),
        "domain {name} is already declared"
    );
    ensure!(
        manifest.linker().is_some(),
        "add the linker before a domain: it is always a key holder"
    );
    let spec = DomainSpec {
        name,
        holder,
        key_holders,
        kind,
    };
    let mut with = manifest.clone();
    // Checked with the domains declared so far (a second log is refused).
    with.domains.push(spec.clone());
    kobling_protocol::domain::validate_domains(&with)?;
    let text = format!(
        "declared {} {} held by {}; key holders in chain order: {}",
        match kind {
            DomainKind::DisclosureLog => "the disclosure log",
            _ => "domain",
        },
        spec.name,
        spec.holder,
        spec.key_holders(&with)
            .iter()
            .map(|n| n.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    manifest.domains.push(spec);
    Ok(text)
}

/// A public key given as 64 hex digits or as a file holding them.
fn read_key(key: &str) -> anyhow::Result<Ed25519Key> {
    match Ed25519Key::from_hex(key) {
        Ok(k) => Ok(k),
        Err(_) => {
            let path = std::path::Path::new(key);
            let text = read_small(path).with_context(|| {
                format!("--key is neither 64 hex digits nor a readable file: {key}")
            })?;
            Ed25519Key::from_hex(text.trim())
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
        }
    }
}

/// Adds an operator to `register`; the text to print.
fn add_operator(
    manifest: &mut Manifest,
    register: &str,
    name: String,
    key: &str,
) -> anyhow::Result<String> {
    let key = read_key(key)?;
    ensure!(!name.trim().is_empty(), "the operator needs a name");
    ensure!(
        !manifest
            .members
            .iter()
            .flat_map(|m| &m.operators)
            .any(|o| o.key == key),
        "this operator key is already in the manifest"
    );
    let member = manifest
        .members
        .iter_mut()
        .find(|m| m.name.as_str() == register)
        .with_context(|| format!("{register} is not in the manifest yet: add its entry first"))?;
    ensure!(
        member.role == Role::Register,
        "{register} is the linker, which has no operators"
    );
    let text = format!(
        "added operator {name:?} to {register} ({} operators)",
        member.operators.len() + 1
    );
    member.operators.push(Operator { name, key });
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, role: Role, byte: u8) -> Member {
        Member {
            name: kobling_protocol::types::Name::new(name).expect("name"),
            role,
            address: format!("127.0.0.1:74{byte:02}"),
            tls_spki_sha256: kobling_protocol::manifest::TlsFingerprint([byte; 32]),
            signing_key: Ed25519Key([byte + 100; 32]),
            hpke_key: kobling_protocol::manifest::X25519Key([byte + 50; 32]),
            operators: Vec::new(),
        }
    }

    #[test]
    fn members_and_operators_are_added_once_and_the_result_validates() {
        let mut m = Manifest {
            federation: "test".into(),
            portals: Vec::new(),
            members: Vec::new(),
            authorities: Vec::new(),
            domains: Vec::new(),
        };
        add_member(&mut m, member("NPR", Role::Register, 1)).expect("add NPR");
        assert!(add_member(&mut m, member("NPR", Role::Register, 2)).is_err());
        assert!(
            add_member(&mut m, member("KPR", Role::Register, 1)).is_err(),
            "NPR's keys under another name"
        );
        add_member(&mut m, member("LINKER", Role::Linker, 3)).expect("add the linker");
        assert!(add_member(&mut m, member("L2", Role::Linker, 4)).is_err());
        let k1 = "11".repeat(32);
        add_operator(&mut m, "NPR", "a".into(), &k1).expect("operator");
        assert!(
            add_operator(&mut m, "NPR", "b".into(), &k1).is_err(),
            "same key"
        );
        assert!(add_operator(&mut m, "LINKER", "c".into(), &"22".repeat(32)).is_err());
        assert!(add_operator(&mut m, "SSB", "c".into(), &"22".repeat(32)).is_err());
        add_operator(&mut m, "NPR", "b".into(), &"22".repeat(32)).expect("operator");
        let mut renewed = member("NPR", Role::Register, 9);
        replace_member(&mut m, renewed.clone()).expect("new keys for NPR");
        assert_eq!(
            m.members[0].tls_spki_sha256,
            kobling_protocol::manifest::TlsFingerprint([9; 32]),
            "in place"
        );
        assert_eq!(m.members[0].operators.len(), 2, "operators kept");
        renewed.name = kobling_protocol::types::Name::new("SSB").expect("name");
        assert!(replace_member(&mut m, renewed).is_err(), "not a member");
        let text = manifest_file::render_draft(&m).expect("render");
        let again = manifest_file::parse(&text).expect("a valid manifest");
        assert_eq!(again, m);
    }
}
