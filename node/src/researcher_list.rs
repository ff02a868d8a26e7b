//! The researcher's own list, client side (docs/identified.md "Sending
//! your list"; docs/protocol.md §18): read the list file, check it against
//! the order before anything is sent, prepare the list
//! (`kobling_protocol::researcher_list::prepare`), and the messages that
//! carry it to the linker, in the order they must arrive.
//!
//! ```text
//!  FILE ─▶ read_list (every row valid; persons and SHA3-256 = the order's) ─▶ prepare
//!       ─▶ parts: Announce (β₁, β₂), Items…, Chunk…, End ─▶ linker
//!       └─ KeptOutput ─▶ researcher_state (0600) ── σ fixed ─▶ pass ─▶ Pass ─▶ linker
//! ```
//!
//! Nothing here prints or logs an identifier: errors name counts, reasons
//! and line numbers only.

use std::path::Path;

use ed25519_dalek::SigningKey;
use kobling_protocol::{
    bounded::{BoundedString, BoundedVec},
    ident::ParseOptions,
    manifest::Manifest,
    messages::{Message, MAX_ITEMS_PER_MESSAGE},
    researcher_list::{
        list_name, prepare,
        wire::{ResearcherListPart, MAX_RESEARCHER_CHUNK},
        Prepared, ResearcherListError, ResearcherPerson, Setup,
    },
    seal::HpkePublicKey,
    transcript::ProjectOrder,
    types::{Digest, Position, UnixTime},
};
use rand_core::CryptoRng;

use crate::extract_file::{read_extract, ExtractError};

/// Sealed-item bytes per message: well under the client frame cap.
const ITEM_PAGE_BYTES: usize = 512 << 10;

/// Why the researcher's list cannot be sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum ListFileError {
    /// The file cannot be read as an extract.
    #[error(transparent)]
    Read(#[from] ExtractError),
    /// Rows with an invalid identifier (counted, never shown).
    #[error("the list has {0} rows with an invalid identifier; every row must be valid (`kobling extract check` shows them by line)")]
    Invalid(u64),
    /// Not the file the order binds, or the protocol refused to prepare it.
    #[error(transparent)]
    List(#[from] ResearcherListError),
    /// A column name is too long, or too many columns.
    #[error("the list's columns do not fit an order's bounds")]
    Columns,
    /// The manifest has no linker, or no register to be hop 1.
    #[error("the manifest has no {0}")]
    Manifest(&'static str),
    /// A chunk size of 0, over the cap or not a power of two.
    #[error("a chunk size must be a power of two from 1 to {MAX_RESEARCHER_CHUNK}")]
    ChunkSize,
}

/// The researcher's list read from its file.
pub(crate) struct ListFile {
    /// The persons (identifier and own rows), in file order.
    persons: Vec<ResearcherPerson>,
    /// SHA3-256 of the file.
    pub(crate) digest: Digest,
    /// Data rows.
    pub(crate) rows: u64,
    /// The researcher's own columns (every column but `fnr`).
    pub(crate) columns: Vec<String>,
}

impl std::fmt::Debug for ListFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListFile")
            .field("persons", &self.persons.len())
            .field("digest", &self.digest)
            .finish_non_exhaustive()
    }
}

impl ListFile {
    /// Distinct persons.
    pub(crate) fn persons(&self) -> u64 {
        self.persons.len() as u64
    }
}

/// Reads the list file and checks it against `order`'s researcher list
/// (person count and SHA3-256) before anything is made or sent.
///
/// # Errors
///
/// [`ListFileError`]: unreadable, an invalid row, or not the file the order
/// binds (`WrongCount`, `WrongDigest`, `NotIdentified`).
pub(crate) fn read_list(path: &Path, order: &ProjectOrder) -> Result<ListFile, ListFileError> {
    let read = read_extract(
        path,
        ParseOptions {
            allow_synthetic: order.test_mode,
        },
        None,
    )?;
    let invalid = read.summary.stats.invalid_rows();
    if invalid > 0 {
        return Err(ListFileError::Invalid(invalid));
    }
    let ordered = order.identified.ok_or(ResearcherListError::NotIdentified)?;
    let persons = read.persons.len() as u64;
    if persons != ordered.persons {
        return Err(ResearcherListError::WrongCount {
            ordered: ordered.persons,
            announced: persons,
        }
        .into());
    }
    if read.summary.digest != ordered.digest {
        return Err(ResearcherListError::WrongDigest.into());
    }
    Ok(ListFile {
        persons: read
            .persons
            .into_iter()
            .map(|p| ResearcherPerson {
                fnr: p.id,
                rows: p.rows,
            })
            .collect(),
        digest: read.summary.digest,
        rows: read.summary.stats.rows,
        columns: read.summary.columns,
    })
}

