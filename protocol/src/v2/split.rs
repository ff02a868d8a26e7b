//! Owners without a share (PROTOCOL.md §6a, last part): a list whose owner
//! holds no share of the domain is blinded by `β = β₁·β₂`, so that nobody
//! who removes one part sees `β·I(x)`.
//!
//! ```text
//!  owner:  SplitBlinding::random → y = (β₁·β₂)·I(x), announce [D₁, D₂]
//!          seal β₁ to the linker (BlindingPart::First), β₂ to hop 1 (Second)
//!  hop 1:  StepKey::combined(k_1, β₂, D₂)   (k_1·β₂⁻¹, proven against D₂)
//!  linker: StepKey::combined(k_L, β₁, D₁)   (k_L·β₁⁻¹, proven against D₁)
//! ```

use rand_core::CryptoRng;

use crate::{group::WirePoint, share::Share};

/// A split list blinding `β = β₁·β₂`. Secret: no `Clone`, no `Debug`
/// output of the scalars, zeroized with its shares.
pub struct SplitBlinding {
    first: Share,
    second: Share,
}

impl core::fmt::Debug for SplitBlinding {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SplitBlinding(..)")
    }
}

impl SplitBlinding {
    /// Two fresh uniformly random parts.
    pub fn random<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        Self {
            first: Share::random(rng),
            second: Share::random(rng),
        }
    }

    /// `[D₁, D₂] = [β₁⁻¹·G, β₂⁻¹·G]`, for the announcement's `blinding`.
    pub fn commitments(&self) -> [WirePoint; 2] {
        [
            self.first.invert().commitment(),
            self.second.invert().commitment(),
        ]
    }

    /// The owner's step scalar `β₁·β₂`.
    pub fn owner_step(&self) -> Share {
        self.first.product(&self.second)
    }

    /// `β₁`, to seal to the party that removes the blinding.
    pub fn first(&self) -> &Share {
        &self.first
    }

    /// `β₂`, to seal to hop 1.
    pub fn second(&self) -> &Share {
        &self.second
    }
}

#[cfg(test)]
mod tests {
    use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};

    use super::*;
    use crate::{
        seal::{
            open_blinding, open_blinding_part, seal_blinding_part, BlindingPart, HpkeSecretKey,
        },
        types::{ListName, ProjectId},
    };

    #[test]
    fn each_part_opens_only_as_itself_and_the_parts_multiply_to_the_owner_step() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let split = SplitBlinding::random(&mut rng);
        let hop1 = HpkeSecretKey::derive(b"hop 1");
        let (project, list) = (
            ProjectId::new("P").expect("valid"),
            ListName::new("PORTAL").expect("valid"),
        );
        let boxed = seal_blinding_part(
            &hop1.public_key(),
            &project,
            &list,
            BlindingPart::Second,
            split.second(),
            &mut rng,
        );
        let opened = open_blinding_part(&hop1, &project, &list, BlindingPart::Second, &boxed)
            .expect("opens");
        assert_eq!(opened.commitment(), split.second().commitment());
        assert!(open_blinding_part(&hop1, &project, &list, BlindingPart::First, &boxed).is_err());
        assert!(open_blinding(&hop1, &project, &list, &boxed).is_err());
        let [d1, d2] = split.commitments();
        assert_eq!(d1, split.first().invert().commitment());
        assert_eq!(d2, split.second().invert().commitment());
        assert_eq!(
            split.owner_step().commitment(),
            split.second().product(split.first()).commitment()
        );
    }
}
