//! The researcher's side of a delivery: verify the transcript, then every
//! delivered item against it, and open the items.

use std::collections::BTreeMap;

use anyhow::{bail, ensure, Context};
use kobling_protocol::{
    delivery::{open_item, SelectionCheck},
    link::Lnr,
    manifest::Manifest,
    messages::Message,
    project::ProjectView,
    seal::HpkeSecretKey,
    transcript::{self, Body, DeliveryRecord, VerifiedTranscript},
    types::Name,
};

/// One register's delivered table.
#[derive(Debug, Clone, Default)]
pub(crate) struct Table {
    /// The variables, as the register's signed announcement names them
    /// (which the transcript check ties to the order's variables).
    pub(crate) columns: Vec<String>,
    /// One row per extract row of a cohort member: lnr and the values.
    pub(crate) rows: Vec<(Lnr, Vec<String>)>,
}

/// What a fetch yields.
#[derive(Debug)]
pub(crate) struct Delivered {
    /// Per register.
    pub(crate) tables: BTreeMap<Name, Table>,
    /// The verified transcript.
    pub(crate) verified: VerifiedTranscript,
    /// The transcript file as received.
    pub(crate) transcript: Vec<u8>,
}

/// Verifies and opens the linker's replies to a fetch.
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
    let bytes = match replies.next() {
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
    let project = verified.order.project.clone();
    let record: &DeliveryRecord = entries
        .iter()
        .find_map(|e| match &e.signed.statement.body {
            Body::Delivery(d) => Some(d),
            _ => None,
        })
        .context("the delivered transcript holds no signed delivery record")?;
    let mut checks: BTreeMap<Name, SelectionCheck> = record
        .lists
        .iter()
        .map(|l| (l.list.clone(), SelectionCheck::new(l)))
        .collect();
    let mut finished: BTreeMap<Name, SelectionCheck> = BTreeMap::new();
    let mut tables: BTreeMap<Name, Table> = BTreeMap::new();
    let mut expected: BTreeMap<Name, u64> = BTreeMap::new();
    // On a terminal only (indicatif draws nothing elsewhere).
    let progress = indicatif::ProgressBar::new(0);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "verifying and opening [{bar:30}] {pos}/{len} persons  {msg}",
    ) {
        progress.set_style(style.progress_chars("=> "));
    }
    let mut current: Option<(
        Name,
        kobling_protocol::seal::ContentKey,
        kobling_protocol::types::Digest,
        kobling_protocol::types::Digest,
        u64,
    )> = None;
    for msg in replies {
        match msg {
            Message::DeliveryHeader {
                project: p,
                list,
                columns,
                content_key,
                items,
            } => {
                ensure!(p == project, "a delivery part for another project");
                if let Some((done, _, _, _, _)) = current.take() {
                    let check = finished.remove(&done).context("check")?;
                    check.finish()?;
                }
                let check = checks.remove(&list).with_context(|| {
                    format!("list {list} is not in the signed delivery record, or repeated")
                })?;
                finished.insert(list.clone(), check);
                let announcement = view
                    .announcement(&list)
                    .with_context(|| format!("list {list} is not in the transcript"))?;
                ensure!(
                    announcement.content_key == content_key,
                    "list {list}: the content key differs from the announced one"
                );
                let final_root = view
                    .final_root(&list)
                    .with_context(|| format!("list {list} did not pass every hop"))?;
                let key = content_key.unwrap(key, &project, &list).with_context(|| {
                    format!("list {list}: the content key does not open with this researcher key")
                })?;
                ensure!(
                    columns == announcement.columns,
                    "list {list}: the delivery's columns differ from the signed announcement"
                );
                tables.insert(
                    list.clone(),
                    Table {
                        columns: announcement.columns.iter().map(|c| c.to_string()).collect(),
                        rows: Vec::new(),
                    },
                );
                expected.insert(list.clone(), items);
                progress.inc_length(items);
                progress.set_message(list.to_string());
                current = Some((
                    list,
                    key,
                    announcement.sealed_root,
                    final_root,
                    announcement.persons,
                ));
            }
            Message::DeliveryItems {
                project: p,
                list,
                items,
            } => {
                ensure!(p == project, "a delivery part for another project");
                let Some((l, key, sealed_root, final_root, persons)) = &current else {
                    bail!("items before their list's header")
                };
                ensure!(*l == list, "items of list {list} under the header of {l}");
                let table = tables.get_mut(&list).context("table")?;
                let check = finished.get_mut(&list).context("check")?;
                for item in items.iter() {
                    check.push(item.position, &item.lnr)?;
                    for row in open_item(
                        &project,
                        &list,
                        item,
                        sealed_root,
                        final_root,
                        *persons,
                        key,
                    )? {
                        table.rows.push((item.lnr, row));
                    }
                }
                progress.inc(items.len() as u64);
                let counter = expected.get_mut(&list).context("count")?;
                *counter = counter
                    .checked_sub(items.len() as u64)
                    .context("more items than announced")?;
            }
            other => bail!("unexpected message in the delivery: {other:?}"),
        }
    }
    progress.finish_and_clear();
    ensure!(
        expected.values().all(|n| *n == 0),
        "the delivery is incomplete"
    );
    if let Some((done, _, _, _, _)) = current.take() {
        finished.remove(&done).context("check")?.finish()?;
    }
    ensure!(
        checks.is_empty(),
        "the delivery lacks lists the signed delivery record names: {}",
        checks
            .keys()
            .map(|l| l.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    for l in &verified.lists {
        if let (Some(m), Some(t)) = (l.matched, tables.get(&l.list)) {
            let persons: std::collections::BTreeSet<&Lnr> =
                t.rows.iter().map(|(lnr, _)| lnr).collect();
            ensure!(
                persons.len() as u64 == m,
                "list {}: {} persons delivered, the link summary says {m}",
                l.list,
                persons.len()
            );
        }
    }
    Ok(Delivered {
        tables,
        verified,
        transcript: bytes,
    })
}
