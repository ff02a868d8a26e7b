//! The audit report: the outcome of every check, the timeline and the
//! counts, as text for a person or JSON for a program.

use kobling_protocol::{
    manifest::Manifest,
    transcript::{verify, Body, Check, Signer, VerifiedTranscript, VerifyError, FILE_VERSION},
};
use serde::Serialize;

use super::{
    read::Loaded,
    render::{self, count, plural, Event, ListCounts},
};

/// How far a check got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Status {
    /// It held over the whole transcript.
    Passed,
    /// It failed (the first failure; verification stopped there).
    Failed,
    /// Verification stopped at an earlier failure before running it.
    NotReached,
}

/// One check in the report.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct CheckRow {
    /// The check's name.
    pub(crate) name: &'static str,
    /// Its status.
    pub(crate) status: Status,
    /// The entry where it failed (for `format`: the record).
    pub(crate) entry: Option<u64>,
    /// Why it failed, or why it was not reached.
    pub(crate) reason: Option<String>,
    /// For a passed check: what it established.
    pub(crate) detail: Option<String>,
}

/// The project in brief.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Summary {
    /// Whether the facts below were verified (otherwise they are what the
    /// transcript claims, as far as it could be read).
    pub(crate) verified: bool,
    /// The project, if the order could be read.
    pub(crate) project: Option<String>,
    /// Entries read.
    pub(crate) entries: usize,
    /// Per list.
    pub(crate) lists: Vec<ListCounts>,
    /// The cohort size, if linked.
    pub(crate) cohort_persons: Option<u64>,
    /// Whether a delivery was recorded.
    pub(crate) delivered: bool,
    /// Whether the project was closed.
    pub(crate) closed: bool,
}

/// The manifest the transcript was checked against.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ManifestInfo {
    /// The federation's name.
    pub(crate) federation: String,
    /// The first 16 hex digits of its digest.
    pub(crate) digest: String,
}

/// Everything `audit verify` reports.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Report {
    /// The transcript file.
    pub(crate) transcript: String,
    /// The manifest.
    pub(crate) manifest: ManifestInfo,
    /// `ok` or `rejected`.
    pub(crate) result: &'static str,
    /// Every check, in the order they run.
    pub(crate) checks: Vec<CheckRow>,
    /// The first failure, if any.
    pub(crate) failure: Option<VerifyError>,
    /// The project in brief.
    pub(crate) summary: Summary,
    /// Who did what, when.
    pub(crate) timeline: Vec<Event>,
}

/// Verifies a loaded transcript (the `format` check is the file's).
pub(crate) fn outcome(
    loaded: &Loaded,
    manifest: &Manifest,
) -> Result<VerifiedTranscript, VerifyError> {
    match &loaded.trailer {
        Ok(trailer) => verify(&loaded.entries, Some(trailer), manifest),
        Err(e) => Err(VerifyError::from(e.clone())),
    }
}

impl Report {
    /// Builds the report of `loaded` checked against `manifest`.
    pub(crate) fn new(path: &str, loaded: &Loaded, manifest: &Manifest) -> Report {
        let outcome = outcome(loaded, manifest);
        let checks = Check::ALL
            .iter()
            .map(|&c| check_row(c, &outcome, loaded, manifest))
            .collect();
        let entries = &loaded.entries;
        let has = |f: fn(&Body) -> bool| entries.iter().any(|e| f(&e.signed.statement.body));
        let summary = match &outcome {
            Ok(v) => Summary {
                verified: true,
                project: Some(v.order.project.to_string()),
                entries: v.entries,
                lists: render::list_counts(entries),
                cohort_persons: v.cohort_persons,
                delivered: v.delivered,
                closed: v.closed,
            },
            Err(_) => Summary {
                verified: false,
                project: render::order_of(entries).map(|o| o.project.to_string()),
                entries: entries.len(),
                lists: render::list_counts(entries),
                cohort_persons: entries.iter().find_map(|e| match &e.signed.statement.body {
                    Body::LinkSummary(s) => Some(s.cohort_persons),
                    _ => None,
                }),
                delivered: has(|b| matches!(b, Body::Delivery(_))),
                closed: has(|b| matches!(b, Body::Closure(_))),
            },
        };
        Report {
            transcript: path.to_string(),
            manifest: ManifestInfo {
                federation: manifest.federation.clone(),
                digest: render::short(manifest.digest().as_bytes()),
            },
            result: if outcome.is_ok() { "ok" } else { "rejected" },
            checks,
            failure: outcome.err(),
            summary,
            timeline: render::timeline(entries, Some(manifest)),
        }
    }

