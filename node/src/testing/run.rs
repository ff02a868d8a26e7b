//! Running a project on a test federation's network: the order submitted,
//! the approvals sent until every register holds the order, the engines
//! run until the project is deliverable, and the delivery fetched and
//! verified as the researcher's client does.

use kobling_protocol::{
    messages::{Action, Message},
    project::{Phase, ProjectView},
    refusal::RefusalCode,
    transcript::{self, Entry, ProjectOrder},
    types::UnixTime,
};
use kobling_sim::population::Extract;

use super::{expect_ack, name, quic, Federation, Net, ProjectConfig, RunOutcome, TestingError};

impl Federation {
    /// Starts a network with `config`'s chunk size, faults and seed, and
    /// runs the project on it: the outcome, and the network (still
    /// running, for what the test does next).
    ///
    /// # Errors
    ///
    /// As [`run_project`](Self::run_project).
    pub fn run(
        &self,
        extracts: &[&Extract],
        config: &ProjectConfig,
    ) -> Result<(RunOutcome, Net), TestingError> {
        let mut net = self.start(config.chunk_size, config.faults, config.seed)?;
        let out = self.run_project(&mut net, extracts, config)?;
        Ok((out, net))
    }

    /// As [`run`](Self::run) on a chain v1 network
    /// ([`start_v1`](Self::start_v1)): a v1 transcript for the verifier's
    /// tests.
    ///
    /// # Errors
    ///
    /// As [`run_project`](Self::run_project).
    pub fn run_v1(
        &self,
        extracts: &[&Extract],
        config: &ProjectConfig,
    ) -> Result<(RunOutcome, Net), TestingError> {
        let mut net = self.start_v1(config.chunk_size, config.faults, config.seed)?;
        let out = self.run_project(&mut net, extracts, config)?;
        Ok((out, net))
    }

    /// Submits the order of `config`'s project over `extracts` and has two
    /// operators of every register approve it (the extract files written
    /// to the extract directory first), retrying while a register has not
    /// received the order yet.
    ///
    /// # Errors
    ///
    /// [`TestingError`] for a refused order or approval.
    pub fn order_and_approve(
        &self,
        net: &mut Net,
        extracts: &[&Extract],
        config: &ProjectConfig,
    ) -> Result<ProjectOrder, TestingError> {
        let order = self.order(&config.project, &config.cohort, extracts)?;
        self.submit_and_approve(net, order, extracts, config)
    }

    /// [`order_and_approve`](Self::order_and_approve) of a given `order`
    /// (e.g. an identified one, see `docs/identified.md`).
    ///
    /// # Errors
    ///
    /// As [`order_and_approve`](Self::order_and_approve).
    pub fn submit_and_approve(
        &self,
        net: &mut Net,
        order: ProjectOrder,
        extracts: &[&Extract],
        config: &ProjectConfig,
    ) -> Result<ProjectOrder, TestingError> {
        self.approve_pseudonymous(net, &order, extracts, &[], config)?;
        Ok(order)
    }

    /// Orders, approves and runs a project over `net`, then fetches and
    /// verifies the delivery as the researcher's client does.
    ///
    /// # Errors
    ///
    /// [`TestingError`]: a refused order or approval, a run that stalls
    /// (no message delivered for a virtual minute) or does not finish
    /// within ten virtual minutes, or a delivery that does not verify.
    pub fn run_project(
        &self,
        net: &mut Net,
        extracts: &[&Extract],
        config: &ProjectConfig,
    ) -> Result<RunOutcome, TestingError> {
        let start = net.clock_ms();
        let order = self.order_and_approve(net, extracts, config)?;
        self.run_to_delivery(net, &order, config, start)
    }

    /// Runs an ordered and approved project until it is deliverable, then
    /// fetches and verifies the delivery as the researcher's client does
    /// (`start`: the virtual time the run began).
    ///
    /// # Errors
    ///
    /// As [`run_project`](Self::run_project).
    pub fn run_to_delivery(
        &self,
        net: &mut Net,
        order: &ProjectOrder,
        config: &ProjectConfig,
        start: u64,
    ) -> Result<RunOutcome, TestingError> {
        self.run_to_delivery_with(net, order, config, start, None)
    }

