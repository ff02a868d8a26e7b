//! A register's operators approve a project's run order: each approval
//! names an extract file in the node's extract directory and binds its
//! digest; the node checks it and forwards it to the linker for the
//! transcript.
//!
//! ```text
//!  Approve(statement, name)
//!    ─▶ seen before? ── yes ──▶ Ack (a replay costs one lookup, no file read)
//!    ─▶ ApprovalDesk::check: signer is an operator of this register, signature
//!       (no state read), then the name: one plain file name in the extract
//!       directory, opened without following links and without blocking, a
//!       regular file under MAX_EXTRACT_BYTES, hashed        (the daemon runs this
//!                                                             outside the engine lock)
//!    ─▶ Engine::approve: the order is known here, mode, order digest, expiry,
//!       digest = the signed one ─▶ commit: extract path, seen, Statement → linker
//! ```
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
    messages::Message,
    project::ProjectView,
    refusal::{Refusal, RefusalCode},
    transcript::{Body, SignedStatement, Signer},
    types::{Digest, Name},
};

use super::{
    error::{ack, not_ready, refuse, Outcome, Refused},
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
    extracts: PathBuf,
}

impl ApprovalDesk {
    /// Checks that `signed` is an approval by an operator of this
    /// register, with a valid signature (no state read, no file touched).
    ///
    /// # Errors
    ///
    /// `not-an-approval`, `wrong-register`, `not-an-operator`,
    /// `bad-signature`.
    pub fn authenticate(&self, signed: &SignedStatement) -> Result<(), Refusal> {
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
            extracts,
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
    pub(super) fn approve(
        &mut self,
        signed: SignedStatement,
        file: Result<ExtractFile, Refusal>,
        now: u64,
    ) -> Outcome<Vec<Message>> {
        self.approval_desk().authenticate(&signed)?;
        if self.approval_seen(&signed)? {
            return Ok(vec![ack()]);
        }
        let file = file?;
        let st = &signed.statement;
        let Body::Approval(a) = &st.body else {
            return Err(refuse(RefusalCode::NotAnApproval, "not an approval"));
        };
        let entries = self.store.entries(&st.project)?;
        let order = ProjectView::new(&self.manifest, &entries)
            .order()
            .cloned()
            .ok_or_else(|| not_ready(format!("project {} is not known here yet", st.project)))?;
        self.check_mode(&order)?;
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
        if file.digest != a.extract {
            return Err(refuse(
                RefusalCode::ExtractDigest,
                "the extract file's SHA3-256 is not the approved digest",
            ));
        }
        let path = file.path.to_str().ok_or_else(unusable_extract)?.to_string();
        let linker = self.linker();
        let project = st.project.clone();
        let seen = st.digest();
        self.store.transaction(|tx| {
            tx.put_extract(&project, &file.digest.0, &path)?;
            tx.put_approval_seen(&project, &seen)?;
            tx.send(&project, &linker, &Message::Statement(signed.clone()))?;
            Ok::<_, Refused>(())
        })?;
        Ok(vec![ack()])
    }
}

/// SHA3-256 of a file, streamed (tests: the digest an operator signs).
#[cfg(any(test, feature = "testing"))]
pub(crate) fn file_digest(path: &str) -> Result<Digest, String> {
    hash_regular_file(Path::new(path)).map_err(|e| e.to_string())
}
