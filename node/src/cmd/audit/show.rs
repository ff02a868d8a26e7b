//! `kobling audit show`: a transcript in readable form, every entry with its
//! fields, whether or not it verifies.

use std::{path::PathBuf, process::ExitCode};

use clap::Args;
use kobling_protocol::{
    manifest::Manifest,
    transcript::{Body, Columns, Entry, InvalidCount, Signer, Trailer, FILE_VERSION},
};

use super::{
    read::{self, Loaded},
    render::{count, plural, short, signer, utc},
    report::{outcome, Report},
};
use crate::{console::say_raw, manifest_file};

/// Chunks shown per hop record unless `--all-chunks`.
const CHUNKS_SHOWN: usize = 4;

/// Arguments of `kobling audit show`.
#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    /// The transcript file.
    #[arg(long, value_name = "FILE")]
    transcript: PathBuf,
    /// The federation manifest (TOML): to verify the transcript and name
    /// operators.
    #[arg(long, value_name = "FILE")]
    manifest: Option<PathBuf>,
    /// Show every chunk of every hop record (by default the first few).
    #[arg(long)]
    all_chunks: bool,
}

/// Runs the command: exit status 0 if the transcript is well formed (and
/// verifies, given a manifest), 1 if not; it is shown either way.
pub(crate) fn run(args: &ShowArgs) -> anyhow::Result<ExitCode> {
    let loaded = read::load(&args.transcript)?;
    let manifest = args
        .manifest
        .as_deref()
        .map(manifest_file::load)
        .transpose()?;
    let path = args.transcript.display().to_string();
    let (text, ok) = render(&path, &loaded, manifest.as_ref(), args.all_chunks);
    say_raw!("{text}");
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The whole listing, and whether the transcript is sound (well formed,
/// and verified if a manifest is given).
pub(crate) fn render(
    path: &str,
    loaded: &Loaded,
    manifest: Option<&Manifest>,
    all_chunks: bool,
) -> (String, bool) {
    let mut out = format!(
        "Transcript {path}: {} bytes, format version {FILE_VERSION}, {}\n",
        count(loaded.size as u64),
        plural(loaded.entries.len() as u64, "entry", "entries")
    );
    let mut ok = true;
    match &loaded.trailer {
        Ok(t) => out.push_str(&trailer_line(t)),
        Err(e) => {
            ok = false;
            out.push_str(&format!(
                "DAMAGED: {e}; shown below: the {} before the damage\n",
                plural(loaded.entries.len() as u64, "entry", "entries")
            ));
        }
    }
    match manifest {
        None => out.push_str(
            "Not verified: pass --manifest FILE to check signatures, approvals and proofs\n",
        ),
        Some(m) => match outcome(loaded, m) {
            Ok(_) => out.push_str(&format!(
                "Verified against manifest {}: {}\n",
                m.federation,
                Report::new(path, loaded, m).verdict()
            )),
            Err(e) => {
                ok = false;
                out.push_str(&format!(
                    "DOES NOT VERIFY against manifest {}: {e}\n",
                    m.federation
                ));
            }
        },
    }
    let hops = loaded
        .entries
        .first()
        .and_then(|e| match &e.signed.statement.body {
            Body::Order(o) => Some(o.registers.len()),
            _ => None,
        });
    for e in &loaded.entries {
        out.push('\n');
        out.push_str(&entry(e, manifest, hops, all_chunks));
    }
    (out, ok)
}

fn trailer_line(t: &Trailer) -> String {
    format!(
        "Trailer: project {}, {}, head {}, linker signature {}\n",
        t.project,
        plural(t.entries, "entry", "entries"),
        short(t.head.as_bytes()),
        short(&t.signature.0)
    )
}

/// One entry: a heading, then its fields, one per line.
fn entry(e: &Entry, manifest: Option<&Manifest>, hops: Option<usize>, all_chunks: bool) -> String {
    let st = &e.signed.statement;
    let mut out = format!(
        "── entry {} · {} · {} · {}\n",
        e.seq,
        st.body.kind(),
        utc(st.time.0),
        signer(&st.signer, manifest)
    );
    let mut field = |k: &str, v: String| out.push_str(&format!("   {k:<22} {v}\n"));
    field("hash", short(e.hash().as_bytes()));
    field("prev", short(e.prev.as_bytes()));
    field("project", st.project.to_string());
    field(
        "signer",
        match &st.signer {
            Signer::Node(n) => format!("node {n}"),
            Signer::Operator { register, key } => {
                format!("operator of {register}, key {}", short(&key.0))
            }
            Signer::Researcher(key) => format!("researcher, key {}", short(&key.0)),
        },
    );
    field("signature", short(&e.signed.signature.0));
    field("recorder signature", short(&e.recorder_signature.0));
    for (k, v) in body_fields(&st.body, hops, all_chunks) {
        field(&k, v);
    }
    out
}

fn names(n: impl Iterator<Item = impl AsRef<str>>) -> String {
    let v: Vec<String> = n.map(|s| s.as_ref().to_string()).collect();
    if v.is_empty() {
        "(none)".into()
    } else {
        v.join(", ")
    }
}

/// The counts and variables a list's announcement (chain v1 or v2) states.
fn list_counts(
    add: &mut impl FnMut(&str, String),
    rows: u64,
    invalid: &[InvalidCount],
    persons: u64,
    columns: &Columns,
) {
    add("rows", count(rows));
    let invalid: Vec<String> = invalid
        .iter()
        .map(|i| format!("{} {}", count(i.count), i.reason.as_str()))
        .collect();
    add("invalid identifiers", names(invalid.iter()));
    add("persons", count(persons));
    add("variables", names(columns.iter().map(|c| c.as_str())));
}

/// The fields of a statement's body, labelled.
fn body_fields(body: &Body, hops: Option<usize>, all_chunks: bool) -> Vec<(String, String)> {
    let mut f: Vec<(String, String)> = Vec::new();
    let mut add = |k: &str, v: String| f.push((k.to_string(), v));
    match body {
        Body::Order(o) => {
            add("order digest", short(o.digest().as_bytes()));
            add("ordered project", o.project.to_string());
            add("title", o.title.as_str().into());
            add("legal basis", o.legal_basis.as_str().into());
            add("manifest digest", short(o.manifest_digest.as_bytes()));
            add("linker", o.linker.to_string());
            for r in o.registers.iter() {
                add(
                    &format!("register {}", r.register),
                    format!(
                        "variables {}",
                        names(r.variables.iter().map(|c| c.as_str()))
                    ),
                );
            }
            add("cohort", o.cohort.as_str().into());
            add("expires", utc(o.expires.0));
            add("researcher key", short(&o.researcher_signing_key.0));
            add("researcher HPKE key", short(&o.researcher_hpke_key.0));
            add("test mode", if o.test_mode { "yes" } else { "no" }.into());
            if let Some(line) = crate::identified::order_line(o, false) {
                add("identified", line);
            }
        }
        Body::Approval(a) => {
            add("register", a.register.to_string());
            add("order digest", short(a.order.as_bytes()));
            add("extract digest", short(a.extract.as_bytes()));
            add("rows", count(a.rows));
            add("columns", names(a.columns.iter().map(|c| c.as_str())));
        }
        Body::Commitment(c) => {
            add("member", c.member.to_string());
            add("domain", c.domain.to_string());
            add("key K", short(c.key.as_bytes()));
        }
        Body::ListAnnounced(a) => {
            add("list", a.list.to_string());
            add("extract digest", short(a.extract.as_bytes()));
            list_counts(&mut add, a.rows, &a.invalid, a.persons, &a.columns);
            add(
                "blinding commitment D",
                short(a.blinding_commitment.as_bytes()),
            );
            add("points root", short(a.points_root.as_bytes()));
            add("sealed items root", short(a.sealed_root.as_bytes()));
            add("chunk size", count(u64::from(a.chunk_size)));
            if let Some(c) = a.excluded {
                add("reservations", crate::identified::excluded(c));
            }
            add(
                "content key (sealed)",
                format!(
                    "enc {}, {} bytes of ciphertext",
                    short(&a.content_key.enc),
                    a.content_key.ciphertext.len()
                ),
            );
        }
        Body::Hop(h) => {
            add("list", h.list.to_string());
            add("hop", hop_label(&h.hop, hops));
            add("member", h.member.to_string());
            add("step key", short(h.key.as_bytes()));
            add("points", count(h.count));
            add("chunk size", count(u64::from(h.chunk_size)));
            add("input root", short(h.input_root.as_bytes()));
            add("output root", short(h.output_root.as_bytes()));
            if let Some(lp) = &h.linker {
                add(
                    "linker key proof",
                    format!(
                        "K_L {}, C {}, proof {}",
                        short(lp.linker_key.as_bytes()),
                        short(lp.combined.as_bytes()),
                        short(&lp.proof.challenge)
                    ),
                );
            }
            add("chunks", count(h.chunks.len() as u64));
            let line = |i: usize| {
                let c = &h.chunks[i];
                format!(
                    "{} points, in {}, out {}, A {}, B {}, proof {}",
                    count(u64::from(c.count)),
                    short(c.input_root.as_bytes()),
                    short(c.output_root.as_bytes()),
                    short(c.proof.a.as_bytes()),
                    short(c.proof.b.as_bytes()),
                    short(&c.proof.proof.challenge)
                )
            };
            for (k, v) in chunk_fields(h.chunks.len(), all_chunks, line) {
                add(&k, v);
            }
        }
        Body::LinkSummary(s) => {
            add("cohort", s.cohort.as_str().into());
            add("cohort persons", count(s.cohort_persons));
            for l in s.lists.iter() {
                add(
                    &format!("list {}", l.list),
                    format!(
                        "{} matched of {} persons, final root {}",
                        count(l.matched),
                        count(l.persons),
                        short(l.final_root.as_bytes())
                    ),
                );
            }
        }
        Body::Delivery(d) => {
            add("recipient key", short(&d.recipient.0));
            for l in d.lists.iter() {
                add(
                    &format!("list {}", l.list),
                    format!(
                        "{}, selection digest {}",
                        plural(l.items, "item", "items"),
                        short(l.selection.as_bytes())
                    ),
                );
            }
        }
        Body::Closure(c) => add("reason", c.reason.as_str().into()),
        Body::Shredded(s) => {
            add("member", s.member.to_string());
            add("domain", s.domain.to_string());
        }
        Body::ListAnnouncedV2(a) => {
            add("list", a.list.to_string());
            add("chain", "v2 (one end-to-end check per list)".into());
            add("extract digest", short(a.extract.as_bytes()));
            list_counts(&mut add, a.rows, &a.invalid, a.persons, &a.columns);
            let d: Vec<String> = a.blinding.iter().map(|d| short(d.as_bytes())).collect();
            add("blinding commitments D", names(d.iter()));
            add("chunk size", count(u64::from(a.chunk_size)));
            if let Some(c) = a.excluded {
                add("reservations", crate::identified::excluded(c));
            }
        }
        Body::OwnerListV2(o) => {
            add("list", o.list.to_string());
            add("attempt", o.attempt.to_string());
            add("chunk digests", count(o.chunks.len() as u64));
            add("list digest", short(o.list_digest.as_bytes()));
            add("sealed items root", short(o.sealed_root.as_bytes()));
        }
        Body::HopV2(h) => {
            add("list", h.list.to_string());
            add("attempt", h.attempt.to_string());
            add("hop", hop_label(&h.hop, hops));
            add("member", h.member.to_string());
            add("step key", short(h.key.as_bytes()));
            add("points", count(h.count));
            add("chunk size", count(u64::from(h.chunk_size)));
            add(
                "step key proof",
                (if h.key_proof.is_some() { "yes" } else { "no" }).into(),
            );
            if let Some(r) = &h.final_root {
                add("salted final root", short(r.as_bytes()));
            }
            add("chunks", count(h.chunks.len() as u64));
            let line = |i: usize| {
                let c = &h.chunks[i];
                format!(
                    "in {}, out {}",
                    short(c.input.as_bytes()),
                    short(c.output.as_bytes())
                )
            };
            for (k, v) in chunk_fields(h.chunks.len(), all_chunks, line) {
                add(&k, v);
            }
        }
        Body::ListCheck(c) => {
            add("list", c.list.to_string());
            add("attempt", c.attempt.to_string());
            add("passed", c.passed.to_string());
            add("check seed σ", short(c.sigma.as_bytes()));
            let a: Vec<String> = c.a.iter().map(|p| short(p.as_bytes())).collect();
            add("A_0 … A_m", names(a.iter()));
            add("B", short(c.b.as_bytes()));
            add("pass proofs", count(c.proofs.len() as u64));
        }
        Body::ChainStopped(s) => {
            add("list", s.list.to_string());
            add("attempt", s.attempt.to_string());
            add("chunk", s.chunk.to_string());
            add(
                "named",
                match &s.named {
                    Some((hop, member)) => format!("hop {hop} ({member})"),
                    None => "nobody (the check failed)".into(),
                },
            );
        }
        Body::ListRetry(r) => {
            add("list", r.list.to_string());
            add("attempt", format!("{} (strict mode)", r.attempt));
        }
        other => add("kind", other.kind().into()),
    }
    f
}

/// `"h of n"` when the chain's length is known, else `"h"`.
fn hop_label(hop: &impl std::fmt::Display, hops: Option<usize>) -> String {
    match hops {
        Some(n) => format!("{hop} of {n}"),
        None => hop.to_string(),
    }
}

/// A hop record's chunks as labelled lines: the first [`CHUNKS_SHOWN`]
/// (or all), then how many more there are.
fn chunk_fields(total: usize, all: bool, line: impl Fn(usize) -> String) -> Vec<(String, String)> {
    let shown = if all { total } else { CHUNKS_SHOWN.min(total) };
    let mut out: Vec<(String, String)> = (0..shown)
        .map(|i| (format!("  chunk {i}"), line(i)))
        .collect();
    if total > shown {
        out.push((
            "  …".into(),
            format!(
                "{} more (--all-chunks shows them)",
                plural((total - shown) as u64, "chunk", "chunks")
            ),
        ));
    }
    out
}
