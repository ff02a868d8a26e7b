//! The researcher's side of a delivery: verify the transcript, then every
//! delivered item against it, and open the items — one message at a time.
//!
//! ```text
//!  TranscriptFile ─▶ DeliveryReader::start: decode, verify (trailer, manifest),
//!                    the signed delivery record, each list's announcement and final root
//!  DeliveryHeader ─▶ the list is in the record, once; content key and columns as announced
//!  DeliveryItems  ─▶ per item: position ascends, count, selection digest (SelectionCheck);
//!                    the batch's proofs and lnr (verify_batch); per item: open ─▶ TableSink::person
//!  (end)          ─▶ DeliveryReader::finish: every list complete, its digest the signed one,
//!                    persons per list = the link summary's matched count
//! ```
//!
//! The reader holds the transcript and one message; the rows go to a
//! [`TableSink`] as they are opened (the files of `project fetch`, or a
//! [`Delivered`] in memory for tests). So a fetch's memory does not grow
//! with the delivery (issue 13).

use std::collections::BTreeMap;

use anyhow::{bail, ensure, Context};
use kobling_protocol::{
    delivery::{open_item, verify_batch, SelectionCheck},
    link::Lnr,
    manifest::Manifest,
    messages::Message,
    project::ProjectView,
    seal::{ContentKey, HpkeSecretKey},
    transcript::{self, Body, DeliveryRecord, ListAnnouncement, VerifiedTranscript},
    types::{Digest, ListName, ProjectId},
};

/// One register's delivered table.
#[cfg(any(test, feature = "testing"))]
#[derive(Debug, Clone, Default)]
pub(crate) struct Table {
    /// One row per extract row of a cohort member: lnr and the values.
    pub(crate) rows: Vec<(Lnr, Vec<String>)>,
}

/// What a fetch yields, held in memory (tests).
#[cfg(any(test, feature = "testing"))]
#[derive(Debug)]
pub(crate) struct Delivered {
    /// Per list.
    pub(crate) tables: BTreeMap<ListName, Table>,
    /// The verified transcript.
    pub(crate) verified: VerifiedTranscript,
    /// The transcript file as received.
    pub(crate) transcript: Vec<u8>,
}

/// Where opened rows go, as they are opened.
pub(crate) trait TableSink {
    /// A list's table starts, with the variables its signed announcement
    /// names.
    ///
    /// # Errors
    ///
    /// The sink's failure (a write error).
    fn list(&mut self, list: &ListName, columns: &[String]) -> anyhow::Result<()>;

    /// One delivered person of `list` (every item is one person, at a
    /// position above the previous one's): its rows.
    ///
    /// # Errors
    ///
    /// The sink's failure; a sink that keeps the persons refuses an lnr
    /// twice in one list.
    fn person(&mut self, list: &ListName, lnr: Lnr, rows: Vec<Vec<String>>) -> anyhow::Result<()>;
}

/// The list being read.
struct Current {
    list: ListName,
    key: ContentKey,
    sealed_root: Digest,
    final_root: Digest,
    persons: u64,
    /// Items the header announced and that have not come yet.
    remaining: u64,
    check: SelectionCheck,
}

/// A delivery being verified and opened, one reply at a time.
pub(crate) struct DeliveryReader<'k> {
    key: &'k HpkeSecretKey,
    project: ProjectId,
    verified: VerifiedTranscript,
    transcript: Vec<u8>,
    /// Each list's signed announcement and final root (`None`: the list
    /// did not pass every hop).
    lists: BTreeMap<ListName, (ListAnnouncement, Option<Digest>)>,
    /// Lists of the signed delivery record whose header has not come.
    checks: BTreeMap<ListName, SelectionCheck>,
    current: Option<Current>,
    /// Persons with at least one row, per list read.
    persons: BTreeMap<ListName, u64>,
    /// The items the record counts.
    items: u64,
}

/// What a complete, verified delivery leaves once its rows went to the
/// sink.
#[derive(Debug)]
pub(crate) struct Verified {
    /// The verified transcript.
    pub(crate) verified: VerifiedTranscript,
    /// The transcript file as received.
    pub(crate) transcript: Vec<u8>,
}