    /// The one-line verdict: `transcript OK: …` or `transcript REJECTED: …`.
    pub(crate) fn verdict(&self) -> String {
        if let Some(f) = &self.failure {
            return format!("transcript REJECTED: {f}");
        }
        let s = &self.summary;
        format!(
            "transcript OK: project {}, {}, {}, {}, {}, {}",
            s.project.as_deref().unwrap_or("?"),
            plural(s.entries as u64, "entry", "entries"),
            plural(s.lists.len() as u64, "list", "lists"),
            s.cohort_persons.map_or("not linked".to_string(), |c| {
                format!("cohort {}", plural(c, "person", "persons"))
            }),
            if s.delivered {
                "delivered"
            } else {
                "not delivered"
            },
            if s.closed {
                "closed and shredded"
            } else {
                "open"
            },
        )
    }

    /// The report as text.
    pub(crate) fn to_text(&self) -> String {
        let mut out = String::new();
        let s = &self.summary;
        out.push_str(&format!("Transcript  {}\n", self.transcript));
        out.push_str(&format!(
            "Manifest    {} (digest {})\n",
            self.manifest.federation, self.manifest.digest
        ));
        if let Some(p) = &s.project {
            out.push_str(&format!("Project     {p}\n"));
        }
        let failed_at = self.failure.as_ref().and_then(|f| match f.check {
            Check::Format => None,
            _ => f.entry,
        });
        out.push_str(&format!(
            "\nTimeline{}\n",
            if s.verified {
                ""
            } else {
                " (NOT VERIFIED: read it as claims, not facts)"
            }
        ));
        if self.timeline.is_empty() {
            out.push_str("  (no entries could be read)\n");
        }
        let width = self
            .timeline
            .last()
            .map_or(1, |e| e.entry.to_string().len());
        for e in &self.timeline {
            let mark = if Some(e.entry) == failed_at { "!" } else { " " };
            out.push_str(&format!(
                " {mark}{:>width$}  {}  {} {}\n",
                e.entry, e.time, e.signer, e.event
            ));
        }
        if let Some(f) = &self.failure {
            if f.check == Check::Format {
                out.push_str(&format!(
                    "  (the file is damaged after the entries above: {})\n",
                    f.reason
                ));
            }
        }
        if !s.lists.is_empty() {
            out.push_str("\nLists\n");
            out.push_str(&render::counts_table(&s.lists));
        }
        out.push_str("\nChecks\n");
        for c in &self.checks {
            let (status, text) = match c.status {
                Status::Passed => ("passed", c.detail.clone().unwrap_or_default()),
                Status::Failed => (
                    "FAILED",
                    match c.entry {
                        Some(e) if c.name == Check::Format.name() => {
                            format!("record {e}: {}", c.reason.as_deref().unwrap_or(""))
                        }
                        Some(e) => format!("entry {e}: {}", c.reason.as_deref().unwrap_or("")),
                        None => c.reason.clone().unwrap_or_default(),
                    },
                ),
                Status::NotReached => ("not reached", String::new()),
            };
            let line = format!("  {:<16} {:<12} {text}", c.name, status);
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.verdict());
        out.push('\n');
        out
    }
}

fn check_row(
    c: Check,
    outcome: &Result<VerifiedTranscript, VerifyError>,
    loaded: &Loaded,
    manifest: &Manifest,
) -> CheckRow {
    let row = |status, entry, reason| CheckRow {
        name: c.name(),
        status,
        entry,
        reason,
        detail: None,
    };
    match outcome {
        Err(f) if f.check == c => row(Status::Failed, f.entry, Some(f.reason.clone())),
        Err(f) if !c.runs_before(f.check) => row(
            Status::NotReached,
            None,
            Some(format!(
                "not run: verification stopped at the failed {} check",
                f.check
            )),
        ),
        _ => CheckRow {
            detail: Some(detail(c, loaded, manifest)),
            ..row(Status::Passed, None, None)
        },
    }
}

