//! Secret hygiene of the process: where a keystore passphrase comes from,
//! and no core dumps.
//!
//! ```text
//!  --passphrase-file FILE ─┐
//!  $CREDENTIALS_DIRECTORY/kobling-passphrase (systemd LoadCredential=) ─┼─▶ Passphrase (zeroized)
//!  $KOBLING_PASSPHRASE (removed from the environment once read) ─┘   first one given wins
//! ```
//!
//! A file or a systemd credential is the way to give a node its
//! passphrase: the environment variable is read for compatibility and
//! removed at once, so that no child process inherits it and later code
//! cannot read it, but the kernel's copy of the initial environment
//! (`/proc/PID/environ`) keeps it for the life of the process, readable by
//! root (the process is not dumpable, so not by its own user).
//!
//! [`no_core_dumps`] sets `RLIMIT_CORE` to 0 and, on Linux,
//! `PR_SET_DUMPABLE` to 0: a crash writes no memory image with the keys,
//! and the process's memory cannot be read through `/proc` or ptrace by
//! its own (unprivileged) user.

use std::path::Path;

use anyhow::Context;

use kobling_keys::Passphrase;

/// The environment variable a passphrase may (less safely) come from.
pub(crate) const PASSPHRASE_ENV: &str = "KOBLING_PASSPHRASE";
/// The name of the systemd credential holding the passphrase.
pub(crate) const PASSPHRASE_CREDENTIAL: &str = "kobling-passphrase";

/// The keystore passphrase: from `file`, else from the systemd credential
/// [`PASSPHRASE_CREDENTIAL`] if `$CREDENTIALS_DIRECTORY` is set and holds
/// it, else from [`PASSPHRASE_ENV`] (removed from the environment here,
/// whether used or not). `None` if none is given.
///
/// Call before any other thread starts: the environment is changed.
///
/// # Errors
///
/// A file that cannot be read or used (see [`Passphrase::read_file`]), or
/// a variable that is not UTF-8 or empty.
pub(crate) fn passphrase(file: Option<&Path>) -> anyhow::Result<Option<Passphrase>> {
    let from_env = take_env();
    if let Some(file) = file {
        return Ok(Some(
            Passphrase::read_file(file).context("cannot read the passphrase file")?,
        ));
    }
    if let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") {
        let path = Path::new(&dir).join(PASSPHRASE_CREDENTIAL);
        if path.exists() {
            return Ok(Some(
                Passphrase::read_file(&path).context("cannot read the passphrase credential")?,
            ));
        }
    }
    from_env.transpose()
}

/// Reads and removes [`PASSPHRASE_ENV`].
fn take_env() -> Option<anyhow::Result<Passphrase>> {
    let value = std::env::var_os(PASSPHRASE_ENV)?;
    // Edition 2021: `remove_var` is safe to call; it is sound here because
    // the caller runs before any other thread exists.
    std::env::remove_var(PASSPHRASE_ENV);
    Some(match value.into_string() {
        Ok(s) => Passphrase::new(s).with_context(|| format!("{PASSPHRASE_ENV} is empty")),
        Err(os) => {
            drop(zeroize::Zeroizing::new(os.into_encoded_bytes()));
            Err(anyhow::anyhow!("{PASSPHRASE_ENV} is not UTF-8"))
        }
    })
}

/// Forbids core dumps of this process (see the module docs).
///
/// # Errors
///
/// The OS refused (the limit, or the dumpable flag).
pub(crate) fn no_core_dumps() -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{
            set_dumpable_behavior, setrlimit, DumpableBehavior, Resource, Rlimit,
        };
        setrlimit(
            Resource::Core,
            Rlimit {
                current: Some(0),
                maximum: Some(0),
            },
        )?;
        set_dumpable_behavior(DumpableBehavior::NotDumpable)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One test for everything that touches the process's environment, so
    /// that no other test runs it at the same time.
    #[test]
    fn the_passphrase_comes_from_a_file_first_and_the_variable_is_removed() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().expect("tempdir");
        let file = d.path().join("pass");
        std::fs::write(&file, "from the file\n").expect("write");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");

        std::env::set_var(PASSPHRASE_ENV, "from the environment");
        let p = passphrase(Some(&file)).expect("read").expect("given");
        assert_eq!(p.as_str(), "from the file");
        assert!(
            std::env::var_os(PASSPHRASE_ENV).is_none(),
            "removed even when unused"
        );

        std::env::set_var(PASSPHRASE_ENV, "from the environment");
        let p = passphrase(None).expect("read").expect("given");
        assert_eq!(p.as_str(), "from the environment");
        assert!(
            std::env::var_os(PASSPHRASE_ENV).is_none(),
            "removed once read"
        );
        assert!(passphrase(None).expect("nothing").is_none());

        std::env::set_var(PASSPHRASE_ENV, "");
        assert!(passphrase(None).is_err(), "an empty passphrase is refused");
        assert!(std::env::var_os(PASSPHRASE_ENV).is_none());

        // A systemd credential.
        let creds = d.path().join("creds");
        std::fs::create_dir(&creds).expect("mkdir");
        let cred = creds.join(PASSPHRASE_CREDENTIAL);
        std::fs::write(&cred, "from systemd").expect("write");
        std::fs::set_permissions(&cred, std::fs::Permissions::from_mode(0o400)).expect("chmod");
        std::env::set_var("CREDENTIALS_DIRECTORY", &creds);
        let p = passphrase(None).expect("read").expect("given");
        std::env::remove_var("CREDENTIALS_DIRECTORY");
        assert_eq!(p.as_str(), "from systemd");

        // An open file is refused, not used.
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(passphrase(Some(&file)).is_err());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn core_dumps_are_off() {
        no_core_dumps().expect("hardened");
        let limit = rustix::process::getrlimit(rustix::process::Resource::Core);
        assert_eq!((limit.current, limit.maximum), (Some(0), Some(0)));
        assert_eq!(
            rustix::process::dumpable_behavior().expect("prctl"),
            rustix::process::DumpableBehavior::NotDumpable
        );
    }
}
