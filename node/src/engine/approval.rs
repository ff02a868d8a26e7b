//! A register's operators approve a project's run order: each approval
//! names an extract file in the node's extract directory and binds its
//! digest; the node checks it and forwards it to the linker for the
//! transcript.
//!
//! ```text
//!  Approve(statement, envelope)
//!    ─▶ ApprovalDesk::authenticate: signer is an operator of this register,
//!       signature; the envelope is the same operator's, for this node and
//!       manifest, fresh, and names this approval and the extract file
//!       (no state read, no file touched)
//!    ─▶ Engine::take_approval: statement seen before? ── yes ──▶ Ack (no file read)
//!       envelope seen before? ── yes ──▶ `replayed` (no file read); else remembered
//!    ─▶ ApprovalDesk::read: one plain file name in the extract directory,
//!       opened without following links and without blocking, a regular
//!       file under MAX_EXTRACT_BYTES, hashed            (the daemon runs the desk
//!                                                         outside the engine lock)
//!    ─▶ Engine::approve: the order entry the approval carries is the linker's
//!       entry 0 of this project (or the one held here), mode, order digest,
//!       expiry, digest = the signed one ─▶ commit: the order entry (if new
//!       here), extract path, seen, Statement → linker
//! ```
//!
//! The extract's name is signed in the envelope (issue 18 item 7): a man
//! in the middle who swaps it for another file in the directory makes the
//! envelope's signature fail.
//!
//! Refusals about the file say the same whatever the file system holds:
//! a replayed approval cannot probe which paths exist.

use std::{
    fs::File,
    io::Read,
    path::{Component, Path, PathBuf},
};

use kobling_protocol::{
    manifest::Manifest,
    messages::{Action, Message, RequestError, SignedRequest},
    project::ProjectView,
    refusal::{Refusal, RefusalCode},
    sequencer,
    transcript::{Body, Entry, SignedStatement, Signer},
    types::{Digest, Name, UnixTime},
};

use super::{
    error::{ack, refuse, Outcome, Refused},
    Engine,
};

/// The largest extract file a node reads: 64 GiB.
pub const MAX_EXTRACT_BYTES: u64 = 64 << 30;

/// The one refusal for an extract name the node will not read.
fn unusable_extract() -> Refusal {
    Refusal::new(
        RefusalCode::Extract,
        format!(
            "the extract cannot be used: name one regular file, at most {} GiB, in the node's extract directory (kobling node run --extracts)",
            MAX_EXTRACT_BYTES >> 30
        ),
    )
}

/// An extract file an approval names, found and hashed.
#[derive(Debug, Clone)]
pub struct ExtractFile {
    /// Where it is.
    pub(crate) path: PathBuf,
    /// Its SHA3-256.
    pub(crate) digest: Digest,
}

/// What checking an approval needs without the engine's state: the
/// daemon checks and hashes outside the engine's lock.
#[derive(Debug, Clone)]
pub struct ApprovalDesk {
    me: Name,
    manifest: Manifest,
    manifest_digest: Digest,
    extracts: PathBuf,
}

/// What a node does with an authenticated approval before reading its file.
#[derive(Debug)]
pub enum Taken {
    /// The approval was taken before: acknowledged, no file read.
    Seen,
    /// Refused (its envelope was seen before): no file read.
    Refused(Refusal),
    /// New: read the file.
    New,
}

/// The refusal of a client request that fails [`SignedRequest::check`].
pub(crate) fn request_refusal(e: RequestError) -> Refusal {
    let code = match e {
        RequestError::WrongNode | RequestError::WrongManifest => RefusalCode::Replayed,
        _ => RefusalCode::BadRequest,
    };
    Refusal::new(code, e.to_string())
}

