//! The cost of a register-domain conversion step beside an ordinary hop
//! (issue 15, PROTOCOL.md §10): `conversion_hop_ratio` in `kobling-sim
//! bench`.
//!
//! ```text
//!  N points ─┬─▶ ordinary hop:   decode · k·P · compress · batch proof vs K      (v1's step and proof)
//!            └─▶ conversion hop: binding proof (once) · decode · (k_p·k_R⁻¹)·P
//!                                · compress · batch proof vs K'                  (domain::ConversionStep)
//! ```
//!
//! Both run chunk by chunk in the same rayon pool on the same points; the
//! ratio is conversion time over ordinary time. A conversion is one
//! multiplication by a combined scalar, so the ratio should be ≈ 1 (the
//! binding proof is a fixed cost per list, not per point).

use std::time::Instant;

use curve25519_dalek::RistrettoPoint;
use kobling_protocol::{
    chain,
    dleq::{self, ChunkStatement},
    domain::{ChunkAt, ConversionContext, ConversionKey},
    group::WirePoint,
    hash::{hash_to_group, tags},
    hop::points_root,
    share::{Domain, Share},
    types::{ChunkIndex, HopIndex, ListName, Name, Position, ProjectId},
};
use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};
use rayon::prelude::*;

/// What the conversion benchmark measured, per point.
#[derive(Debug, Clone)]
pub struct ConversionFigures {
    /// Points measured.
    pub points: usize,
    /// An ordinary hop with its chunk proof, µs per point.
    pub hop_us: f64,
    /// A conversion step with its chunk proof and binding proof, µs per
    /// point.
    pub conversion_us: f64,
}

impl ConversionFigures {
    /// `conversion_us / hop_us`.
    pub fn ratio(&self) -> f64 {
        self.conversion_us / self.hop_us
    }
}

/// Runs both steps over `n` synthetic points in chunks of `chunk_size`,
/// in the current rayon pool. Deterministic data (seeded).
///
/// # Panics
///
/// Only if a step refuses its own honest points (a bug).
pub fn conversion_figures(n: usize, chunk_size: u32) -> ConversionFigures {
    let mut rng = ChaCha20Rng::seed_from_u64(15);
    let input: Vec<WirePoint> = (0..n as u64)
        .into_par_iter()
        .map(|i| {
            let p: RistrettoPoint = hash_to_group(tags::IDENTITY, &i.to_le_bytes());
            WirePoint(p.compress().to_bytes())
        })
        .collect();
    let size = chunk_size.max(1) as usize;
    let project = ProjectId::new("BENCH").expect("valid id");
    let target = Domain::Project(project.clone());
    let r = Domain::Register(Name::new("RESEPT").expect("valid"));
    let list = ListName::new("RESEPT").expect("valid");
    let member = Name::new("NPR").expect("valid");

    // The ordinary hop: decode, multiply, compress, prove against K.
    let k = Share::random(&mut rng);
    let key = k.commitment();
    let t = Instant::now();
    let mut sent = 0usize;
    for (c, chunk) in input.chunks(size).enumerate() {
        let decoded = chain::decode_points(chunk, 0).expect("valid points");
        let out = chain::multiply_decoded(&k, &decoded);
        let st = ChunkStatement {
            project: &project,
            list: &list,
            hop: HopIndex(1),
            chunk: ChunkIndex(c as u64),
            key,
            input_root: points_root(chunk),
            output_root: points_root(&out),
            count: chunk.len() as u64,
        };
        let proof = dleq::prove_chunk(&k, &st, &decoded, &mut rng);
        sent += out.len() + usize::from(proof.a != WirePoint([0; 32]));
    }
    let hop = t.elapsed();
    assert!(sent >= n);

    // The conversion step: the binding proof once, then per chunk.
    let k_r = Share::random(&mut rng);
    let k_p = Share::random(&mut rng);
    let t = Instant::now();
    let ctx = ConversionContext {
        from: &r,
        to: &target,
        member: &member,
    };
    let step = ConversionKey::new(ctx, &k_r, &k_p, &mut rng).into_step();
    let mut sent = 0usize;
    for (c, chunk) in input.chunks(size).enumerate() {
        let at = ChunkAt {
            target: &target,
            list: &list,
            step: HopIndex(1),
            chunk: ChunkIndex(c as u64),
            first_position: Position((c * size) as u64),
        };
        let (out, proof) = step.apply_chunk(at, chunk, &mut rng).expect("valid points");
        sent += out.len() + usize::from(proof.a != WirePoint([0; 32]));
    }
    let conversion = t.elapsed();
    assert!(sent >= n);
    let per = |d: std::time::Duration| d.as_secs_f64() * 1e6 / n.max(1) as f64;
    ConversionFigures {
        points: n,
        hop_us: per(hop),
        conversion_us: per(conversion),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_conversion_costs_about_an_ordinary_hop() {
        let f = conversion_figures(2048, 512);
        assert_eq!(f.points, 2048);
        assert!(f.hop_us > 0.0 && f.conversion_us > 0.0, "{f:?}");
        // Loose bound: the suite shares its cores; the figure itself is
        // for `kobling-sim bench`.
        assert!(f.ratio() < 3.0, "{f:?}");
    }
}
