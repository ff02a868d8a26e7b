//! Words for an auditor: times, numbers, signers and what each entry says
//! happened. Keys and digests appear as 16-hex-digit prefixes only.

use std::collections::BTreeMap;

use kobling_protocol::{
    manifest::Manifest,
    transcript::{Body, Entry, InvalidCount, ListAnnouncement, ProjectOrder, Signer},
    types::{Attempt, Name},
};
use serde::Serialize;

/// The first 8 bytes of a key, digest, point or signature, in hex: enough
/// to tell two apart, never a whole key.
pub(crate) fn short(bytes: &[u8]) -> String {
    bytes.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Seconds since the Unix epoch as UTC ISO-8601, `2023-11-14T22:13:20Z`.
pub(crate) fn utc(secs: u64) -> String {
    kobling_protocol::types::UnixTime(secs).iso8601()
}

/// A count with thousands separators: `4,210`.
pub(crate) fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `n thing` / `n things`.
pub(crate) fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", count(n), if n == 1 { one } else { many })
}

/// Who signed an entry, in words: the node's name, the operator's name from
/// the manifest, or "researcher".
pub(crate) fn signer(s: &Signer, manifest: Option<&Manifest>) -> String {
    match s {
        Signer::Node(n) => n.to_string(),
        Signer::Operator { register, key } => {
            let name = manifest
                .and_then(|m| m.member(register))
                .and_then(|m| m.operators.iter().find(|o| &o.key == key))
                .map(|o| o.name.clone());
            match name {
                Some(name) => format!("{name} (operator of {register})"),
                None => format!("operator {} of {register}", short(&key.0)),
            }
        }
        Signer::Researcher(_) => "researcher".into(),
    }
}

/// One line of the timeline.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Event {
    /// The entry's sequence number.
    pub(crate) entry: u64,
    /// The author's time, UTC ISO-8601.
    pub(crate) time: String,
    /// Who signed.
    pub(crate) signer: String,
    /// The kind of statement.
    pub(crate) kind: &'static str,
    /// What happened.
    pub(crate) event: String,
}

/// The timeline of `entries`: who did what, when.
pub(crate) fn timeline(entries: &[Entry], manifest: Option<&Manifest>) -> Vec<Event> {
    let order = order_of(entries);
    entries
        .iter()
        .map(|e| {
            let st = &e.signed.statement;
            Event {
                entry: e.seq,
                time: utc(st.time.0),
                signer: signer(&st.signer, manifest),
                kind: st.body.kind(),
                event: event(&st.body, order),
            }
        })
        .collect()
}

/// The project order, if the first entry is one.
pub(crate) fn order_of(entries: &[Entry]) -> Option<&ProjectOrder> {
    match &entries.first()?.signed.statement.body {
        Body::Order(o) => Some(o),
        _ => None,
    }
}

/// A list announcement's counts (chain v1 or v2), without the closing
/// parenthesis: `3 persons, 1 invalid identifier (5 rows read, 2
/// variables, chunks of 64`.
fn announced_counts(
    persons: u64,
    invalid: &[InvalidCount],
    rows: u64,
    variables: usize,
    chunk_size: u32,
) -> String {
    let invalid = invalid
        .iter()
        .fold(0u64, |sum, i| sum.saturating_add(i.count));
    format!(
        "{}, {} ({} read, {}, chunks of {}",
        plural(persons, "person", "persons"),
        plural(invalid, "invalid identifier", "invalid identifiers"),
        plural(rows, "row", "rows"),
        plural(variables as u64, "variable", "variables"),
        count(u64::from(chunk_size))
    )
}

/// "; 7 left out by reservation" for an identified project's list.
fn reserved(excluded: Option<kobling_protocol::reservation::ShownCount>) -> String {
    excluded
        .map(|c| format!("; {}", crate::identified::excluded(c)))
        .unwrap_or_default()
}

