//! The demo's federation: a keystore per member, two operator keys per
//! register, the researcher's and the access authority's keys, and the
//! manifest naming them all.

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{ensure, Context};
use kobling_protocol::{
    domain::DomainSpec,
    manifest::{Authority, Ed25519Key, Manifest, Member, Operator},
    types::Name,
};

use super::{
    nodes::Ports,
    process::{ok, p},
    HOLDER, SOURCE,
};

/// Creates the federation in `dir` unless one is there: the manifest's
/// path, and the new members' ports, held until their nodes start.
pub(super) fn federation(
    dir: &Path,
    registers: &[&str],
    receipt: bool,
) -> anyhow::Result<(PathBuf, Ports)> {
    let manifest_path = dir.join("federation.toml");
    if manifest_path.exists() {
        let manifest: Manifest = toml::from_str(&fs::read_to_string(&manifest_path)?)
            .with_context(|| format!("cannot read {}", manifest_path.display()))?;
        let has = |n: &str| manifest.members.iter().any(|m| m.name.as_str() == n);
        ensure!(
            registers.iter().all(|r| has(r)) && (!receipt || has(SOURCE)),
            "the federation in {} was made for other registers; remove the directory or choose another --out",
            dir.display()
        );
        println!("Reusing the federation in {}", dir.display());
        return Ok((manifest_path, Ports::default()));
    }
    let registers: Vec<&str> = registers
        .iter()
        .copied()
        .chain(receipt.then_some(SOURCE))
        .collect();
    let registers = registers.as_slice();
    println!("Creating keystores for {} registers and a linker, two operators per register, a researcher…", registers.len());
    let nodes = dir.join("nodes");
    let keys = dir.join("keys");
    fs::create_dir_all(&keys)?;
    let mut members = Vec::new();
    let mut ports = Ports::default();
    for name in registers.iter().chain(std::iter::once(&"LINKER")) {
        let role = if *name == "LINKER" {
            "linker"
        } else {
            "register"
        };
        let address = ports.reserve(name)?;
        let entry = ok(&[
            "keys",
            "init",
            "--dir",
            p(&nodes.join(name))?,
            "--name",
            name,
            "--address",
            &address,
            "--role",
            role,
        ])?;
        let entry = entry
            .trim_start()
            .strip_prefix("[[members]]")
            .context("kobling keys init printed no manifest entry")?;
        let mut member: Member = toml::from_str(entry)?;
        if role == "register" {
            for k in 1..=2 {
                let key = keys.join(format!("{name}-operator-{k}.key"));
                let public = new_key("operator", &key)?;
                member.operators.push(Operator {
                    name: format!("{name} operator {k}"),
                    key: Ed25519Key::from_hex(public.trim()).map_err(anyhow::Error::msg)?,
                });
            }
        }
        members.push(member);
    }
    let researcher_public = new_key("researcher", &keys.join("researcher.key"))?;
    fs::write(keys.join("researcher.pub"), researcher_public)?;
    // The access authority that grants the demo's project.
    let authority = new_key("authority", &keys.join("authority.key"))?;
    let manifest = Manifest {
        federation: "kobling-demo".into(),
        portals: Vec::new(),
        members,
        authorities: vec![Authority {
            name: "Helsedataservice (demo)".into(),
            key: Ed25519Key::from_hex(authority.trim()).map_err(anyhow::Error::msg)?,
        }],
        domains: if receipt {
            // Key holders named: NPR, KPR, SSB and the linker, not the
            // pharmacy (a source without a share) nor the holder.
            let key_holders = registers
                .iter()
                .filter(|r| **r != HOLDER && **r != SOURCE)
                .chain(std::iter::once(&"LINKER"))
                .map(|n| Name::new(*n).map_err(anyhow::Error::msg))
                .collect::<anyhow::Result<Vec<_>>>()?;
            vec![DomainSpec {
                name: Name::new(HOLDER).map_err(anyhow::Error::msg)?,
                holder: Name::new(HOLDER).map_err(anyhow::Error::msg)?,
                key_holders: Some(key_holders),
                kind: Default::default(),
            }]
        } else {
            Vec::new()
        },
    };
    fs::write(&manifest_path, toml::to_string_pretty(&manifest)?)?;
    ok(&["manifest", "check", p(&manifest_path)?])?;
    Ok((manifest_path, ports))
}

/// Makes a signing key with `kobling keys KIND --out FILE` (KIND:
/// `operator`, `researcher` or `authority`); what it prints, the public key.
fn new_key(kind: &str, file: &Path) -> anyhow::Result<String> {
    ok(&["keys", kind, "--out", p(file)?])
}