    /// [`run_to_delivery`](Self::run_to_delivery) of an identified
    /// project whose researcher list was sent
    /// ([`send_researcher_list`](Self::send_researcher_list)): the
    /// researcher's `A_0` is sent once its list's hops are recorded.
    ///
    /// # Errors
    ///
    /// As [`run_project`](Self::run_project), or a refused `A_0`.
    pub fn run_to_delivery_with(
        &self,
        net: &mut Net,
        order: &ProjectOrder,
        config: &ProjectConfig,
        start: u64,
        kept: Option<&kobling_protocol::researcher_list::KeptOutput>,
    ) -> Result<RunOutcome, TestingError> {
        let (project, linker) = (order.project.clone(), order.linker.clone());
        let mut passed = kept.is_none();
        let manifest = self.manifest.clone();
        let mut last = (net.stats().delivered, net.clock_ms());
        let mut next_look = 0;
        net.run_until(600_000, |net| {
            // The linker's transcript is read at most every 50 virtual ms.
            if net.clock_ms() < next_look {
                return Ok(false);
            }
            next_look = net.clock_ms() + 50;
            if let (false, Some(kept)) = (passed, kept) {
                passed = self.researcher_pass(net, order, kept)?;
            }
            let entries = net.transcript(&linker, &project)?;
            let view = ProjectView::new(&manifest, &entries);
            if view.phase() == Phase::Closed {
                return Err(TestingError::Unexpected(format!(
                    "{project} closed before delivery: {:?}",
                    net.refusals()
                )));
            }
            let delivered = net.stats().delivered;
            if delivered != last.0 {
                last = (delivered, net.clock_ms());
            } else if net.clock_ms() > last.1 + 60_000 {
                return Err(TestingError::Unexpected(format!(
                    "{project} stalled before delivery; refusals: {:?}",
                    net.refusals()
                )));
            }
            Ok(view.phase().is_deliverable())
        })?;
        let replies = net.client(
            &linker,
            self.request(&config.project, Action::Fetch, net.now())?,
        )?;
        let delivered = quic::open_delivery(&self.manifest, &self.researcher_hpke, replies)?;
        let transcript = transcript::decode_file(&delivered.transcript_file)
            .map_err(|e| TestingError::Unexpected(e.to_string()))?;
        Ok(RunOutcome {
            tables: delivered.tables,
            transcript,
            transcript_file: delivered.transcript_file,
            verified: delivered.verified,
            virtual_ms: net.clock_ms() - start,
        })
    }

    /// Submits `order` to the linker; returns its first entry.
    ///
    /// # Errors
    ///
    /// A refused order.
    pub fn submit(&self, net: &mut Net, order: &ProjectOrder) -> Result<Entry, TestingError> {
        let now = net.now();
        expect_ack(
            "the order",
            net.client(&order.linker, self.submit_message(order, now))?,
        )?;
        net.transcript(&order.linker, &order.project)?
            .into_iter()
            .next()
            .ok_or_else(|| TestingError::Unexpected("the linker holds no order".into()))
    }

    /// Sends the approval `make` builds to `register` (a fresh one each
    /// time) until the register holds the order, and expects an ack.
    ///
    /// # Errors
    ///
    /// A refused approval, or a minute of virtual time without the order.
    pub fn approve_until_ready(
        &self,
        net: &mut Net,
        register: &str,
        make: impl Fn(&Self, UnixTime) -> Result<Message, TestingError>,
    ) -> Result<(), TestingError> {
        let until = net.clock_ms().saturating_add(60_000);
        loop {
            let msg = make(self, net.now())?;
            let replies = net.client(&name(register)?, msg)?;
            let not_ready = replies
                .first()
                .is_some_and(|m| m.refusal_code() == Some(RefusalCode::NotReady));
            if !not_ready {
                return expect_ack(&format!("{register}'s approval"), replies);
            }
            if net.clock_ms() > until {
                return Err(TestingError::Timeout(60_000));
            }
            net.run_for(100)?;
        }
    }
}
