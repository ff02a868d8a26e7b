//! A key-erasing generator for the randomness behind secrets (issue 12
//! item 11): list blindings `β`, content keys, HPKE ephemeral keys, DLEQ
//! nonce hedges and the owner's shuffle.
//!
//! ```text
//!  seed (Zeroizing, consumed) ─▶ key₀
//!  refill: SHAKE256(tag ‖ keyᵢ) ─▶ keyᵢ₊₁ ‖ 256 output bytes     (keyᵢ wiped)
//!  output: bytes handed out of the buffer are wiped as they leave
//! ```
//!
//! Why not `rand_chacha`: its state (the ChaCha key) cannot be wiped from
//! outside without `unsafe`, and it regenerates every output ever drawn,
//! past and future, so a memory image taken at any time while it lives
//! gives away every β and content key it made. This generator keeps only
//! the *next* key and the not-yet-used output (Bernstein's "fast-key-erasure"
//! construction, 2017), wipes each key as soon as it derived the next,
//! wipes bytes as it hands them out, and wipes itself on drop (the SHAKE
//! sponge states are zeroized on drop too, `shake`'s `zeroize` feature). A
//! memory image therefore never reveals output already drawn.
//!
//! It is deterministic from its seed (tests and `sim` stay reproducible);
//! the node seeds it from the OS.

use core::{convert::Infallible, fmt};

use rand_core::{TryCryptoRng, TryRng};
use shake::{
    digest::{ExtendableOutput, Update, XofReader},
    Shake256,
};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Domain-separation tag of the refill.
const TAG: &[u8] = b"KOBLING-V1-ERASING-RNG";
/// Output bytes per refill.
const BUFFER: usize = 256;

/// A forward-secure deterministic generator: see the [module](self) docs.
pub struct ErasingRng {
    key: [u8; 32],
    buffer: [u8; BUFFER],
    /// The next unused byte of `buffer` (`BUFFER` = empty).
    next: usize,
}

impl ErasingRng {
    /// A generator seeded with `seed`, which is consumed (and wiped when
    /// the caller's `Zeroizing` is dropped here).
    pub fn from_seed(seed: Zeroizing<[u8; 32]>) -> Self {
        Self {
            key: *seed,
            buffer: [0; BUFFER],
            next: BUFFER,
        }
    }

    /// Draws a fresh 32-byte seed (e.g. for one list's own generator),
    /// wiped when the returned value is dropped.
    pub fn seed(&mut self) -> Zeroizing<[u8; 32]> {
        let mut s = Zeroizing::new([0u8; 32]);
        self.fill(s.as_mut());
        s
    }

    fn refill(&mut self) {
        let mut h = Shake256::default();
        h.update(&(TAG.len() as u64).to_le_bytes());
        h.update(TAG);
        h.update(&self.key);
        let mut reader = h.finalize_xof();
        reader.read(&mut self.key);
        reader.read(&mut self.buffer);
        self.next = 0;
    }

    fn fill(&mut self, dst: &mut [u8]) {
        let mut done = 0;
        while done < dst.len() {
            if self.next == BUFFER {
                self.refill();
            }
            let n = (dst.len() - done).min(BUFFER - self.next);
            let src = &mut self.buffer[self.next..self.next + n];
            dst[done..done + n].copy_from_slice(src);
            src.zeroize();
            self.next += n;
            done += n;
        }
    }
}

impl TryRng for ErasingRng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = Zeroizing::new([0u8; 4]);
        self.fill(b.as_mut());
        Ok(u32::from_le_bytes(*b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = Zeroizing::new([0u8; 8]);
        self.fill(b.as_mut());
        Ok(u64::from_le_bytes(*b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        self.fill(dst);
        Ok(())
    }
}

impl TryCryptoRng for ErasingRng {}

impl Drop for ErasingRng {
    fn drop(&mut self) {
        self.key.zeroize();
        self.buffer.zeroize();
    }
}

impl ZeroizeOnDrop for ErasingRng {}

impl fmt::Debug for ErasingRng {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ErasingRng(<secret>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::Rng;

    fn rng(b: u8) -> ErasingRng {
        ErasingRng::from_seed(Zeroizing::new([b; 32]))
    }

    #[test]
    fn deterministic_and_seed_dependent() {
        let (mut a, mut b, mut c) = (rng(1), rng(1), rng(2));
        let mut x = [0u8; 1000];
        let mut y = [0u8; 1000];
        let mut z = [0u8; 1000];
        a.fill_bytes(&mut x);
        b.fill_bytes(&mut y);
        c.fill_bytes(&mut z);
        assert_eq!(x, y);
        assert_ne!(x, z);
        // Split draws give the same stream as one draw.
        let mut d = rng(1);
        let mut parts = [0u8; 1000];
        for chunk in parts.chunks_mut(37) {
            d.fill_bytes(chunk);
        }
        assert_eq!(parts, x);
        let mut e = rng(1);
        let first = e.next_u64();
        assert_eq!(first.to_le_bytes(), x[..8]);
    }

    /// What issue 12 item 11 asks: after output is drawn, nothing in the
    /// generator's memory is that output or lets anyone recompute it (the
    /// key was replaced, the used bytes wiped).
    #[test]
    fn drawn_output_and_spent_keys_are_wiped() {
        let mut r = rng(7);
        let first_key = r.key;
        let mut beta = [0u8; 32];
        r.fill_bytes(&mut beta);
        assert_ne!(
            r.key, first_key,
            "the seed key is replaced at the first refill"
        );
        assert!(
            r.buffer[..32].iter().all(|&b| b == 0),
            "handed-out bytes are wiped"
        );
        assert!(!r.buffer.windows(32).any(|w| w == beta));
        // The state left cannot regenerate beta: a generator started from
        // the current key produces a different stream.
        let mut from_now = ErasingRng::from_seed(Zeroizing::new(r.key));
        let mut again = [0u8; 32];
        from_now.fill_bytes(&mut again);
        assert_ne!(again, beta);
    }
}
