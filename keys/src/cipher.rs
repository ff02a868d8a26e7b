//! XChaCha20-Poly1305 with detached buffers, so plaintext only ever lives
//! in zeroizing memory.
//!
//! A sealed message is `ciphertext ‖ tag` (16-byte Poly1305 tag at the end),
//! the layout of libsodium and of the `aead` crate's `encrypt`.

use chacha20poly1305::{
    aead::{AeadInOut, KeyInit},
    Key, Tag, XChaCha20Poly1305, XNonce,
};
use zeroize::Zeroizing;

/// Nonce length of XChaCha20-Poly1305.
pub(crate) const NONCE_LEN: usize = 24;
/// Tag length of Poly1305.
pub(crate) const TAG_LEN: usize = 16;

/// The message could not be sealed (it is longer than XChaCha20 allows,
/// 256 GiB, which no caller comes near) or opened (wrong key, nonce or
/// AAD, or altered ciphertext).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AeadFailure;

/// Encrypts `plaintext`, returning `ciphertext ‖ tag`.
pub(crate) fn seal(
    key: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, AeadFailure> {
    let cipher = XChaCha20Poly1305::new(<&Key>::from(key));
    let mut out = Vec::with_capacity(plaintext.len() + TAG_LEN);
    out.extend_from_slice(plaintext);
    let tag = cipher
        .encrypt_inout_detached(<&XNonce>::from(nonce), aad, out.as_mut_slice().into())
        .map_err(|_| AeadFailure)?;
    out.extend_from_slice(&tag);
    Ok(out)
}

/// Decrypts `ciphertext ‖ tag` into zeroizing memory.
pub(crate) fn open(
    key: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, AeadFailure> {
    let body_len = sealed.len().checked_sub(TAG_LEN).ok_or(AeadFailure)?;
    let (body, tag) = sealed.split_at(body_len);
    let mut tag_bytes = [0u8; TAG_LEN];
    tag_bytes.copy_from_slice(tag);
    let cipher = XChaCha20Poly1305::new(<&Key>::from(key));
    let mut buf = Zeroizing::new(body.to_vec());
    cipher
        .decrypt_inout_detached(
            <&XNonce>::from(nonce),
            aad,
            buf.as_mut_slice().into(),
            <&Tag>::from(&tag_bytes),
        )
        .map_err(|_| AeadFailure)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_input_is_authenticated() {
        let key = [7u8; 32];
        let nonce = [9u8; NONCE_LEN];
        let sealed = seal(&key, &nonce, b"aad", b"secret seed").expect("seal");
        assert_eq!(sealed.len(), 11 + TAG_LEN);
        assert_eq!(
            open(&key, &nonce, b"aad", &sealed)
                .expect("open")
                .as_slice(),
            b"secret seed"
        );
        assert_eq!(open(&[8; 32], &nonce, b"aad", &sealed), Err(AeadFailure));
        assert_eq!(
            open(&key, &[0; NONCE_LEN], b"aad", &sealed),
            Err(AeadFailure)
        );
        assert_eq!(open(&key, &nonce, b"aaD", &sealed), Err(AeadFailure));
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert_eq!(open(&key, &nonce, b"aad", &bad), Err(AeadFailure));
        }
        assert_eq!(
            open(&key, &nonce, b"aad", &sealed[..TAG_LEN - 1]),
            Err(AeadFailure)
        );
    }
}
