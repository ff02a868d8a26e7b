//! The researcher's side of a delivery: verify the transcript, then every
//! delivered item against it, and open the items.

use std::collections::BTreeMap;

use anyhow::{bail, ensure, Context};
use kobling_protocol::{
    delivery::open_item,
    link::Lnr,
    manifest::Manifest,
    messages::Message,
    project::ProjectView,
    seal::HpkeSecretKey,
    transcript::{self, VerifiedTranscript},
    types::Name,
};

/// One register's delivered table.
#[derive(Debug, Clone, Default)]
pub(crate) struct Table {
    /// The variables, in extract order.
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
                tables.insert(
                    list.clone(),
                    Table {
                        columns: columns.iter().map(|c| c.to_string()).collect(),
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
                for item in items.iter() {
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
