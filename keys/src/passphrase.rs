//! A keystore passphrase, held zeroized, read from a private file (an
//! operator's file, or a systemd credential in `$CREDENTIALS_DIRECTORY`).
//!
//! ```text
//!  file (regular, mode 0600 or stricter, ≤ 4 KiB) ─▶ UTF-8, one trailing newline dropped ─▶ Passphrase
//!                                                       (Zeroizing; no Clone, Debug prints nothing)
//! ```
//!
//! The file is read into a buffer sized up front (no reallocation leaves
//! a copy behind), and every buffer that held it is zeroized when dropped.

use std::{fmt, path::Path};

use zeroize::Zeroizing;

use crate::{error::KeystoreError, files};

/// The longest passphrase file read.
pub const MAX_PASSPHRASE_FILE: usize = 4096;

/// A keystore passphrase. Zeroized on drop; neither `Clone` nor printable.
pub struct Passphrase(Zeroizing<String>);

impl Passphrase {
    /// A passphrase from a string (taken by value, and zeroized with the
    /// passphrase).
    ///
    /// # Errors
    ///
    /// [`KeystoreError::EmptyPassphrase`] for an empty string.
    pub fn new(s: String) -> Result<Self, KeystoreError> {
        let s = Zeroizing::new(s);
        if s.is_empty() {
            return Err(KeystoreError::EmptyPassphrase);
        }
        Ok(Self(s))
    }

    /// Reads the passphrase from the file at `path`: a regular file that
    /// grants nothing to group or others, at most
    /// [`MAX_PASSPHRASE_FILE`] bytes of UTF-8. One trailing newline
    /// (`\n` or `\r\n`) is not part of the passphrase.
    ///
    /// # Errors
    ///
    /// [`KeystoreError::NotFound`] if there is no such file,
    /// [`KeystoreError::InsecurePermissions`],
    /// [`KeystoreError::BadPassphraseFile`] if it is too long, not UTF-8
    /// or empty, or an I/O error.
    pub fn read_file(path: &Path) -> Result<Self, KeystoreError> {
        let bad = |problem| KeystoreError::BadPassphraseFile {
            path: path.to_path_buf(),
            problem,
        };
        let Some(mut bytes) = files::read_private(path, MAX_PASSPHRASE_FILE)? else {
            return Err(KeystoreError::NotFound {
                path: path.to_path_buf(),
            });
        };
        if bytes.len() > MAX_PASSPHRASE_FILE {
            return Err(bad("longer than 4096 bytes"));
        }
        for end in [&b"\n"[..], b"\r"] {
            if bytes.ends_with(end) {
                let keep = bytes.len() - 1;
                // Zeroizing<Vec<u8>> zeroizes only up to its length: clear
                // the byte before shortening.
                bytes[keep] = 0;
                bytes.truncate(keep);
            }
        }
        if bytes.is_empty() {
            return Err(bad("empty"));
        }
        let text = std::str::from_utf8(&bytes).map_err(|_| bad("not UTF-8"))?;
        Ok(Self(Zeroizing::new(text.to_owned())))
    }

    /// The passphrase.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(..)")
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn write(dir: &Path, name: &str, bytes: &[u8], mode: u32) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
        p
    }

    #[test]
    fn a_private_file_gives_its_passphrase_without_the_newline() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = write(d.path(), "a", b"correct horse\n", 0o600);
        assert_eq!(
            Passphrase::read_file(&p).expect("read").as_str(),
            "correct horse"
        );
        let p = write(d.path(), "b", b"crlf\r\n", 0o400);
        assert_eq!(Passphrase::read_file(&p).expect("read").as_str(), "crlf");
        let p = write(d.path(), "c", b" spaces kept \n\n", 0o600);
        assert_eq!(
            Passphrase::read_file(&p).expect("read").as_str(),
            " spaces kept \n"
        );
        assert_eq!(
            format!("{:?}", Passphrase::read_file(&p).expect("read")),
            "Passphrase(..)"
        );
    }

    #[test]
    fn an_open_empty_long_or_missing_file_is_refused() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = write(d.path(), "open", b"secret\n", 0o644);
        assert!(matches!(
            Passphrase::read_file(&p),
            Err(KeystoreError::InsecurePermissions { .. })
        ));
        let p = write(d.path(), "empty", b"\n", 0o600);
        assert!(matches!(
            Passphrase::read_file(&p),
            Err(KeystoreError::BadPassphraseFile { .. })
        ));
        let p = write(d.path(), "long", &[b'a'; MAX_PASSPHRASE_FILE + 1], 0o600);
        assert!(matches!(
            Passphrase::read_file(&p),
            Err(KeystoreError::BadPassphraseFile { .. })
        ));
        let p = write(d.path(), "latin1", b"bl\xe5b\xe6r\n", 0o600);
        assert!(matches!(
            Passphrase::read_file(&p),
            Err(KeystoreError::BadPassphraseFile { .. })
        ));
        assert!(matches!(
            Passphrase::read_file(&d.path().join("missing")),
            Err(KeystoreError::NotFound { .. })
        ));
        assert!(Passphrase::new(String::new()).is_err());
    }
}