/// What a passed check established, in words.
fn detail(c: Check, loaded: &Loaded, manifest: &Manifest) -> String {
    let entries = &loaded.entries;
    let bodies = || entries.iter().map(|e| &e.signed.statement.body);
    let n = |f: fn(&Body) -> bool| bodies().filter(|b| f(b)).count() as u64;
    let linker = manifest
        .linker()
        .map_or("the linker".to_string(), |l| l.name.to_string());
    match c {
        Check::Format => format!(
            "format version {FILE_VERSION}: {} and a signed trailer in {} bytes",
            plural(entries.len() as u64, "entry", "entries"),
            count(loaded.size as u64)
        ),
        Check::Manifest => format!(
            "manifest {} is valid{}",
            manifest.federation,
            if entries.is_empty() {
                ""
            } else {
                " and is the one the order names"
            }
        ),
        Check::HashChain => format!(
            "{} chained and countersigned by {linker}; trailer signed by {linker}",
            plural(entries.len() as u64, "entry", "entries")
        ),
        Check::Signatures => {
            let by = |f: fn(&Signer) -> bool| {
                entries
                    .iter()
                    .filter(|e| f(&e.signed.statement.signer))
                    .count() as u64
            };
            format!(
                "{} verified: {} by the researcher, {} by operators, {} by nodes",
                plural(
                    entries.len() as u64,
                    "statement signature",
                    "statement signatures"
                ),
                count(by(|s| matches!(s, Signer::Researcher(_)))),
                count(by(|s| matches!(s, Signer::Operator { .. }))),
                count(by(|s| matches!(s, Signer::Node(_)))),
            )
        }
        Check::Order => match render::order_of(entries) {
            Some(o) => format!(
                "project {} ordered by the researcher: {}, cohort {}, linker {}",
                o.project,
                plural(o.registers.len() as u64, "register", "registers"),
                o.cohort.as_str(),
                o.linker
            ),
            None => String::new(),
        },
        Check::TwoPersonRule => format!(
            "{} announced, each after two distinct operators approved its extract ({} in all)",
            plural(n(is_list), "list", "lists"),
            plural(
                n(|b| matches!(b, Body::Approval(_))),
                "approval",
                "approvals"
            )
        ),
        Check::Commitments => format!(
            "{}, each before its key was used",
            plural(
                n(|b| matches!(b, Body::Commitment(_))),
                "key commitment",
                "key commitments"
            )
        ),
        Check::HopChain => {
            let complete = render::list_counts(entries)
                .iter()
                .filter(|l| l.hops_expected == Some(l.hops))
                .count();
            format!(
                "{} over {}, {} complete",
                plural(
                    n(|b| matches!(b, Body::Hop(_) | Body::HopV2(_))),
                    "hop record",
                    "hop records"
                ),
                plural(n(is_list), "list", "lists"),
                count(complete as u64)
            )
        }
        Check::Proofs => {
            let (chunks, keys) = bodies().fold((0u64, 0u64), |(c, k), b| match b {
                Body::Hop(h) => (c + h.chunks.len() as u64, k + u64::from(h.linker.is_some())),
                _ => (c, k),
            });
            let (checks, steps, key_proofs) =
                bodies().fold((0u64, 0u64, 0u64), |(c, s, k), b| match b {
                    Body::ListCheck(l) => (c + 1, s + l.proofs.len() as u64, k),
                    Body::HopV2(h) => (c, s, k + u64::from(h.key_proof.is_some())),
                    _ => (c, s, k),
                });
            if checks == 0 && chunks > 0 {
                format!(
                    "{} and {} verified",
                    plural(chunks, "chunk proof", "chunk proofs"),
                    plural(keys, "linker key proof", "linker key proofs")
                )
            } else {
                format!(
                    "{} (chain v2) with {} and {} verified",
                    plural(checks, "list check", "list checks"),
                    plural(steps, "backward-pass proof", "backward-pass proofs"),
                    plural(key_proofs, "step key proof", "step key proofs")
                )
            }
        }
        Check::LinkSummary => match bodies().find_map(|b| match b {
            Body::LinkSummary(s) => Some(s.cohort_persons),
            _ => None,
        }) {
            Some(c) => format!(
                "cohort of {} consistent with the hop records",
                plural(c, "person", "persons")
            ),
            None => "no linkage recorded".into(),
        },
        Check::Delivery => {
            let items: u64 = bodies()
                .map(|b| match b {
                    Body::Delivery(d) => d
                        .lists
                        .iter()
                        .fold(0u64, |sum, l| sum.saturating_add(l.items)),
                    _ => 0,
                })
                .fold(0u64, u64::saturating_add);
            if n(|b| matches!(b, Body::Delivery(_))) == 0 {
                "no delivery recorded".into()
            } else {
                format!(
                    "{} delivered to the order's researcher, as matched",
                    plural(items, "item", "items")
                )
            }
        }
        Check::Closure => {
            if n(|b| matches!(b, Body::Closure(_))) > 0 {
                format!(
                    "closed; {} confirmed shredding",
                    plural(
                        n(|b| matches!(b, Body::Shredded(_))),
                        "confirmation",
                        "confirmations"
                    )
                )
            } else {
                "the project is open (not closed)".into()
            }
        }
        _ => String::new(),
    }
}

/// A list announcement, in either chain.
fn is_list(b: &Body) -> bool {
    matches!(b, Body::ListAnnounced(_) | Body::ListAnnouncedV2(_))
}
