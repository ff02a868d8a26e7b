//! A register's operators approve a project's run order: each approval
//! names the extract file and binds its digest; the node checks it and
//! forwards it to the linker for the transcript.

use kobling_protocol::{
    messages::Message,
    project::ProjectView,
    refusal::RefusalCode,
    transcript::{Body, SignedStatement, Signer},
    types::Digest,
};

use super::{
    error::{ack, not_ready, refuse, Outcome, Refused},
    Engine,
};

impl Engine {
    /// An operator's approval, with the path of the extract it approves.
    pub(super) fn approve(
        &mut self,
        signed: SignedStatement,
        path: &str,
        now: u64,
    ) -> Outcome<Vec<Message>> {
        let st = &signed.statement;
        let (Body::Approval(a), Signer::Operator { register, key }) = (&st.body, &st.signer) else {
            return Err(refuse(
                RefusalCode::NotAnApproval,
                "Approve must carry an operator's approval",
            ));
        };
        if *register != self.me || a.register != self.me {
            return Err(refuse(
                RefusalCode::WrongRegister,
                format!("this is {}, not {register}", self.me),
            ));
        }
        if !self.manifest.is_operator_of(&self.me, key) {
            return Err(refuse(
                RefusalCode::NotAnOperator,
                format!("the key is not an operator of {} in the manifest", self.me),
            ));
        }
        if signed.verify_with(key).is_err() {
            return Err(refuse(
                RefusalCode::BadSignature,
                "the approval's signature does not verify",
            ));
        }
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
        let digest = file_digest(path).map_err(|e| refuse(RefusalCode::Extract, e))?;
        if digest != a.extract {
            return Err(refuse(
                RefusalCode::ExtractDigest,
                "the extract file's SHA3-256 is not the approved digest",
            ));
        }
        let linker = self.linker();
        let project = st.project.clone();
        self.store.transaction(|tx| {
            tx.put_extract(&project, &digest.0, path)?;
            tx.send(&project, &linker, &Message::Statement(signed.clone()))?;
            Ok::<_, Refused>(())
        })?;
        Ok(vec![ack()])
    }
}

/// SHA3-256 of a file, streamed.
pub(crate) fn file_digest(path: &str) -> Result<Digest, String> {
    use sha3::Digest as _;
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| format!("cannot open the extract: {e}"))?;
    let mut h = sha3::Sha3_256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| format!("cannot read the extract: {e}"))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(Digest(h.finalize().into()))
}
