//! The node's files are its own (issue 18 item 8, issue 12 item 6).
//!
//! ```text
//!  node start ─▶ umask 077 ─▶ DIR must be a 0700 directory (else: "chmod 700 DIR")
//!  state.db, staging-*.db: created O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600
//!                          an existing one: opened O_NOFOLLOW, must be a regular
//!                          file, tightened to 0600 on the handle
//!  key and extract files:  opened once; type and mode checked on the handle
//! ```
//!
//! Checks are made on the opened handle (`fstat` via [`File::metadata`]),
//! never on the path before re-opening it, so a file swapped between the
//! check and the use (a symlink to another file, a FIFO) is never the one
//! read. SQLite opens the database by path after `prepare_db` made or
//! checked it; its `-wal` and `-shm` files take the database's mode, and
//! the umask covers anything else created under the directory.

use std::{
    fs::{File, OpenOptions},
    io,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

/// Mode of the node's directory.
pub(crate) const DIR_MODE: u32 = 0o700;
/// Mode of every file the node creates.
pub(crate) const FILE_MODE: u32 = 0o600;

/// A file or directory is not private, or cannot be made so.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PrivateFsError {
    /// The file system refused.
    #[error("cannot {what} {}: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Group or others have access.
    #[error(
        "{} is accessible to other users (mode {mode:o}); run `chmod {want:o} {}`",
        path.display(),
        path.display()
    )]
    NotPrivate {
        /// The path.
        path: PathBuf,
        /// Its mode.
        mode: u32,
        /// The mode wanted.
        want: u32,
    },
    /// Not a directory / not a regular file (a symlink, FIFO or device).
    #[error("{} is not a {kind}", path.display())]
    WrongKind {
        /// The path.
        path: PathBuf,
        /// "directory" or "regular file".
        kind: &'static str,
    },
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> PrivateFsError + 'a {
    move |source| PrivateFsError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Sets the process umask to 077: nothing the node (or SQLite, or a
/// library) creates is readable by anyone else.
pub(crate) fn restrict_umask() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

/// Requires `dir` to be a directory that only its owner can access.
///
/// # Errors
///
/// [`PrivateFsError`], naming the `chmod` that fixes it.
pub(crate) fn check_node_dir(dir: &Path) -> Result<(), PrivateFsError> {
    let meta = std::fs::metadata(dir).map_err(io_err("inspect the node directory", dir))?;
    if !meta.is_dir() {
        return Err(PrivateFsError::WrongKind {
            path: dir.to_path_buf(),
            kind: "directory",
        });
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(PrivateFsError::NotPrivate {
            path: dir.to_path_buf(),
            mode,
            want: DIR_MODE,
        });
    }
    Ok(())
}

/// Creates `path` afresh: `O_CREAT|O_EXCL|O_NOFOLLOW`, mode 0600. Fails if
/// anything (a file, a symlink planted by someone else) is already there.
///
/// # Errors
///
/// [`PrivateFsError::Io`].
pub(crate) fn create_new(path: &Path) -> Result<File, PrivateFsError> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .custom_flags(nofollow())
        .open(path)
        .map_err(io_err("create", path))
}

/// Makes sure a database file at `path` exists, is a regular file (not a
/// symlink) and has mode 0600: created with [`create_new`] if missing, an
/// existing one opened with `O_NOFOLLOW` and tightened on its handle.
///
/// # Errors
///
/// [`PrivateFsError`].
pub(crate) fn prepare_db(path: &Path) -> Result<(), PrivateFsError> {
    let existing = OpenOptions::new()
        .read(true)
        .custom_flags(nofollow())
        .open(path);
    let file = match existing {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            create_new(path)?;
            return Ok(());
        }
        Err(e) => return Err(io_err("open", path)(e)),
    };
    let meta = file.metadata().map_err(io_err("inspect", path))?;
    if !meta.is_file() {
        return Err(PrivateFsError::WrongKind {
            path: path.to_path_buf(),
            kind: "regular file",
        });
    }
    if meta.permissions().mode() & 0o077 != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))
            .map_err(io_err("restrict", path))?;
    }
    Ok(())
}

/// Opens `path` for reading and checks, on the handle, that it is a
/// regular file (not a FIFO, device or directory). With `private`, also
/// that group and others have no access (key files).
///
/// # Errors
///
/// [`PrivateFsError`].
pub(crate) fn open_regular(path: &Path, private: bool) -> Result<File, PrivateFsError> {
    // O_NONBLOCK: opening a FIFO must not block; a regular file ignores it.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
        .map_err(io_err("open", path))?;
    let meta = file.metadata().map_err(io_err("inspect", path))?;
    if !meta.is_file() {
        return Err(PrivateFsError::WrongKind {
            path: path.to_path_buf(),
            kind: "regular file",
        });
    }
    let mode = meta.permissions().mode() & 0o7777;
    if private && mode & 0o077 != 0 {
        return Err(PrivateFsError::NotPrivate {
            path: path.to_path_buf(),
            mode,
            want: FILE_MODE,
        });
    }
    Ok(file)
}

fn nofollow() -> i32 {
    rustix::fs::OFlags::NOFOLLOW.bits() as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_created_private_and_never_through_a_planted_link() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("state.db");
        prepare_db(&db).expect("created");
        let mode = std::fs::metadata(&db).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // An existing one that others could read is tightened.
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        prepare_db(&db).expect("tightened");
        let mode = std::fs::metadata(&db).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        // Attack: a symlink planted where the node will create its state or
        // a staging file; the target must not be created or written.
        let target = dir.path().join("elsewhere");
        let planted = dir.path().join("staging-x.db");
        std::os::unix::fs::symlink(&target, &planted).expect("symlink");
        assert!(create_new(&planted).is_err());
        assert!(!target.exists());
        let planted_db = dir.path().join("other.db");
        std::fs::write(&target, b"victim").expect("write");
        std::os::unix::fs::symlink(&target, &planted_db).expect("symlink");
        assert!(prepare_db(&planted_db).is_err());
        let mode = std::fs::metadata(&target)
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_ne!(mode, 0o600, "the link's target was not touched");
    }

    #[test]
    fn the_node_directory_must_be_private_and_fifos_are_not_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let node = dir.path().join("node");
        std::fs::create_dir(&node).expect("mkdir");
        std::fs::set_permissions(&node, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let e = check_node_dir(&node).expect_err("0755 refused");
        assert!(e.to_string().contains("chmod 700"), "{e}");
        std::fs::set_permissions(&node, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        check_node_dir(&node).expect("0700 accepted");

        let key = node.join("op.key");
        std::fs::write(&key, b"k").expect("write");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        assert!(matches!(
            open_regular(&key, true),
            Err(PrivateFsError::NotPrivate { .. })
        ));
        assert!(open_regular(&key, false).is_ok());
        let fifo = node.join("fifo");
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .expect("mkfifo");
        assert!(matches!(
            open_regular(&fifo, false),
            Err(PrivateFsError::WrongKind { .. })
        ));
    }
}
