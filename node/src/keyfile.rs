//! Operator and researcher key files: TOML with hex secrets, mode 0600.
//!
//! ```toml
//! # Kobling researcher key. Keep it secret.
//! signing_key = "…64 hex digits (Ed25519 secret)…"
//! hpke_key = "…64 hex digits (X25519 secret)…"    # researchers only
//! ```

use std::{io::Write, path::Path};

use anyhow::{bail, Context};
use ed25519_dalek::SigningKey;
use kobling_protocol::{
    manifest::{Ed25519Key, X25519Key},
    seal::HpkeSecretKey,
};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

#[derive(Serialize, Deserialize)]
struct File {
    signing_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hpke_key: Option<String>,
}

/// A loaded key file.
pub(crate) struct KeyFile {
    pub(crate) signing: SigningKey,
    pub(crate) hpke: Option<HpkeSecretKey>,
}

impl KeyFile {
    /// Creates a new key file (refuses to overwrite).
    pub(crate) fn create(path: &Path, with_hpke: bool) -> anyhow::Result<KeyFile> {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut()).map_err(|e| anyhow::anyhow!("no OS randomness: {e}"))?;
        let signing = SigningKey::from_bytes(&seed);
        let hpke = if with_hpke {
            let mut k = Zeroizing::new([0u8; 32]);
            getrandom::fill(k.as_mut()).map_err(|e| anyhow::anyhow!("no OS randomness: {e}"))?;
            Some(*k)
        } else {
            None
        };
        let file = File {
            signing_key: hex::encode(seed.as_ref()),
            hpke_key: hpke.map(hex::encode),
        };
        let text = Zeroizing::new(format!(
            "# Kobling {} key. Keep it secret: whoever has it can act as you.\n{}",
            if with_hpke { "researcher" } else { "operator" },
            toml::to_string(&file)?
        ));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut f = options
            .open(path)
            .with_context(|| format!("cannot create {} (it must not exist yet)", path.display()))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        Ok(KeyFile {
            signing,
            hpke: hpke.map(HpkeSecretKey::from_bytes),
        })
    }

    /// Reads a key file, refusing one readable by others. The type and
    /// mode are checked on the opened handle, which is then read: the
    /// file checked is the file read.
    pub(crate) fn load(path: &Path) -> anyhow::Result<KeyFile> {
        use std::io::Read;
        /// A key file is two hex keys and a comment; anything larger is not one.
        const MAX_KEY_FILE: u64 = 4096;
        let file = crate::private_fs::open_regular(path, true)
            .with_context(|| format!("cannot read the key file {}", path.display()))?;
        // Reserved up front: growing would leave copies of the key behind.
        let mut text = Zeroizing::new(String::with_capacity(MAX_KEY_FILE as usize + 1));
        file.take(MAX_KEY_FILE + 1)
            .read_to_string(&mut text)
            .with_context(|| format!("cannot read the key file {}", path.display()))?;
        if text.len() as u64 > MAX_KEY_FILE {
            bail!("{} is too large to be a Kobling key file", path.display());
        }
        let file: File = toml::from_str(&text)
            .with_context(|| format!("{} is not a Kobling key file", path.display()))?;
        let signing = SigningKey::from_bytes(&*secret(&file.signing_key)?);
        let hpke = file
            .hpke_key
            .as_deref()
            .map(secret)
            .transpose()?
            .map(|b| HpkeSecretKey::from_bytes(*b));
        Ok(KeyFile { signing, hpke })
    }

    /// The Ed25519 public key.
    pub(crate) fn public(&self) -> Ed25519Key {
        Ed25519Key(self.signing.verifying_key().to_bytes())
    }

    /// The X25519 public key, for researchers.
    pub(crate) fn hpke_public(&self) -> Option<X25519Key> {
        self.hpke
            .as_ref()
            .map(|k| X25519Key(*k.public_key().as_bytes()))
    }
}

fn secret(hex_text: &str) -> anyhow::Result<Zeroizing<[u8; 32]>> {
    let bytes = Zeroizing::new(hex::decode(hex_text.trim()).context("a key is not hex")?);
    let mut out = Zeroizing::new([0u8; 32]);
    if bytes.len() != 32 {
        bail!("a key must be 32 bytes (64 hex digits)");
    }
    out.copy_from_slice(&bytes);
    Ok(out)
}