impl<'k> DeliveryReader<'k> {
    /// Starts from the linker's first reply: the transcript file, which
    /// must verify completely (trailer, manifest) and hold the signed
    /// delivery record.
    ///
    /// # Errors
    ///
    /// A refusal, a malformed or unverified transcript, or no delivery
    /// record.
    pub(crate) fn start(
        manifest: &Manifest,
        key: &'k HpkeSecretKey,
        first: Option<Message>,
    ) -> anyhow::Result<Self> {
        let bytes = match first {
            Some(Message::TranscriptFile { bytes }) => bytes.into_inner(),
            Some(Message::Refused { code, detail }) => {
                bail!("the linker refused the fetch ({code}): {detail}")
            }
            _ => bail!("the linker's reply does not start with the transcript"),
        };
        let (entries, trailer) =
            transcript::decode_file(&bytes).context("the delivered transcript is malformed")?;
        let verified = transcript::verify(&entries, Some(&trailer), manifest)
            .context("the delivered transcript does not verify")?;
        let view = ProjectView::new(manifest, &entries);
        let record: &DeliveryRecord = entries
            .iter()
            .find_map(|e| match &e.signed.statement.body {
                Body::Delivery(d) => Some(d),
                _ => None,
            })
            .context("the delivered transcript holds no signed delivery record")?;
        let items = record
            .lists
            .iter()
            .fold(0u64, |n, l| n.saturating_add(l.items));
        let checks = record
            .lists
            .iter()
            .map(|l| (l.list.clone(), SelectionCheck::new(l)))
            .collect();
        let lists = view
            .lists()
            .into_iter()
            .filter_map(|l| {
                let a = view.announcement(&l)?.clone();
                let root = view.final_root(&l);
                Some((l, (a, root)))
            })
            .collect();
        Ok(Self {
            key,
            project: verified.order.project.clone(),
            verified,
            transcript: bytes,
            lists,
            checks,
            current: None,
            persons: BTreeMap::new(),
            items,
        })
    }

    /// The items the signed delivery record counts, over every list.
    pub(crate) fn items(&self) -> u64 {
        self.items
    }

    /// Takes the linker's next reply: a list's header or its items.
    ///
    /// # Errors
    ///
    /// Anything that does not verify, or the sink's failure.
    pub(crate) fn handle(&mut self, msg: Message, sink: &mut impl TableSink) -> anyhow::Result<()> {
        match msg {
            Message::DeliveryHeader {
                project: p,
                list,
                columns,
                content_key,
                items,
            } => {
                ensure!(p == self.project, "a delivery part for another project");
                self.end_list()?;
                let check = self.checks.remove(&list).with_context(|| {
                    format!("list {list} is not in the signed delivery record, or repeated")
                })?;
                let (announcement, final_root) = self
                    .lists
                    .get(&list)
                    .with_context(|| format!("list {list} is not in the transcript"))?;
                ensure!(
                    announcement.content_key == content_key,
                    "list {list}: the content key differs from the announced one"
                );
                let final_root =
                    final_root.with_context(|| format!("list {list} did not pass every hop"))?;
                let key = content_key
                    .unwrap(self.key, &self.project, &list)
                    .with_context(|| {
                        format!(
                            "list {list}: the content key does not open with this researcher key"
                        )
                    })?;
                ensure!(
                    columns == announcement.columns,
                    "list {list}: the delivery's columns differ from the signed announcement"
                );
                let names: Vec<String> =
                    announcement.columns.iter().map(|c| c.to_string()).collect();
                sink.list(&list, &names)?;
                self.persons.insert(list.clone(), 0);
                self.current = Some(Current {
                    sealed_root: announcement.sealed_root,
                    persons: announcement.persons,
                    list,
                    key,
                    final_root,
                    remaining: items,
                    check,
                });
            }
            Message::DeliveryItems {
                project: p,
                list,
                items,
                proof,
            } => {
                ensure!(p == self.project, "a delivery part for another project");
                let Some(c) = &mut self.current else {
                    bail!("items before their list's header")
                };
                ensure!(
                    c.list == list,
                    "items of list {list} under the header of {}",
                    c.list
                );
                c.remaining = c
                    .remaining
                    .checked_sub(items.len() as u64)
                    .context("more items than announced")?;
                let persons = self.persons.entry(list.clone()).or_default();
                for item in items.iter() {
                    c.check.push(item.position, &item.lnr)?;
                }
                verify_batch(
                    &self.project,
                    &list,
                    &items,
                    &proof,
                    &c.sealed_root,
                    &c.final_root,
                    c.persons,
                )?;
                for item in items.iter() {
                    let rows = open_item(&self.project, &list, item, &c.key)?;
                    if !rows.is_empty() {
                        *persons += 1;
                    }
                    sink.person(&list, item.lnr, rows)?;
                }
            }
            other => bail!("unexpected message in the delivery: {}", other.kind()),
        }
        Ok(())
    }

