//! `kobling audit`: verify and read project transcripts offline.
//!
//! ```text
//!  kobling audit verify --transcript FILE --manifest FILE [--json]
//!  kobling audit show   --transcript FILE [--manifest FILE] [--all-chunks]
//!  kobling audit domain --transcript FILE --manifest FILE --domain NAME
//!
//!  read: bytes ─ decode_file ─▶ entries + trailer    (or: the format error, and
//!                                                      the entries before it)
//!  report: transcript::verify ─▶ one row per check, timeline, counts per list
//!  verify: report as text or JSON;  show: every entry with its fields
//! ```
//!
//! Exit status: 0 the transcript verifies (for `show` without a manifest:
//! it is well formed), 1 it does not (the report says which check failed
//! and where), 2 the command could not run (a file is missing or
//! unreadable, the manifest is invalid, bad arguments).
//!
//! Nothing printed identifies a person: a transcript holds counts, roots,
//! keys and proofs, never an identifier or a pseudonym. Keys, digests,
//! points and signatures are printed as their first 16 hex digits.
//!
//! # The transcript file (format version 1)
//!
//! ```text
//! file    = magic ‖ version ‖ record* ‖ trailer-record      nothing after it
//! magic   = "KOBLING-TRANSCRIPT"                            18 ASCII bytes
//! version = le16(1)
//! record  = kind ‖ le32(len) ‖ body                         len ≤ 64 MiB
//!           kind 1: body = postcard(Entry), one per entry, in sequence order
//!           kind 2: body = postcard(Trailer), exactly once, last
//! ```
//!
//! Bodies are [postcard](https://postcard.jamesmunns.com/wire-format)
//! encodings: integers as unsigned LEB128 varints, fixed-size byte arrays
//! (keys, digests, points, signatures) raw, strings and sequences as a
//! varint length then the elements, `Option` as a byte 0/1 then the value,
//! enums as a varint variant index then the fields, struct fields in
//! declaration order. A body must be the canonical encoding of what it
//! decodes to (re-encoding gives the same bytes), so changing any byte
//! changes a value. At most 2²⁰ entries.
//!
//! ```text
//! Entry     = seq u64 ‖ prev [32] ‖ statement ‖ signature [64] ‖ recorder_signature [64]
//! statement = project str ‖ time u64 (Unix seconds, author's clock) ‖ signer ‖ body
//! signer    = 0 Node(name) | 1 Operator(register name, key [32]) | 2 Researcher(key [32])
//! body      = 0 Order | 1 Approval | 2 Commitment | 3 ListAnnounced | 4 Hop
//!           | 5 LinkSummary | 6 Delivery | 7 Closure | 8 Shredded
//!             (fields as in kobling_protocol::transcript::body)
//! Trailer   = project str ‖ entries u64 ‖ head [32] ‖ signature [64]
//! ```
//!
//! With `framed_sha3(tag, fields) = SHA3-256(le64(|tag|) ‖ tag ‖ le64(|f1|) ‖ f1 ‖ …)`:
//!
//! ```text
//! statement digest = framed_sha3("KOBLING-V1-STATEMENT", [postcard(statement)])
//!                    signature = Ed25519(author, statement digest)
//! link digest      = framed_sha3("KOBLING-V1-ENTRY-LINK",
//!                                [le64(seq), prev, statement digest, signature])
//!                    recorder_signature = Ed25519(linker, link digest)
//! entry hash       = framed_sha3("KOBLING-V1-ENTRY", [postcard(entry)])
//!                    prev of entry i+1 = hash of entry i; prev of entry 0 = 32 zero bytes
//! trailer          = Ed25519(linker, framed_sha3("KOBLING-V1-TRANSCRIPT-TRAILER",
//!                                                [project, le64(entries), head]))
//!                    head = hash of the last entry (zero if none)
//! order digest     = framed_sha3("KOBLING-V1-ORDER", [postcard(order)])      bound by approvals
//! manifest digest  = framed_sha3("KOBLING-V1-MANIFEST", [postcard(manifest)]) named by the order
//! ```
//!
//! Authors sign statements without knowing where they land; the linker
//! chains and countersigns them, and signs the trailer so a file cut at an
//! entry boundary is caught.
//!
//! # The checks
//!
//! Run in this order, each over the whole transcript; the first failure
//! stops verification, so every check before it passed and every check
//! after it was not reached ([`Check::ALL`]).
//!
//! | check | holds when |
//! |---|---|
//! | `format` | the file decodes: magic, version 1, whole records, canonical bodies, one trailer at the end |
//! | `manifest` | the manifest is valid (one linker, two operators per register, distinct keys) and its digest is the one the researcher-signed order names |
//! | `hash-chain` | entry *i* has sequence number *i* and the previous entry's hash; the linker's recorder signature on every entry verifies; the trailer's count, head, project and linker signature match |
//! | `signatures` | every statement's signature verifies with its signer's key: node keys and operator keys (for that register) from the manifest, the researcher key from the order |
//! | `order` | entry 0 is the order, signed by the researcher, naming the manifest's linker, registers of the manifest (each once) and a valid cohort over them; every entry is about the project; commitments, lists, hops and shredding are signed by the node they concern, summary, delivery and closure by the linker; one order, each list announced once |
//! | `two-person-rule` | every approval is by an operator of its register, for a participating register and this order; before a list is announced, two distinct operators approved its extract digest, with the announced row count |
//! | `commitments` | commitments are for this project, by key holders (participating registers and the linker), one key each; every hop commits before it steps, with its committed key (for the linker: its key proof's `K_L`) |
//! | `hop-chain` | per list: counts consistent (persons ≤ valid rows), chunk size a power of two; hop *h* by the *h*-th register after the owner in manifest order, then the linker; input root = previous output root (the announced points root for hop 1); count and chunk size as announced; chunk counts and roots add up to the list roots; every list complete before the linkage |
//! | `proofs` | every chunk's batched DLEQ proof `log_G K = log_A B` under its statement (project, list, hop, chunk, key, roots, count); the linker's key proof `log_G K_L = log_{D_j} C_j`, with `C_j` its step key |
//! | `link-summary` | at most one; the order's cohort; every list once, with the linker hop's final root and the announced persons; matched ≤ persons; max(matched) ≤ cohort ≤ Σ matched |
//! | `delivery` | after the link summary, to the order's researcher key, each list at most once with exactly its matched count |
//! | `closure` | at most one closure; after it only shredding confirmations, for this project, by key holders; a closed project shredded by every key holder |

mod domain;
mod read;
mod render;
mod report;
mod show;
mod verify;

#[cfg(fuzzing)]
pub(crate) use self::{read::parse as read_transcript, report::Report, show::render as show};

use std::process::ExitCode;

use clap::Subcommand;
#[cfg(doc)]
use kobling_protocol::transcript::Check;

/// Auditor subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Verify a transcript against the federation manifest: every check,
    /// the timeline and the counts. Exit status 0 if it holds, 1 if not.
    Verify(verify::VerifyArgs),
    /// Print a transcript in readable form, every entry with its fields
    /// (also a damaged one, as far as it can be read).
    Show(show::ShowArgs),
    /// Verify a register domain's transcript (creation, key commitments,
    /// deliveries, re-shares, retirement) against the manifest. Exit
    /// status 0 if it holds, 1 if not.
    Domain(domain::DomainArgs),
}

impl AuditCommand {
    pub(crate) fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            AuditCommand::Verify(args) => verify::run(&args),
            AuditCommand::Show(args) => show::run(&args),
            AuditCommand::Domain(args) => domain::run(&args),
        }
    }
}
