//! `kobling project status`: the transcript a node returns, printed as
//! the project's phase and each register's progress (`--watch` repeats).

use std::{collections::BTreeMap, time::Duration};

use anyhow::{bail, Context};
use kobling_protocol::{
    manifest::Manifest,
    messages::{Action, Message},
    notice::{Notified, PhaseNotice},
    project::{Phase, ProjectView},
    transcript::{self, Body, Entry},
    types::{HopIndex, ListName, Name, ProjectId},
};

use super::{ask, request};
use crate::{console::say, keyfile::KeyFile};

/// The project's transcript as `node` answers `key` (the whole transcript
/// for the researcher; a register operator gets the register prefix), and
/// the linker's phase notice, if any (checked against the linker's key):
/// its phase and, if a list ended the project, that list.
pub(crate) async fn status_entries(
    manifest: &Manifest,
    key: &KeyFile,
    project: &ProjectId,
    node: &Name,
) -> anyhow::Result<(Vec<Entry>, Option<PhaseNotice>)> {
    status_answer(manifest, key, project, node)
        .await
        .map(|(entries, notice, _)| (entries, notice))
}

/// As [`status_entries`], with the notice's phase only, and the signed
/// transcript file as received when the node answered with one (the
/// linker, to the order's key).
pub(crate) async fn status_reply(
    manifest: &Manifest,
    key: &KeyFile,
    project: &ProjectId,
    node: &Name,
) -> anyhow::Result<(Vec<Entry>, Option<Notified>, Option<Vec<u8>>)> {
    status_answer(manifest, key, project, node)
        .await
        .map(|(entries, notice, file)| (entries, notice.map(|n| n.phase), file))
}

/// The node's answer: the entries, the checked phase notice, and the
/// transcript file if it sent one.
async fn status_answer(
    manifest: &Manifest,
    key: &KeyFile,
    project: &ProjectId,
    node: &Name,
) -> anyhow::Result<(Vec<Entry>, Option<PhaseNotice>, Option<Vec<u8>>)> {
    let request = request(manifest, node, project, Action::Status)?.sign(&key.signing);
    let linker_key = manifest.linker().context("no linker")?.signing_key;
    let mut replies = ask(manifest, node, Message::Status(request))
        .await?
        .into_iter();
    match replies.next() {
        Some(Message::TranscriptFile { bytes }) => {
            let (entries, trailer) = transcript::decode_file(&bytes)?;
            trailer
                .check(&entries, &linker_key)
                .map_err(|()| anyhow::anyhow!("the transcript's trailer does not verify"))?;
            transcript::verify(&entries, None, manifest)?;
            Ok((entries, None, Some(bytes.to_vec())))
        }
        Some(Message::Entries { entries, .. }) => {
            let entries = entries.into_inner();
            transcript::verify(&entries, None, manifest)?;
            let notice = match replies.next() {
                Some(Message::Notice(n)) => {
                    n.check(project, &linker_key)
                        .context("the phase notice does not verify")?;
                    Some(n.notice)
                }
                _ => None,
            };
            Ok((entries, notice, None))
        }
        Some(Message::Refused { code, detail }) => bail!("refused ({code}): {detail}"),
        other => bail!(
            "unexpected reply: {}",
            other.map_or("nothing", |m| m.kind())
        ),
    }
}

