//! File handling for secret files: private permissions, bounded reads,
//! atomic no-clobber creation, and best-effort overwriting before deletion.
//!
//! Every secret file is written to a temporary file in the same directory
//! (mode 0600, `O_EXCL`), fsynced, then hard-linked to its final name and
//! the temporary name removed, then the directory is fsynced. The hard link
//! makes creation atomic *and* no-clobber: a reader sees either no file or a
//! complete one, and an existing keystore or seed is never replaced (a
//! rename would silently overwrite it).

use std::{
    fs::{self, File, OpenOptions},
    io::{ErrorKind, Read, Write},
    path::Path,
    sync::atomic::{AtomicU64, Ordering},
};

use zeroize::Zeroizing;

use crate::error::KeystoreError;

/// Mode of every secret file.
pub(crate) const FILE_MODE: u32 = 0o600;
/// Mode of the keystore directory and its `domains` subdirectory.
pub(crate) const DIR_MODE: u32 = 0o700;

/// Distinguishes temporary files of concurrent writers in one process.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Creates `path` (and missing parents) as a private directory, and makes
/// it private if it already existed.
pub(crate) fn create_private_dir(path: &Path) -> Result<(), KeystoreError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, DIR_MODE);
    builder
        .create(path)
        .map_err(KeystoreError::io("create directory", path))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(DIR_MODE))
            .map_err(KeystoreError::io("set permissions of", path))?;
    }
    Ok(())
}

/// Refuses a directory that group or others can access.
pub(crate) fn check_private_dir(path: &Path) -> Result<(), KeystoreError> {
    let meta = fs::metadata(path).map_err(KeystoreError::io("inspect directory", path))?;
    check_mode(path, &meta, DIR_MODE)
}

/// Refuses a file or directory whose mode grants anything to group or
/// others.
#[cfg(unix)]
fn check_mode(path: &Path, meta: &fs::Metadata, fix: u32) -> Result<(), KeystoreError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeystoreError::InsecurePermissions {
            path: path.to_path_buf(),
            mode,
            fix,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_mode(_path: &Path, _meta: &fs::Metadata, _fix: u32) -> Result<(), KeystoreError> {
    Ok(())
}

/// Reads a private file, at most `max_len + 1` bytes (so the caller can
/// tell "too large" from "exactly at the limit"), into zeroizing memory.
/// `Ok(None)` if the file does not exist.
///
/// The permission check is made on the opened handle, so it applies to the
/// very file that is read.
pub(crate) fn read_private(
    path: &Path,
    max_len: usize,
) -> Result<Option<Zeroizing<Vec<u8>>>, KeystoreError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(KeystoreError::io("open", path)(e)),
    };
    let meta = file
        .metadata()
        .map_err(KeystoreError::io("inspect", path))?;
    if !meta.is_file() {
        return Err(KeystoreError::io("read", path)(std::io::Error::new(
            ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    check_mode(path, &meta, FILE_MODE)?;
    let limit = max_len.saturating_add(1);
    let expected = usize::try_from(meta.len()).unwrap_or(limit).min(limit);
    // Capacity for the whole file up front, so reading never reallocates and
    // leaves an unzeroized copy behind.
    let mut buf = Zeroizing::new(Vec::with_capacity(expected.saturating_add(1)));
    file.take(limit as u64)
        .read_to_end(&mut buf)
        .map_err(KeystoreError::io("read", path))?;
    Ok(Some(buf))
}

/// Whether `path` exists (a dangling symlink counts as existing, so it is
/// never silently replaced).
pub(crate) fn exists(path: &Path) -> Result<bool, KeystoreError> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(KeystoreError::io("inspect", path)(e)),
    }
}

/// Whether `path` is missing or an empty directory.
pub(crate) fn is_empty_dir(path: &Path) -> Result<bool, KeystoreError> {
    match fs::read_dir(path) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(true),
        Err(e) => Err(KeystoreError::io("list directory", path)(e)),
    }
}

