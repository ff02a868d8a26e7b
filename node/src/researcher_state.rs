//! The researcher's kept list output between sending its list and signing
//! `A_0` (docs/identified.md, "its own list in the chain";
//! `kobling_protocol::researcher_list::KeptOutput`).
//!
//! ```text
//!  send-list  ─▶ store_kept: DIR must be 0700; DIR/<project>.researcher-list
//!                created O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600, synced
//!  check-list ─▶ load_kept: a private regular file, size-capped, decoded,
//!                for this project ─▶ A_0 ─▶ discard_kept
//! ```
//!
//! Called by `kobling project send-list` and `check-list`
//! (`cmd/project/rlist.rs`).

use std::{
    io::{Read, Write},
    path::{Path, PathBuf},
};

use kobling_protocol::{
    researcher_list::{KeptError, KeptOutput},
    types::ProjectId,
};

use crate::private_fs::{self, PrivateFsError};

/// The largest kept output read: 32 bytes per point of a list of 10⁸
/// persons, and the header.
const MAX_KEPT_BYTES: u64 = 32 * 100_000_000 + 1024;

/// Why the kept output cannot be stored or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum StateError {
    /// The directory or file is not private, or the file system refused.
    #[error(transparent)]
    Fs(#[from] PrivateFsError),
    /// Reading or writing failed.
    #[error("cannot {what} {}: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is larger than any kept output.
    #[error("{} is larger than a kept researcher list can be", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// The bytes are not a kept output.
    #[error("{}: {source}", path.display())]
    Decode {
        /// The file.
        path: PathBuf,
        /// Why.
        source: KeptError,
    },
    /// The file keeps another project's list.
    #[error("{} keeps the list of project {found}, not {wanted}", path.display())]
    OtherProject {
        /// The file.
        path: PathBuf,
        /// The project asked for.
        wanted: ProjectId,
        /// The project in the file.
        found: ProjectId,
    },
}

/// `DIR/<project>.researcher-list`.
pub(crate) fn kept_path(dir: &Path, project: &ProjectId) -> PathBuf {
    dir.join(format!("{project}.researcher-list"))
}

/// Stores `kept` afresh in `dir` (a 0700 directory), mode 0600, synced;
/// refuses to replace a kept output already there.
///
/// # Errors
///
/// [`StateError::Fs`] (the directory is not private, or the file exists),
/// [`StateError::Io`].
pub(crate) fn store_kept(dir: &Path, kept: &KeptOutput) -> Result<PathBuf, StateError> {
    private_fs::check_node_dir(dir)?;
    let path = kept_path(dir, &kept.project);
    let mut file = private_fs::create_new(&path)?;
    let io = |what| {
        let path = path.clone();
        move |source| StateError::Io { what, path, source }
    };
    file.write_all(&kept.encode()).map_err(io("write"))?;
    file.sync_all().map_err(io("sync"))?;
    Ok(path)
}

/// Reads the kept output of `project` from `dir`: a private regular file
/// of at most [`MAX_KEPT_BYTES`], decoded, for this project.
///
/// # Errors
///
/// The [`StateError`] that applies.
pub(crate) fn load_kept(dir: &Path, project: &ProjectId) -> Result<KeptOutput, StateError> {
    let path = kept_path(dir, project);
    let file = private_fs::open_regular(&path, true)?;
    let mut bytes = Vec::new();
    file.take(MAX_KEPT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| StateError::Io {
            what: "read",
            path: path.clone(),
            source,
        })?;
    if bytes.len() as u64 > MAX_KEPT_BYTES {
        return Err(StateError::TooLarge { path });
    }
    let kept = KeptOutput::decode(&bytes).map_err(|source| StateError::Decode {
        path: path.clone(),
        source,
    })?;
    if &kept.project != project {
        return Err(StateError::OtherProject {
            path,
            wanted: project.clone(),
            found: kept.project,
        });
    }
    Ok(kept)
}

/// Deletes the kept output once `A_0` is signed and sent.
///
/// # Errors
///
/// [`StateError::Io`].
pub(crate) fn discard_kept(dir: &Path, project: &ProjectId) -> Result<(), StateError> {
    let path = kept_path(dir, project);
    std::fs::remove_file(&path).map_err(|source| StateError::Io {
        what: "delete",
        path,
        source,
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use kobling_protocol::group::WirePoint;

    use super::*;

    fn kept(project: &str) -> KeptOutput {
        KeptOutput {
            project: ProjectId::new(project).expect("id"),
            chunk_size: 4,
            points: vec![WirePoint([0x11; 32]); 5],
        }
    }

    fn private_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
            .expect("chmod");
        dir
    }

    #[test]
    fn the_kept_output_is_stored_private_once_and_read_back() {
        let dir = private_dir();
        let k = kept("P-1");
        let path = store_kept(dir.path(), &k).expect("stored");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(
            matches!(store_kept(dir.path(), &k), Err(StateError::Fs(_))),
            "a kept output is never replaced"
        );
        assert_eq!(load_kept(dir.path(), &k.project).expect("read"), k);
        discard_kept(dir.path(), &k.project).expect("deleted");
        assert!(load_kept(dir.path(), &k.project).is_err());
    }

    #[test]
    fn a_shared_directory_a_readable_file_or_damaged_bytes_are_refused() {
        let open = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(open.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        assert!(matches!(
            store_kept(open.path(), &kept("P-1")),
            Err(StateError::Fs(PrivateFsError::NotPrivate { .. }))
        ));

        let dir = private_dir();
        let project = ProjectId::new("P-1").expect("id");
        let path = store_kept(dir.path(), &kept("P-1")).expect("stored");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(matches!(
            load_kept(dir.path(), &project),
            Err(StateError::Fs(PrivateFsError::NotPrivate { .. }))
        ));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let mut bytes = std::fs::read(&path).expect("read");
        bytes.truncate(bytes.len() - 1);
        std::fs::write(&path, &bytes).expect("write");
        assert!(matches!(
            load_kept(dir.path(), &project),
            Err(StateError::Decode { .. })
        ));

        // Another project's kept output under this project's name.
        std::fs::write(&path, kept("P-2").encode()).expect("write");
        assert!(matches!(
            load_kept(dir.path(), &project),
            Err(StateError::OtherProject { .. })
        ));
    }
}