pub(super) fn print_status(
    manifest: &Manifest,
    entries: &[Entry],
    notice: Option<&PhaseNotice>,
) -> anyhow::Result<()> {
    let view = ProjectView::new(manifest, entries).with_notice(notice.map(|n| n.phase));
    let Some(order) = view.order() else {
        say!("no project order yet");
        return Ok(());
    };
    say!(
        "project {} — {} entries in the transcript",
        order.project,
        entries.len()
    );
    if let Some(line) = crate::identified::order_line(order, false) {
        say!("  {line}");
    }
    for list in order.lists() {
        let approvals = view
            .approved_extract(list.owner())
            .map_or("awaiting two approvals", |_| "approved");
        let hops = view.hops_of(&list);
        let done = view.hops_done(&list);
        match view.announcement(&list) {
            Some(a) => say!(
                "  {list:<8} {approvals}; {} persons ({} rows, {} invalid identifiers{}); hops {done}/{} done",
                a.persons,
                a.rows,
                a.invalid
                    .iter()
                    .fold(0u64, |sum, i| sum.saturating_add(i.count)),
                a.excluded
                    .map(|c| format!(", {}", crate::identified::excluded(c)))
                    .unwrap_or_default(),
                hops.len()
            ),
            None => say!("  {list:<8} {approvals}; list not announced yet"),
        }
    }
    // Only in the whole transcript (the researcher's): registers' operators
    // never get the link summary, the delivery or the shreddings.
    for e in entries {
        match &e.signed.statement.body {
            Body::LinkSummary(s) => {
                say!(
                    "  linked: cohort {} of {} persons",
                    s.cohort.as_str(),
                    s.cohort_persons
                );
                for l in s.lists.iter() {
                    say!(
                        "    {}: {} matched of {} persons",
                        l.list,
                        l.matched,
                        l.persons
                    );
                }
            }
            Body::Delivery(d) => say!(
                "  delivered: {} items",
                d.lists
                    .iter()
                    .fold(0u64, |sum, l| sum.saturating_add(l.items))
            ),
            // Chain v2: each list's check, and why a project was stopped
            // (a failed check names its list).
            Body::ListCheck(c) => say!(
                "  list check of {} (attempt {}): {}",
                c.list,
                c.attempt,
                if c.passed { "passed" } else { "FAILED" }
            ),
            Body::Closure(c) => say!("  closed: {}", c.reason.as_str()),
            // In a register's copy too (the closure is not): who stopped
            // a list's chain.
            Body::ChainStopped(c) => match &c.named {
                Some((hop, member)) if *hop == HopIndex::OWNER => say!(
                    "  list {} stopped (attempt {}): its owner {member} failed at chunk {}",
                    c.list,
                    c.attempt,
                    c.chunk
                ),
                Some((hop, member)) => say!(
                    "  list {} stopped (attempt {}): hop {hop} ({member}) failed at chunk {}",
                    c.list,
                    c.attempt,
                    c.chunk
                ),
                None => say!(
                    "  list {} stopped by the linker (attempt {}): it could not be verified",
                    c.list,
                    c.attempt
                ),
            },
            // In a register's copy too: a list sent again after a failed
            // check (the check itself is not in a register's copy).
            Body::ListRetry(r) => say!(
                "  list {} failed its check and was sent again in strict mode (attempt {})",
                r.list,
                r.attempt
            ),
            _ => {}
        }
    }
    let members = order.register_names();
    let shredded: Vec<&str> = members
        .iter()
        .chain(manifest.linker().map(|l| &l.name))
        .filter(|m| view.shredded(m))
        .map(|m| m.as_str())
        .collect();
    if !shredded.is_empty() {
        say!("  shredded: {}", shredded.join(", "));
    }
    // At a register (which holds neither the list checks nor the
    // closure): the linker's notice names the list that ended the
    // project, if one did.
    if let Some(line) = stopped_line(notice) {
        say!("{line}");
    }
    say!("  phase: {}", view.phase().as_str());
    Ok(())
}

/// The line naming the list that ended the project, from the linker's
/// notice (a list name, never a value).
fn stopped_line(notice: Option<&PhaseNotice>) -> Option<String> {
    let list = notice?.failed_list.as_ref()?;
    Some(format!(
        "  stopped: list {list} failed its check or could not be verified"
    ))
}

/// Progress bars, one per list (hops done of its chain), until the project
/// is linked or closed.
pub(super) async fn watch_status(
    manifest: &Manifest,
    key: &KeyFile,
    project: &ProjectId,
    node: &Name,
) -> anyhow::Result<()> {
    use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
    let bars = MultiProgress::new();
    let style = ProgressStyle::with_template("{prefix:<8} [{bar:30}] {pos}/{len} hops  {msg}")?
        .progress_chars("=> ");
    let mut by_list: BTreeMap<ListName, ProgressBar> = BTreeMap::new();
    loop {
        let (entries, notice) = status_entries(manifest, key, project, node).await?;
        let view = ProjectView::new(manifest, &entries).with_notice(notice.map(|n| n.phase));
        if let Some(order) = view.order() {
            for list in order.lists() {
                let hops = view.hops_of(&list).len() as u64;
                let bar = by_list.entry(list.clone()).or_insert_with(|| {
                    let b = bars.add(ProgressBar::new(hops));
                    b.set_style(style.clone());
                    b.set_prefix(list.to_string());
                    b
                });
                let done = view.hops_done(&list) as u64;
                bar.set_position(done);
                bar.set_message(
                    match (
                        view.approved_extract(list.owner()),
                        view.announcement(&list),
                    ) {
                        (None, _) => "awaiting two approvals".to_string(),
                        (Some(_), None) => "approved; preparing the list".to_string(),
                        (Some(_), Some(a)) => format!("{} persons", a.persons),
                    },
                );
            }
        }
        if view.phase() >= Phase::Linked {
            for b in by_list.values() {
                b.finish();
            }
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use kobling_protocol::notice::Notified;

    use super::*;

    #[test]
    fn a_register_operator_reads_which_list_stopped_the_project() {
        let notice = |failed_list: Option<&str>| PhaseNotice {
            project: ProjectId::new("P-1").expect("valid"),
            phase: Notified::Closed,
            failed_list: failed_list.map(|l| ListName::new(l).expect("valid")),
        };
        assert_eq!(
            stopped_line(Some(&notice(Some("KPR")))).as_deref(),
            Some("  stopped: list KPR failed its check or could not be verified")
        );
        assert_eq!(stopped_line(Some(&notice(None))), None);
        assert_eq!(stopped_line(None), None);
    }
}