impl ApprovalDesk {
    /// Checks that `signed` is an approval by an operator of this
    /// register, with a valid signature, and that `envelope` is the same
    /// operator's fresh request for this node and manifest to take this
    /// approval (no state read, no file touched); returns the extract's
    /// file name the envelope names.
    ///
    /// # Errors
    ///
    /// `not-an-approval`, `wrong-register`, `not-an-operator`,
    /// `bad-signature`, `bad-request` (the envelope is stale, badly
    /// signed, or for another approval), `replayed` (for another node or
    /// manifest).
    pub fn authenticate(
        &self,
        signed: &SignedStatement,
        envelope: &SignedRequest,
        now: UnixTime,
    ) -> Result<String, Refusal> {
        self.authenticate_statement(signed)?;
        let st = &signed.statement;
        if let Signer::Operator { key, .. } = &st.signer {
            if envelope.key != *key || envelope.request.project != st.project {
                return Err(Refusal::new(
                    RefusalCode::BadRequest,
                    "the envelope is not the approving operator's, for this project",
                ));
            }
        }
        envelope
            .check(now, &self.me, &self.manifest_digest)
            .map_err(request_refusal)?;
        match &envelope.request.action {
            Action::Approve { statement, extract } if *statement == st.digest() => {
                Ok(extract.as_str().to_string())
            }
            _ => Err(Refusal::new(
                RefusalCode::BadRequest,
                "the envelope is for another approval",
            )),
        }
    }

    fn authenticate_statement(&self, signed: &SignedStatement) -> Result<(), Refusal> {
        let st = &signed.statement;
        let (Body::Approval(a), Signer::Operator { register, key }) = (&st.body, &st.signer) else {
            return Err(Refusal::new(
                RefusalCode::NotAnApproval,
                "Approve must carry an operator's approval",
            ));
        };
        if *register != self.me || a.register != self.me {
            return Err(Refusal::new(
                RefusalCode::WrongRegister,
                format!("this is {}, not {register}", self.me),
            ));
        }
        if !self.manifest.is_operator_of(&self.me, key) {
            return Err(Refusal::new(
                RefusalCode::NotAnOperator,
                format!("the key is not an operator of {} in the manifest", self.me),
            ));
        }
        if signed.verify_with(key).is_err() {
            return Err(Refusal::new(
                RefusalCode::BadSignature,
                "the approval's signature does not verify",
            ));
        }
        Ok(())
    }

    /// Finds the extract `name` in the extract directory and hashes it.
    ///
    /// # Errors
    ///
    /// `extract`, with the same text whatever the file system holds.
    pub fn read(&self, name: &str) -> Result<ExtractFile, Refusal> {
        let path = self.resolve(name).ok_or_else(unusable_extract)?;
        let digest = hash_regular_file(&path).map_err(|e| {
            tracing::debug!(node = %self.me, error = %e, "an approved extract could not be read");
            unusable_extract()
        })?;
        Ok(ExtractFile { path, digest })
    }

    /// `name` in the extract directory, if it is one plain file name.
    fn resolve(&self, name: &str) -> Option<PathBuf> {
        let mut components = Path::new(name).components();
        match (components.next(), components.next()) {
            (Some(Component::Normal(c)), None) if c.len() <= 255 => Some(self.extracts.join(c)),
            _ => None,
        }
    }
}

/// SHA3-256 of a regular file, read through the one handle that was
/// checked: opened without following a final link and without blocking
/// (a FIFO would block), then checked to be a regular file under
/// [`MAX_EXTRACT_BYTES`].
fn hash_regular_file(path: &Path) -> std::io::Result<Digest> {
    use sha3::Digest as _;
    let mut options = File::options();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    let mut f = options.open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() || meta.len() > MAX_EXTRACT_BYTES {
        return Err(std::io::Error::other("not a regular file, or too large"));
    }
    let mut h = sha3::Sha3_256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut read = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        read = read.saturating_add(n as u64);
        if read > MAX_EXTRACT_BYTES {
            return Err(std::io::Error::other("grew past the size limit"));
        }
        h.update(&buf[..n]);
    }
    Ok(Digest(h.finalize().into()))
}

impl Engine {
    /// The stateless half of approving, for the daemon to run outside the
    /// engine's lock.
    pub fn approval_desk(&self) -> ApprovalDesk {
        let extracts = self
            .config
            .extracts
            .clone()
            .or_else(|| self.store.dir().map(|d| d.join("extracts")))
            .unwrap_or_else(|| PathBuf::from("extracts"));
        ApprovalDesk {
            me: self.me.clone(),
            manifest: self.manifest.clone(),
            manifest_digest: self.manifest_digest,
            extracts,
        }
    }