/// Prepares the list: shuffled, split-blinded, sealed to the researcher,
/// every chunk signed with `key` (the order's researcher key).
///
/// # Errors
///
/// [`ListFileError`] for a bad chunk size, a manifest without a linker or
/// register, columns out of bounds, or a refusal of
/// [`kobling_protocol::researcher_list::prepare`].
pub(crate) fn prepare_list<R: CryptoRng + ?Sized>(
    manifest: &Manifest,
    order: &ProjectOrder,
    list: &ListFile,
    chunk_size: u32,
    key: &SigningKey,
    now: UnixTime,
    rng: &mut R,
) -> Result<Prepared, ListFileError> {
    if chunk_size == 0 || chunk_size > MAX_RESEARCHER_CHUNK || !chunk_size.is_power_of_two() {
        return Err(ListFileError::ChunkSize);
    }
    let linker = manifest.linker().ok_or(ListFileError::Manifest("linker"))?;
    let registers = kobling_protocol::domain::key_registers(manifest, order);
    let name = list_name().map_err(ResearcherListError::from)?;
    let hop1 = manifest
        .chain_order(name.owner(), &registers)
        .get(1)
        .and_then(|n| manifest.member(n))
        .ok_or(ListFileError::Manifest("register to be hop 1"))?;
    let hpke = |k: [u8; 32]| {
        HpkePublicKey::from_bytes(k).map_err(|_| ListFileError::Manifest("valid HPKE key"))
    };
    let (linker_key, hop1_key) = (hpke(linker.hpke_key.0)?, hpke(hop1.hpke_key.0)?);
    let columns = BoundedVec::new(
        list.columns
            .iter()
            .map(|c| BoundedString::new(c.as_str()).map_err(|_| ListFileError::Columns))
            .collect::<Result<Vec<_>, _>>()?,
    )
    .map_err(|_| ListFileError::Columns)?;
    let setup = Setup {
        order,
        file_digest: list.digest,
        rows: list.rows,
        columns,
        linker: &linker_key,
        hop1: &hop1_key,
        chunk_size,
        now,
    };
    Ok(prepare(&setup, &list.persons, key, rng)?)
}

/// The messages that carry a prepared list to the linker, in the order
/// they must arrive: the announcement with `β₁` and `β₂`, the sealed items
/// in pages, the chunks, the end-of-list statement.
pub(crate) fn messages(order: &ProjectOrder, prepared: &Prepared) -> Vec<Message> {
    let project = order.project.clone();
    let part = |p: ResearcherListPart| Message::ResearcherList(Box::new(p));
    let mut out = vec![part(ResearcherListPart::Announce {
        announcement: prepared.announcement.clone(),
        first: prepared.beta_first.clone(),
        second: prepared.beta_second.clone(),
    })];
    let mut first = 0u64;
    let mut page = Vec::new();
    let mut bytes = 0usize;
    let flush = |page: &mut Vec<_>, first: &mut u64, out: &mut Vec<Message>| {
        if page.is_empty() {
            return;
        }
        let n = page.len() as u64;
        out.push(part(ResearcherListPart::Items {
            project: project.clone(),
            first: Position(*first),
            items: BoundedVec::new(std::mem::take(page)).unwrap_or_default(),
        }));
        *first += n;
    };
    for item in &prepared.items {
        let size = item.as_bytes().len();
        if !page.is_empty()
            && (bytes + size > ITEM_PAGE_BYTES || page.len() == MAX_ITEMS_PER_MESSAGE)
        {
            flush(&mut page, &mut first, &mut out);
            bytes = 0;
        }
        bytes += size;
        page.push(item.clone());
    }
    flush(&mut page, &mut first, &mut out);
    for chunk in &prepared.chunks {
        out.push(part(ResearcherListPart::Chunk {
            project: order.project.clone(),
            chunk: chunk.clone(),
        }));
    }
    out.push(part(ResearcherListPart::End(prepared.end.clone())));
    out
}