    /// Closes the list being read: every announced item came, and the
    /// selection is the signed one.
    fn end_list(&mut self) -> anyhow::Result<()> {
        if let Some(c) = self.current.take() {
            ensure!(c.remaining == 0, "the delivery is incomplete");
            c.check.finish()?;
        }
        Ok(())
    }

    /// Ends the delivery: the last list is complete, every list of the
    /// record came, and each list delivers as many persons as the link
    /// summary says it matched (the sink refused any lnr twice in a list).
    ///
    /// # Errors
    ///
    /// Anything that does not add up.
    pub(crate) fn finish(mut self) -> anyhow::Result<Verified> {
        self.end_list()?;
        ensure!(
            self.checks.is_empty(),
            "the delivery lacks lists the signed delivery record names: {}",
            self.checks
                .keys()
                .map(|l| l.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        for l in &self.verified.lists {
            if let (Some(m), Some(n)) = (l.matched, self.persons.get(&l.list)) {
                ensure!(
                    *n == m,
                    "list {}: {n} persons delivered, the link summary says {m}",
                    l.list
                );
            }
        }
        Ok(Verified {
            verified: self.verified,
            transcript: self.transcript,
        })
    }
}

/// Verifies and opens the linker's replies to a fetch, in memory (tests;
/// `project fetch` streams them to files).
#[cfg(any(test, feature = "testing"))]
///
/// Besides every item's proofs, each list's items are checked against the
/// linker's signed delivery record in the transcript: positions ascend (no
/// item twice), and the count and selection digest are the signed ones
/// (issue 12 item 9). Column names come from the signed announcement, not
/// from the linker's header (item 2).
pub(crate) fn open_delivery(
    manifest: &Manifest,
    key: &HpkeSecretKey,
    replies: Vec<Message>,
) -> anyhow::Result<Delivered> {
    let mut replies = replies.into_iter();
    let mut reader = DeliveryReader::start(manifest, key, replies.next())?;
    let mut tables = InMemory::default();
    for msg in replies {
        reader.handle(msg, &mut tables)?;
    }
    let done = reader.finish()?;
    Ok(Delivered {
        tables: tables.tables,
        verified: done.verified,
        transcript: done.transcript,
    })
}

/// The tables in memory.
#[cfg(any(test, feature = "testing"))]
#[derive(Default)]
struct InMemory {
    tables: BTreeMap<ListName, Table>,
    seen: BTreeMap<ListName, std::collections::BTreeSet<Lnr>>,
}

#[cfg(any(test, feature = "testing"))]
impl TableSink for InMemory {
    fn list(&mut self, list: &ListName, _columns: &[String]) -> anyhow::Result<()> {
        self.tables.insert(list.clone(), Table::default());
        Ok(())
    }

    fn person(&mut self, list: &ListName, lnr: Lnr, rows: Vec<Vec<String>>) -> anyhow::Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        ensure!(
            self.seen.entry(list.clone()).or_default().insert(lnr),
            "list {list} delivers one person twice"
        );
        let table = self.tables.get_mut(list).context("table")?;
        table.rows.extend(rows.into_iter().map(|r| (lnr, r)));
        Ok(())
    }
}
