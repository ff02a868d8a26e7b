//! Stepping another list's chunks: this node is hop `h` of the list (the
//! linker is the last hop). Each chunk is verified, stepped and committed
//! with its record and its output (or, at the linker, the final points)
//! in one transaction; a chunk that was stepped already is acknowledged
//! and not redone.

use kobling_protocol::{
    delivery::FinalSaltKey,
    group::WirePoint,
    hop::{Hop, LinkerKeys, ListContext, PointChunk},
    manifest::Role,
    messages::Message,
    project::{Duty, ProjectView},
    refusal::RefusalCode,
    seal::{open_blinding, HpkeSecretKey, WrappedKey},
    share::Domain,
    transcript::{self, Body, ChunkRecord},
    types::{ChunkIndex, HopIndex, Name},
};

use super::{
    error::{ack, not_ready, refuse, Outcome, Refused},
    now_of, Engine,
};
use crate::store::{LinkerRow, LinkerTable, StoreError};

impl Engine {
    /// A chunk of `chunk.list` from `from`, the hop before this node
    /// (admitted: the sender and the chunk's range are checked).
    pub(super) fn points(&mut self, from: &Name, chunk: PointChunk) -> Outcome<Vec<Message>> {
        let project = chunk.project.clone();
        let entries = self.store.entries(&project)?;
        let manifest = self.manifest.clone();
        let view = ProjectView::new(&manifest, &entries);
        let hop = chunk.hop.next();
        if view.chunk_recipient(&chunk.list, chunk.hop).as_ref() != Some(&self.me) {
            return Err(refuse(
                RefusalCode::UnexpectedSender,
                format!(
                    "{from} is not hop {} of list {} before this node",
                    chunk.hop, chunk.list
                ),
            ));
        }
        let stored = self
            .store
            .transaction(|tx| tx.hop(&project, &chunk.list, hop.into()))?;
        if let Some((_, true)) = stored {
            return Ok(vec![ack()]); // the whole list is done: a resend
        }
        let duty = view.duties(&self.me).into_iter().find_map(|d| match d {
            Duty::Step {
                list,
                hop: h,
                previous_key,
                next,
                ..
            } if list == chunk.list && h == hop => Some((previous_key, next)),
            _ => None,
        });
        let Some((previous_key, next)) = duty else {
            return Err(not_ready(format!(
                "list {} is not ready for hop {hop} here (announcement or approvals pending)",
                chunk.list
            )));
        };
        let announcement = view
            .announcement(&chunk.list)
            .ok_or_else(|| not_ready("not announced"))?;
        let records: Vec<ChunkRecord> = match stored {
            Some((bytes, _)) => {
                postcard::from_bytes(&bytes).map_err(|_| StoreError::Corrupt("hop records"))?
            }
            None => Vec::new(),
        };
        let done = records.len() as u64;
        if chunk.chunk < ChunkIndex(done) {
            tracing::debug!(node = %self.me, %project, list = %chunk.list, hop = hop.0, chunk = chunk.chunk.0, "chunk already stepped: acknowledged, not redone");
            return Ok(vec![ack()]);
        }
        if chunk.chunk > ChunkIndex(done) {
            return Err(not_ready(format!(
                "chunk {} before chunk {done}",
                chunk.chunk
            )));
        }
        let ctx = ListContext {
            project: project.clone(),
            list: chunk.list.clone(),
            persons: announcement.persons,
            chunk_size: announcement.chunk_size,
        };
        let hop_state =
            self.hop_state(ctx, hop, previous_key, &announcement.blinding_commitment)?;
        let mut hop_state = hop_state
            .resume(records)
            .map_err(|e| refuse(RefusalCode::Hop, e.to_string()))?;
        let out = hop_state
            .handle_chunk(&chunk, &mut self.rng)
            .map_err(|e| refuse(RefusalCode::BadChunk, e.to_string()))?;
        let complete = hop_state.is_complete();
        let records = transcript::encode_value(&hop_state.records().to_vec());
        let statement = if complete {
            let record = hop_state
                .finish()
                .map_err(|e| refuse(RefusalCode::Hop, e.to_string()))?;
            Some(self.sign(&project, Body::Hop(record), now_of(&entries)))
        } else {
            None
        };
        let is_linker = self.role == Role::Linker;
        let list = chunk.list.clone();
        let linker = self.linker();
        self.store.transaction(|tx| {
            tx.put_hop(&project, &list, hop.into(), &records, complete)?;
            if is_linker {
                tx.put_blob(
                    LinkerRow::Final(chunk.chunk),
                    &project,
                    &list,
                    &transcript::encode_value(&out.output),
                )?;
            } else if let Some(next) = &next {
                tx.send(&project, next, &Message::Points(out))?;
            }
            if let Some(s) = statement {
                tx.send(&project, &linker, &Message::Statement(s))?;
            }
            Ok::<_, Refused>(())
        })?;
        // Counted by the restart tests: one line per chunk verified, stepped
        // and committed, so a chunk stepped twice shows up.
        tracing::debug!(node = %self.me, %project, %list, hop = hop.0, chunk = chunk.chunk.0, "chunk stepped");
        Ok(vec![ack()])
    }

    /// This node's hop over a list: a register's share, or the linker's
    /// share combined with the list blinding it opens.
    fn hop_state(
        &mut self,
        ctx: ListContext,
        hop: HopIndex,
        previous_key: Option<WirePoint>,
        blinding_commitment: &WirePoint,
    ) -> Outcome<Hop> {
        let share = self.keystore.share(&Domain::Project(ctx.project.clone()))?;
        let hop_state = if self.role == Role::Linker {
            let sealed = self
                .store
                .transaction(|tx| tx.blobs(LinkerTable::Blinding, &ctx.project, &ctx.list))?;
            let Some(bytes) = sealed.first() else {
                return Err(not_ready(format!(
                    "the blinding of list {} has not arrived",
                    ctx.list
                )));
            };
            let wrapped: WrappedKey =
                postcard::from_bytes(bytes).map_err(|_| StoreError::Corrupt("blinding"))?;
            let hpke = HpkeSecretKey::from_bytes(*self.keystore.x25519_secret_bytes());
            let blinding = open_blinding(&hpke, &ctx.project, &ctx.list, &wrapped)
                .map_err(|_| refuse(RefusalCode::Blinding, "the list blinding does not open"))?;
            let keys = LinkerKeys {
                share: &share,
                blinding: &blinding,
                blinding_commitment,
            };
            let domain = Domain::Project(ctx.project.clone());
            let salt = FinalSaltKey::from_share(&share, &domain);
            Hop::linker(ctx, hop, self.me.clone(), keys, previous_key, &mut self.rng)
                .map(|h| h.with_final_salt(salt, domain))
        } else {
            Hop::register(ctx, hop, self.me.clone(), share, previous_key)
        };
        hop_state.map_err(|e| refuse(RefusalCode::Hop, e.to_string()))
    }
}