/// Atomically creates `dir/name` with `bytes` and mode 0600, unless it
/// already exists. Returns `false` (and writes nothing) if it exists.
pub(crate) fn write_new(dir: &Path, name: &str, bytes: &[u8]) -> Result<bool, KeystoreError> {
    let target = dir.join(name);
    let tmp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = write_tmp(&tmp, bytes).and_then(|()| link_no_clobber(&tmp, &target));
    // The temporary name goes in every case; on success the data lives on
    // under the target name.
    let _ = fs::remove_file(&tmp);
    let created = result?;
    if created {
        sync_dir(dir)?;
    }
    Ok(created)
}

fn write_tmp(tmp: &Path, bytes: &[u8]) -> Result<(), KeystoreError> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, FILE_MODE);
    let mut file = options
        .open(tmp)
        .map_err(KeystoreError::io("create", tmp))?;
    file.write_all(bytes)
        .map_err(KeystoreError::io("write", tmp))?;
    file.sync_all().map_err(KeystoreError::io("fsync", tmp))
}

fn link_no_clobber(tmp: &Path, target: &Path) -> Result<bool, KeystoreError> {
    match fs::hard_link(tmp, target) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(KeystoreError::io("create", target)(e)),
    }
}

/// Fsyncs a directory, so a creation, rename or deletion in it is durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), KeystoreError> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(KeystoreError::io("fsync directory", dir))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Overwrites a file with zeros in place, fsyncs it, deletes it and fsyncs
/// its directory. Returns `false` if the file did not exist.
///
/// Best effort only: on SSDs (wear levelling) and copy-on-write or
/// journalling file systems (btrfs, ZFS, ext4 with `data=journal`) the old
/// blocks may survive the overwrite.
pub(crate) fn overwrite_and_remove(path: &Path) -> Result<bool, KeystoreError> {
    let mut file = match OpenOptions::new().write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(KeystoreError::io("open for overwriting", path)(e)),
    };
    let len = file
        .metadata()
        .map_err(KeystoreError::io("inspect", path))?
        .len();
    let zeros = [0u8; 4096];
    let mut left = len;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        file.write_all(&zeros[..n])
            .map_err(KeystoreError::io("overwrite", path))?;
        left -= n as u64;
    }
    file.sync_all().map_err(KeystoreError::io("fsync", path))?;
    drop(file);
    fs::remove_file(path).map_err(KeystoreError::io("delete", path))?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(true)
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn write_new_is_private_and_never_clobbers() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(write_new(dir.path(), "f", b"first").expect("write"));
        assert!(!write_new(dir.path(), "f", b"second").expect("write"));
        let path = dir.path().join("f");
        assert_eq!(fs::read(&path).expect("read"), b"first");
        let mode = fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("ls")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["f"], "no temporary file is left behind");
    }

    #[test]
    fn read_private_bounds_and_checks_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(read_private(&dir.path().join("absent"), 10)
            .expect("read")
            .is_none());
        assert!(write_new(dir.path(), "f", &[1u8; 100]).expect("write"));
        let path = dir.path().join("f");
        assert_eq!(
            read_private(&path, 1000)
                .expect("read")
                .expect("some")
                .len(),
            100
        );
        assert_eq!(
            read_private(&path, 10).expect("read").expect("some").len(),
            11
        );
        fs::set_permissions(&path, fs::Permissions::from_mode(0o604)).expect("chmod");
        assert!(matches!(
            read_private(&path, 1000),
            Err(KeystoreError::InsecurePermissions { mode: 0o604, .. })
        ));
    }

    #[test]
    fn overwrite_and_remove_deletes() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(write_new(dir.path(), "f", &[0xAB; 5000]).expect("write"));
        let path = dir.path().join("f");
        assert!(overwrite_and_remove(&path).expect("shred"));
        assert!(!exists(&path).expect("exists"));
        assert!(!overwrite_and_remove(&path).expect("shred again"));
    }
}
