//! The researcher's own list in a test federation (docs/protocol.md §18):
//! the list file written, sent to the linker as `kobling project
//! send-list` sends it, and `A_0` sent once σ is fixed, as `kobling
//! project check-list` does.

use std::path::Path;

use kobling_protocol::{
    identified::ResearcherList,
    messages::Message,
    project::ProjectView,
    researcher_list::{self as rlist, wire::ResearcherListPart, KeptOutput},
    transcript::ProjectOrder,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use kobling_sim::population::Extract;

use super::{expect_ack, Federation, Net, ProjectConfig, RunOutcome, TestingError};

impl Federation {
    /// Writes a researcher list file (CSV, `fnr` and the researcher's own
    /// columns) at `path` and returns its identified part for an order:
    /// its distinct persons and SHA3-256.
    ///
    /// # Errors
    ///
    /// The file cannot be written.
    pub fn write_researcher_list(
        &self,
        path: &Path,
        columns: &[&str],
        rows: &[Vec<String>],
    ) -> Result<ResearcherList, TestingError> {
        let mut text = format!("fnr,{}\n", columns.join(","));
        for row in rows {
            text.push_str(&super::csv_line(row));
            text.push('\n');
        }
        std::fs::write(path, &text)?;
        let persons = rows
            .iter()
            .filter_map(|r| r.first())
            .collect::<std::collections::BTreeSet<_>>()
            .len() as u64;
        Ok(ResearcherList {
            persons,
            digest: kobling_protocol::types::Digest(kobling_protocol::hash::sha3_256(
                text.as_bytes(),
            )),
        })
    }

    /// The messages that send the researcher list in `file` for `order`
    /// (checked against the order first), and the output to keep:
    /// what `kobling project send-list` sends, for tests that send them
    /// themselves (or change them).
    ///
    /// # Errors
    ///
    /// The file is not the order's researcher list, or cannot be prepared.
    pub fn researcher_list_messages(
        &self,
        net: &Net,
        order: &ProjectOrder,
        file: &Path,
        chunk_size: u32,
        seed: u64,
    ) -> Result<(Vec<Message>, KeptOutput), TestingError> {
        let unexpected = |e: crate::researcher_list::ListFileError| {
            TestingError::Unexpected(format!("the researcher list: {e}"))
        };
        let list = crate::researcher_list::read_list(file, order).map_err(unexpected)?;
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let prepared = crate::researcher_list::prepare_list(
            &self.manifest,
            order,
            &list,
            chunk_size,
            &self.researcher,
            net.now(),
            &mut rng,
        )
        .map_err(unexpected)?;
        Ok((
            crate::researcher_list::messages(order, &prepared),
            prepared.kept,
        ))
    }

    /// Sends the researcher list in `file` for `order` to the linker, every
    /// part acknowledged (an announcement that arrives before the order's
    /// approvals are in is sent again); returns the output to keep.
    ///
    /// # Errors
    ///
    /// As [`researcher_list_messages`](Self::researcher_list_messages), or
    /// a part the linker refuses.
    pub fn send_researcher_list(
        &self,
        net: &mut Net,
        order: &ProjectOrder,
        file: &Path,
        chunk_size: u32,
        seed: u64,
    ) -> Result<KeptOutput, TestingError> {
        let (messages, kept) = self.researcher_list_messages(net, order, file, chunk_size, seed)?;
        for msg in messages {
            let replies = net.client_retrying(&order.linker, &msg, 60_000)?;
            expect_ack("a part of the researcher list", replies)?;
        }
        Ok(kept)
    }

    /// The researcher's `A_0`, sent to the linker once every hop of its
    /// list is recorded in the linker's transcript: `Ok(true)` once sent,
    /// `Ok(false)` while a hop record is missing.
    ///
    /// # Errors
    ///
    /// The records do not chain, the list is over, or the linker refuses.
    pub fn researcher_pass(
        &self,
        net: &mut Net,
        order: &ProjectOrder,
        kept: &KeptOutput,
    ) -> Result<bool, TestingError> {
        let entries = net.transcript(&order.linker, &order.project)?;
        let view = ProjectView::new(&self.manifest, &entries);
        let pass = rlist::pass(&view, kept, &self.researcher)
            .map_err(|e| TestingError::Unexpected(format!("the researcher's A_0: {e}")))?;
        let Some(pass) = pass else {
            return Ok(false);
        };
        let msg = Message::ResearcherList(Box::new(ResearcherListPart::Pass {
            project: order.project.clone(),
            pass,
        }));
        expect_ack("the researcher's A_0", net.client(&order.linker, msg)?)?;
        Ok(true)
    }

    /// Orders, approves and runs `order` as an identified project whose
    /// researcher list is `rows` (`fnr`, then `columns`), written to
    /// `<federation dir>/<project>-researcher.csv`: the order carries the
    /// list's count and digest (granted again by the authority), the list
    /// is sent once the approvals are in, `A_0` once its hops are
    /// recorded; then delivered and verified as
    /// [`run_to_delivery`](Self::run_to_delivery) does.
    ///
    /// # Errors
    ///
    /// As [`run_project`](Self::run_project), or a refused part of the
    /// researcher list.
    pub fn run_identified(
        &self,
        net: &mut Net,
        mut order: ProjectOrder,
        extracts: &[&Extract],
        config: &ProjectConfig,
        columns: &[&str],
        rows: &[Vec<String>],
    ) -> Result<RunOutcome, TestingError> {
        let file = self.dir.join(format!("{}-researcher.csv", config.project));
        order.identified = Some(self.write_researcher_list(&file, columns, rows)?);
        let order = order.granted_by(&super::authority());
        let start = net.clock_ms();
        let order = self.submit_and_approve(net, order, extracts, config)?;
        let kept = self.send_researcher_list(net, &order, &file, config.chunk_size, config.seed)?;
        self.run_to_delivery_with(net, &order, config, start, Some(&kept))
    }
}
