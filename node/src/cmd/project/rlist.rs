//! `kobling project send-list` and `check-list`: the researcher's own
//! list in an identified project (docs/identified.md "Sending your list";
//! docs/protocol.md §18).
//!
//! ```text
//!  send-list:  order from the linker ─▶ FILE checked against it (count, SHA3-256) ─▶ prepared
//!              ─▶ kept output in --state DIR (0600) ─▶ every part to the linker
//!              ─▶ (unless --no-wait) check-list
//!  check-list: kept output ─▶ transcript from the linker until every hop of RESEARCHER
//!              is recorded ─▶ σ ─▶ A_0 signed ─▶ linker ─▶ kept output deleted
//! ```

use std::{path::Path, time::Duration};

use anyhow::{bail, ensure, Context};
use kobling_protocol::{
    manifest::Manifest,
    messages::Message,
    project::ProjectView,
    refusal::RefusalCode,
    researcher_list::{self as rlist, wire::ResearcherListPart, KeptOutput},
    transcript::ProjectOrder,
    types::ProjectId,
};

use super::{ask, expect_ack, linker, status::status_entries};
use crate::{console::say, daemon::unix_now, keyfile::KeyFile, researcher_state};

/// How often the linker is asked again.
const POLL: Duration = Duration::from_secs(2);

/// The order of `project` as the linker recorded it; it must be identified
/// and this key its researcher's.
async fn identified_order(
    manifest: &Manifest,
    key: &KeyFile,
    project: &ProjectId,
) -> anyhow::Result<ProjectOrder> {
    let linker = linker(manifest)?;
    let (entries, _) = status_entries(manifest, key, project, &linker).await?;
    let view = ProjectView::new(manifest, &entries);
    let order = view
        .order()
        .with_context(|| format!("the linker holds no order of project {project}"))?;
    ensure!(
        order.is_identified(),
        "project {project} is not identified: it takes no researcher list"
    );
    ensure!(
        order.researcher_signing_key == key.public(),
        "your key is not the researcher key of project {project}'s order"
    );
    Ok(order.clone())
}

/// `send-list`: checks FILE against the order before anything is sent,
/// keeps the output in `state`, sends every part; then, unless `no_wait`,
/// waits for σ and signs `A_0` ([`check_list`]).
pub(super) async fn send_list(
    manifest: &Manifest,
    key: &KeyFile,
    project: &ProjectId,
    file: &Path,
    state: &Path,
    chunk_size: u32,
    wait: Option<Duration>,
) -> anyhow::Result<()> {
    let order = identified_order(manifest, key, project).await?;
    let list = crate::researcher_list::read_list(file, &order).with_context(|| {
        format!(
            "{} is not the researcher list project {project}'s order binds; nothing was sent",
            file.display()
        )
    })?;
    ensure!(
        !researcher_state::kept_path(state, project).exists(),
        "{} exists: the list of project {project} was sent already (run `kobling project check-list`)",
        researcher_state::kept_path(state, project).display()
    );
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::fill(seed.as_mut()).map_err(|e| anyhow::anyhow!("no OS randomness: {e}"))?;
    let mut rng = kobling_protocol::rng::ErasingRng::from_seed(seed);
    let prepared = crate::researcher_list::prepare_list(
        manifest,
        &order,
        &list,
        chunk_size,
        &key.signing,
        unix_now(),
        &mut rng,
    )?;
    let path = researcher_state::store_kept(state, &prepared.kept)?;
    let messages = crate::researcher_list::messages(&order, &prepared);
    let linker = linker(manifest)?;
    let total = messages.len();
    for (i, msg) in messages.into_iter().enumerate() {
        // The announcement waits until every register committed its key.
        loop {
            let replies = ask(manifest, &linker, msg.clone()).await?;
            let not_ready = replies
                .first()
                .is_some_and(|m| m.refusal_code() == Some(RefusalCode::NotReady));
            if !not_ready {
                expect_ack(replies).with_context(|| {
                    format!("the linker refused part {} of {total} of the list", i + 1)
                })?;
                break;
            }
            if i == 0 {
                say!("waiting for every register to approve and commit before the list is announced …");
            }
            tokio::time::sleep(POLL).await;
        }
    }
    say!(
        "researcher list of project {project} sent: {} persons in {} chunks; its output is kept in {} until you sign the list check",
        list.persons(),
        prepared.chunks.len(),
        path.display()
    );
    match wait {
        Some(wait) => check_list(manifest, key, project, state, wait).await,
        None => {
            say!("run `kobling project check-list --project {project} --state {}` once the chain has stepped it", state.display());
            Ok(())
        }
    }
}

/// `check-list`: once every hop of the researcher list is recorded, σ
/// from the records, `A_0` over the kept output signed and sent; the kept
/// output deleted after the linker took it. Waits at most `wait`.
pub(super) async fn check_list(
    manifest: &Manifest,
    key: &KeyFile,
    project: &ProjectId,
    state: &Path,
    wait: Duration,
) -> anyhow::Result<()> {
    let kept: KeptOutput = researcher_state::load_kept(state, project)?;
    let linker = linker(manifest)?;
    let deadline = tokio::time::Instant::now() + wait;
    let mut shown = usize::MAX;
    let pass = loop {
        let (entries, _) = status_entries(manifest, key, project, &linker).await?;
        let view = ProjectView::new(manifest, &entries);
        let list = rlist::list_name()?;
        let (done, hops) = (view.hops_done(&list), view.hops_of(&list).len());
        if done != shown {
            say!("researcher list: {done} of {hops} hops recorded");
            shown = done;
        }
        if let Some(pass) = rlist::pass(&view, &kept, &key.signing)? {
            break pass;
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "the researcher list's hops are not all recorded after {} s; run check-list again later",
                wait.as_secs()
            );
        }
        tokio::time::sleep(POLL).await;
    };
    let msg = Message::ResearcherList(Box::new(ResearcherListPart::Pass {
        project: project.clone(),
        pass,
    }));
    expect_ack(ask(manifest, &linker, msg).await?).context("the linker refused A_0")?;
    researcher_state::discard_kept(state, project)?;
    say!(
        "researcher list check signed (A_0 sent); the linker links once every list's check passed"
    );
    Ok(())
}