    /// Decides, for an approval whose envelope the desk authenticated,
    /// whether its extract is to be read: not if the approval was taken
    /// before (acknowledged), nor if its envelope was seen before (a
    /// replay, refused); otherwise the envelope is remembered and the file
    /// is read.
    ///
    /// # Errors
    ///
    /// [`super::EngineError::Store`].
    pub fn take_approval(
        &mut self,
        signed: &SignedStatement,
        envelope: &SignedRequest,
        now: UnixTime,
    ) -> Result<Taken, super::EngineError> {
        if self.approval_seen(signed)? {
            return Ok(Taken::Seen);
        }
        match self.remember_request(envelope, now) {
            Ok(()) => Ok(Taken::New),
            Err(Refused::Refusal(r)) => Ok(Taken::Refused(r)),
            Err(Refused::Engine(e)) => Err(e),
        }
    }

    /// Whether this node took this very approval already (a replay or a
    /// resend): it is acknowledged without reading any file.
    ///
    /// # Errors
    ///
    /// [`super::EngineError::Store`].
    pub fn approval_seen(&mut self, signed: &SignedStatement) -> Result<bool, super::EngineError> {
        let digest = signed.statement.digest();
        Ok(self
            .store
            .transaction(|tx| tx.approval_seen(&signed.statement.project, &digest))?)
    }

    /// An operator's approval, whose extract `file` the desk found and
    /// hashed (or refused).
    ///
    /// `order` is the project's first transcript entry, which the approval
    /// carries: a register that holds nothing of the project yet (the
    /// linker replicates nothing before the first approval) starts its
    /// copy with it, in the same commit as the approval.
    pub(super) fn approve(
        &mut self,
        signed: SignedStatement,
        envelope: &SignedRequest,
        order: &Entry,
        file: Result<ExtractFile, Refusal>,
        now: UnixTime,
    ) -> Outcome<Vec<Message>> {
        self.approval_desk().authenticate(&signed, envelope, now)?;
        if self.approval_seen(&signed)? {
            return Ok(vec![ack()]);
        }
        let st = &signed.statement;
        let Body::Approval(a) = &st.body else {
            return Err(refuse(RefusalCode::NotAnApproval, "not an approval"));
        };
        let mut entries = self.store.entries(&st.project)?;
        let copy = sequencer::admit_order_copy(&self.manifest, &entries, order, &st.project, now)?;
        entries.extend(copy.iter().cloned());
        let order = ProjectView::new(&self.manifest, &entries)
            .order()
            .cloned()
            .ok_or_else(|| refuse(RefusalCode::WrongOrder, "no project order"))?;
        self.check_mode(&order)?;
        // Nothing is kept for an order this register takes no part in; a
        // key holder without a list approves without an extract.
        let kind = self.approval_kind(&order, a, &file)?;
        if a.order != order.digest() {
            return Err(refuse(
                RefusalCode::WrongOrder,
                "the approval binds another project order",
            ));
        }
        if now >= order.expires || st.time >= order.expires {
            return Err(refuse(
                RefusalCode::Expired,
                format!(
                    "project {} has expired; it can no longer be approved",
                    st.project
                ),
            ));
        }
        let file = match kind {
            super::pseudo::ApprovalKind::List => Some(file?),
            super::pseudo::ApprovalKind::KeyHolderOnly => None,
        };
        if file.as_ref().is_some_and(|f| f.digest != a.extract) {
            return Err(refuse(
                RefusalCode::ExtractDigest,
                "the extract file's SHA3-256 is not the approved digest",
            ));
        }
        let path = match &file {
            Some(f) => Some(f.path.to_str().ok_or_else(unusable_extract)?.to_string()),
            None => None,
        };
        let linker = self.linker();
        let project = st.project.clone();
        let seen = st.digest();
        self.store.transaction(|tx| {
            if let Some(first) = &copy {
                tx.append_entries(&project, std::slice::from_ref(first))?;
            }
            if let (Some(file), Some(path)) = (&file, &path) {
                tx.put_extract(&project, &file.digest.0, path)?;
            }
            tx.put_approval_seen(&project, &seen)?;
            tx.send(&project, &linker, &Message::Statement(signed.clone()))?;
            Ok::<_, Refused>(())
        })?;
        Ok(vec![ack()])
    }
}

/// SHA3-256 of a file, streamed (tests: the digest an operator signs).
#[cfg(any(test, feature = "testing"))]
pub fn file_digest(path: &str) -> Result<Digest, String> {
    hash_regular_file(Path::new(path)).map_err(|e| e.to_string())
}