/// What a statement says happened, as the rest of a sentence whose subject
/// is its signer.
fn event(body: &Body, order: Option<&ProjectOrder>) -> String {
    match body {
        Body::Order(o) => {
            format!(
                "ordered project {} \"{}\" ({}): registers {}; cohort {}; linker {}; expires {}{}",
                o.project,
                o.title.as_str(),
                o.legal_basis.as_str(),
                o.register_names()
                    .iter()
                    .map(Name::as_str)
                    .collect::<Vec<_>>()
                    .join(", "),
                o.cohort.as_str(),
                o.linker,
                utc(o.expires.0),
                if o.test_mode { "; test mode" } else { "" }
            ) + &crate::identified::order_line(o, false)
                .map(|l| format!("; {l}"))
                .unwrap_or_default()
        }
        Body::Approval(a) => format!(
            "approved {}'s run order: extract {}, {}, {}",
            a.register,
            short(a.extract.as_bytes()),
            plural(a.rows, "row", "rows"),
            plural(a.columns.len() as u64, "column", "columns")
        ),
        Body::Commitment(c) => format!(
            "committed to its key share for {} (K {})",
            c.domain,
            short(c.key.as_bytes())
        ),
        Body::ListAnnounced(a) => {
            format!(
                "announced list: {})",
                announced_counts(a.persons, &a.invalid, a.rows, a.columns.len(), a.chunk_size)
            ) + &reserved(a.excluded)
        }
        Body::Hop(h) => {
            let of = order.map_or(String::new(), |o| format!(" of {}", o.registers.len()));
            let role = if h.linker.is_some() {
                ", the linker's final step"
            } else {
                ""
            };
            format!(
                "stepped list {} (hop {}{of}{role}): {} in {}",
                h.list,
                h.hop,
                plural(h.count, "point", "points"),
                plural(h.chunks.len() as u64, "chunk", "chunks")
            )
        }
        Body::LinkSummary(s) => format!(
            "linked cohort {}: {} ({})",
            s.cohort.as_str(),
            plural(s.cohort_persons, "person", "persons"),
            s.lists
                .iter()
                .map(|l| format!("{} {} of {}", l.list, count(l.matched), count(l.persons)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Body::Delivery(d) => format!(
            "delivered {} to researcher {} ({})",
            plural(
                d.lists
                    .iter()
                    .fold(0u64, |sum, l| sum.saturating_add(l.items)),
                "item",
                "items",
            ),
            short(&d.recipient.0),
            d.lists
                .iter()
                .map(|l| format!("{} {}", l.list, count(l.items)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Body::Closure(c) => format!("closed the project: {}", c.reason.as_str()),
        Body::Shredded(s) => format!("shredded its key share for {}", s.domain),
        Body::ListAnnouncedV2(a) => {
            format!(
                "announced list (chain v2): {}{})",
                announced_counts(a.persons, &a.invalid, a.rows, a.columns.len(), a.chunk_size),
                if a.blinding.len() == 2 {
                    ", split blinding"
                } else {
                    ""
                }
            ) + &reserved(a.excluded)
        }
        Body::OwnerListV2(o) => format!(
            "signed its list's output{}: {}, list digest {}",
            attempt(o.attempt),
            plural(o.chunks.len() as u64, "chunk digest", "chunk digests"),
            short(o.list_digest.as_bytes())
        ),
        Body::HopV2(h) => {
            let of = order.map_or(String::new(), |o| format!(" of {}", o.registers.len()));
            let role = if h.final_root.is_some() {
                ", the linker's final step"
            } else {
                ""
            };
            format!(
                "stepped list {} (hop {}{of}{role}){}: {} in {}",
                h.list,
                h.hop,
                attempt(h.attempt),
                plural(h.count, "point", "points"),
                plural(h.chunks.len() as u64, "chunk", "chunks")
            )
        }
        Body::ListCheck(c) => format!(
            "checked list {} end to end{}: {} (seed {}, backward pass of {})",
            c.list,
            attempt(c.attempt),
            if c.passed { "passed" } else { "FAILED" },
            short(c.sigma.as_bytes()),
            plural(c.proofs.len() as u64, "proven step", "proven steps")
        ),
        Body::ChainStopped(s) => format!(
            "stopped the chain on list {}{} at chunk {}: {}",
            s.list,
            attempt(s.attempt),
            s.chunk,
            match &s.named {
                Some((hop, member)) => format!("hop {hop} ({member}) deviated"),
                None => "the check failed; nobody is named".into(),
            }
        ),
        Body::ListRetry(r) => format!(
            "sent list {} again in strict mode{}: its check failed",
            r.list,
            attempt(r.attempt)
        ),
        other => format!("recorded a {} statement", other.kind()),
    }
}

/// `""` for a list's first attempt, `" (attempt N, strict)"` after.
fn attempt(a: Attempt) -> String {
    if a == Attempt::FIRST {
        String::new()
    } else {
        format!(" (attempt {a}, strict)")
    }
}

/// The counts of one list, as the transcript states them.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct ListCounts {
    /// The list.
    pub(crate) list: String,
    /// Extract rows.
    pub(crate) rows: u64,
    /// Rows with an invalid identifier.
    pub(crate) invalid: u64,
    /// Persons in the list.
    pub(crate) persons: u64,
    /// Hop records.
    pub(crate) hops: u32,
    /// The attempt the hops are counted for (chain v2; 0 otherwise).
    #[serde(skip)]
    pub(crate) attempt: Attempt,
    /// Hops a complete list has (the participating registers' count), if
    /// the order is known.
    pub(crate) hops_expected: Option<u32>,
    /// Persons matched by the linkage.
    pub(crate) matched: Option<u64>,
    /// Items delivered.
    pub(crate) delivered: Option<u64>,
}

/// A list's counts as its announcement (either chain's, in v1's shape)
/// gives them.
fn announced(a: &ListAnnouncement, hops_expected: Option<u32>) -> ListCounts {
    ListCounts {
        list: a.list.to_string(),
        rows: a.rows,
        invalid: a
            .invalid
            .iter()
            .fold(0u64, |sum, i| sum.saturating_add(i.count)),
        persons: a.persons,
        hops_expected,
        ..ListCounts::default()
    }
}

/// Per announced list, in order of announcement.
pub(crate) fn list_counts(entries: &[Entry]) -> Vec<ListCounts> {
    let expected = order_of(entries).map(|o| o.registers.len() as u32);
    let mut lists: Vec<ListCounts> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    for e in entries {
        match &e.signed.statement.body {
            Body::ListAnnounced(a) => {
                index.insert(a.list.to_string(), lists.len());
                lists.push(announced(a, expected));
            }
            Body::ListAnnouncedV2(a) => {
                index.insert(a.list.to_string(), lists.len());
                lists.push(announced(&a.v1_shape(), expected));
            }
            Body::Hop(h) => {
                if let Some(&i) = index.get(h.list.as_str()) {
                    lists[i].hops = lists[i].hops.saturating_add(1);
                }
            }
            // A strict attempt steps the list again: count its hops only.
            Body::HopV2(h) => {
                if let Some(&i) = index.get(h.list.as_str()) {
                    if h.attempt > lists[i].attempt {
                        lists[i].attempt = h.attempt;
                        lists[i].hops = 0;
                    }
                    lists[i].hops = lists[i].hops.saturating_add(1);
                }
            }
            Body::LinkSummary(s) => {
                for l in s.lists.iter() {
                    if let Some(&i) = index.get(l.list.as_str()) {
                        lists[i].matched = Some(l.matched);
                    }
                }
            }
            Body::Delivery(d) => {
                for l in d.lists.iter() {
                    if let Some(&i) = index.get(l.list.as_str()) {
                        let d = lists[i].delivered.get_or_insert(0);
                        *d = d.saturating_add(l.items);
                    }
                }
            }
            _ => {}
        }
    }
    lists
}

/// The counts as a table.
pub(crate) fn counts_table(lists: &[ListCounts]) -> String {
    let opt = |v: Option<u64>| v.map_or("-".to_string(), count);
    let mut rows = vec![[
        "list".to_string(),
        "rows".into(),
        "invalid".into(),
        "persons".into(),
        "hops".into(),
        "matched".into(),
        "delivered".into(),
    ]];
    for l in lists {
        rows.push([
            l.list.clone(),
            count(l.rows),
            count(l.invalid),
            count(l.persons),
            match l.hops_expected {
                Some(n) => format!("{}/{n}", l.hops),
                None => l.hops.to_string(),
            },
            opt(l.matched),
            opt(l.delivered),
        ]);
    }
    let widths: Vec<usize> = (0..7)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in &rows {
        out.push(' ');
        for (c, cell) in r.iter().enumerate() {
            let pad = widths[c] - cell.chars().count();
            out.push_str("  ");
            if c == 0 {
                out.push_str(cell);
                out.push_str(&" ".repeat(pad));
            } else {
                out.push_str(&" ".repeat(pad));
                out.push_str(cell);
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_matches_known_dates() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc(4_107_542_399), "2100-02-28T23:59:59Z");
        assert_eq!(utc(1_709_251_199), "2024-02-29T23:59:59Z");
    }

    #[test]
    fn counts_have_thousands_separators() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(4_210), "4,210");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(plural(1, "person", "persons"), "1 person");
        assert_eq!(plural(12, "person", "persons"), "12 persons");
    }

    #[test]
    fn short_is_a_prefix() {
        assert_eq!(short(&[0xab; 32]), "abababababababab");
        assert_eq!(short(&[1, 2]), "0102");
    }
}
