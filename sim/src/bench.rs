//! Per-point costs of a hop, measured beside the raw curve25519-dalek
//! kernel in the same process run (issue 6, PROTOCOL.md §12).
//!
//! [`v2_figures`] measures chain v2 (issue 13): a real v2 middle hop
//! (frame decode, signed-digest check, decode, multiply, compress, digest,
//! statement signature, frame encode) beside the kernel, and the check's
//! extra cost (the owner's `A_0`, the linker's `B`). [`hop_figures`]
//! measures v1's hop and its proof parts, which strict mode still pays.
//!
//! ```text
//!  N identity points ─▶ owner step (hop 0) ─▶ hop 1 ─┬─▶ kernel: decompress · k·P · batch compress (dalek only)
//!                                                    ├─▶ hop 2: decode frame · validate · verify hop 1's proof
//!                                                    │          · k·P · prove · encode frame   (the real pipeline)
//!                                                    └─▶ verify: decode in/out · verify hop 1's proof
//! ```
//!
//! Hop 2 is a register hop exactly as a node runs it: the incoming
//! `Points` message is decoded from its postcard frame, the chunk handed
//! to [`Hop::handle_chunk`] (validation, the previous hop's proof,
//! multiplication, the chunk proof), and the outgoing message encoded.
//! Every figure is wall time divided by points, with the same rayon pool
//! (`--threads`) for the kernel and the hop.

use std::time::{Duration, Instant};

use curve25519_dalek::{ristretto::CompressedRistretto, RistrettoPoint, Scalar};
use kobling_protocol::{
    chain,
    dleq::{self, ChunkStatement},
    group::WirePoint,
    hash::{hash_to_group, tags},
    hop::{owner_chunks, owner_step, points_root, Hop, ListContext, PointChunk},
    messages::{self, Message},
    share::Share,
    types::{Attempt, ChunkIndex, HopIndex, ListName, Name, ProjectId},
};
use rand_chacha::{
    rand_core::{Rng, SeedableRng},
    ChaCha20Rng,
};
use rayon::prelude::*;

/// What the micro benchmark measured, per point.
#[derive(Debug, Clone)]
pub struct HopFigures {
    /// Points measured.
    pub points: usize,
    /// Rayon threads.
    pub threads: usize,
    /// Points per chunk.
    pub chunk_size: u32,
    /// `hash_to_group` (identifier → `I(x)`), µs per point on the pool.
    pub hash_to_group_us: f64,
    /// CPU time of this process for `hash_to_group`, µs per point.
    pub hash_to_group_cpu_us: Option<f64>,
    /// The raw dalek kernel, µs per point.
    pub kernel_us: f64,
    /// The whole hop (frame decode to frame encode), µs per point.
    pub hop_us: f64,
    /// Verifying the previous hop's chunk proofs (decoding both sides
    /// included), µs per point.
    pub verify_us: f64,
    /// Proving one's own chunk proofs, µs per point.
    pub prove_us: f64,
    /// Decompressing points alone (what the next hop pays again for the
    /// previous hop's inputs), µs per point.
    pub decompress_us: f64,
    /// One batch combination `Σ c_t·P_t` with 128-bit coefficients,
    /// their derivation included, µs per point.
    pub combination_us: f64,
    /// One chunk digest (`points_root`), µs per point.
    pub root_us: f64,
    /// CPU time of this process (all threads) for the kernel, µs per
    /// point, where the OS tells (`/proc/self/stat`): unlike wall time it
    /// does not move when other processes share the cores.
    pub kernel_cpu_us: Option<f64>,
    /// CPU time for the whole hop, µs per point.
    pub hop_cpu_us: Option<f64>,
}

impl HopFigures {
    /// `kernel / hop`: 1.0 means the hop costs no more than the kernel.
    pub fn ratio(&self) -> f64 {
        self.kernel_us / self.hop_us
    }

    /// The best `hop_ratio` the protocol allows with these kernels: a hop
    /// does the kernel, and verifying its previous hop (PROTOCOL.md §6)
    /// cannot avoid decompressing that hop's inputs, three combinations
    /// (`A` and `B` to check, `A` to prove) and three chunk digests (the
    /// previous input, this input, this output). Encoding, framing and
    /// the proofs' few fixed-base multiplications come on top.
    pub fn floor_ratio(&self) -> f64 {
        self.kernel_us
            / (self.kernel_us + self.decompress_us + 3.0 * self.combination_us + 3.0 * self.root_us)
    }

    /// The same ratio in CPU time.
    pub fn cpu_ratio(&self) -> Option<f64> {
        Some(self.kernel_cpu_us? / self.hop_cpu_us?)
    }
}

/// CPU seconds used by this process so far (user + system, all threads),
/// from `/proc/self/stat` in clock ticks of 1/100 s.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses).
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

fn cpu_per_point(start: Option<f64>, n: usize) -> Option<f64> {
    Some((cpu_seconds()? - start?) * 1e6 / n.max(1) as f64)
}

/// The floor: dalek directly on `input` (a hop's input points), a random
/// scalar, the same pool and blocks as the chain step. Microseconds per
/// point, wall and CPU.
fn kernel_floor(input: &[WirePoint], rng: &mut impl Rng) -> (f64, Option<f64>) {
    let n = input.len();
    let scalar = {
        let mut wide = [0u8; 64];
        rng.fill_bytes(&mut wide);
        Scalar::from_bytes_mod_order_wide(&wide)
    };
    let t = Instant::now();
    let cpu = cpu_seconds();
    let floor: Vec<[u8; 32]> = input
        .par_chunks(chain::BLOCK)
        .flat_map_iter(|block| {
            let half = scalar.div_by_2();
            let ps: Vec<RistrettoPoint> = block
                .iter()
                .map(|w| half * CompressedRistretto(w.0).decompress().expect("valid"))
                .collect();
            RistrettoPoint::double_and_compress_batch(&ps)
                .into_iter()
                .map(|c| c.to_bytes())
        })
        .collect();
    let out = (per_point(t.elapsed(), n), cpu_per_point(cpu, n));
    assert_eq!(floor.len(), n);
    out
}

fn per_point(d: Duration, n: usize) -> f64 {
    d.as_secs_f64() * 1e6 / n.max(1) as f64
}

/// Runs the micro benchmark on `n` synthetic points in the current rayon
/// pool. Deterministic data (seeded); only the timings vary.
///
/// # Panics
///
/// Only on an internal inconsistency (the pipeline refusing its own
/// honest chunks), which is a bug worth stopping for.
pub fn hop_figures(n: usize, chunk_size: u32) -> HopFigures {
    let mut rng = ChaCha20Rng::seed_from_u64(6);
    let project = ProjectId::new("BENCH").expect("valid id");
    let list = ListName::new("SSB").expect("valid name");
    let ctx = ListContext {
        project: project.clone(),
        list: list.clone(),
        persons: n as u64,
        chunk_size,
    };

    let t = Instant::now();
    let cpu = cpu_seconds();
    let identity: Vec<RistrettoPoint> = (0..n as u64)
        .into_par_iter()
        .map(|i| hash_to_group(tags::IDENTITY, &i.to_le_bytes()))
        .collect();
    let hash_to_group_us = per_point(t.elapsed(), n);
    let hash_to_group_cpu_us = cpu_per_point(cpu, n);

    let owner = Share::random(&mut rng);
    let k1 = Share::random(&mut rng);
    let k2 = Share::random(&mut rng);
    let hop0 = owner_step(&owner, &identity);
    drop(identity);
    let mut h1 = Hop::register(
        ctx.clone(),
        HopIndex(1),
        Name::new("NPR").expect("valid"),
        k1,
        None,
    )
    .expect("valid context");
    let frames: Vec<Vec<u8>> = owner_chunks(&ctx, &hop0)
        .map(|c| {
            let out = h1.handle_chunk(&c, &mut rng).expect("honest chunk");
            messages::encode(&Message::Points(out))
        })
        .collect();
    drop(hop0);
    let hop1_out: Vec<WirePoint> = frames
        .iter()
        .flat_map(|f| match messages::decode(f) {
            Ok(Message::Points(c)) => c.output.into_inner(),
            _ => unreachable!("frames encoded above"),
        })
        .collect();

    // (a) The floor: dalek directly on hop 2's input, same pool, same blocks.
    assert_eq!(hop1_out.len(), n);
    let (kernel_us, kernel_cpu_us) = kernel_floor(&hop1_out, &mut rng);

    // (b) Hop 2 as a node runs it.
    let mut h2 = Hop::register(
        ctx.clone(),
        HopIndex(2),
        Name::new("KPR").expect("valid"),
        k2,
        Some(h1.key()),
    )
    .expect("valid context");
    let t = Instant::now();
    let cpu = cpu_seconds();
    let mut sent = 0usize;
    for f in &frames {
        let Ok(Message::Points(chunk)) = messages::decode(f) else {
            unreachable!("frames encoded above")
        };
        let out = h2.handle_chunk(&chunk, &mut rng).expect("honest chunk");
        sent += messages::encode(&Message::Points(out)).len();
    }
    let hop_us = per_point(t.elapsed(), n);
    let hop_cpu_us = cpu_per_point(cpu, n);
    assert!(sent > 32 * n);

    // (c) The proof parts alone.
    let chunks: Vec<PointChunk> = frames
        .iter()
        .map(|f| match messages::decode(f) {
            Ok(Message::Points(c)) => c,
            _ => unreachable!("frames encoded above"),
        })
        .collect();
    let mut verify = Duration::ZERO;
    let mut prove = Duration::ZERO;
    let h1_key = h1.key();
    let hop1_statement = |c: &PointChunk, input_root, output_root| ChunkStatement {
        project: &project,
        list: &list,
        hop: HopIndex(1),
        chunk: c.chunk,
        key: h1_key,
        input_root,
        output_root,
        count: c.output.len() as u64,
    };
    let (mut decompress, mut combination, mut root) =
        (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    for c in &chunks {
        let t = Instant::now();
        let decoded = chain::decode_points(&c.output, 0).expect("valid");
        decompress += t.elapsed();
        let t = Instant::now();
        let output_root = points_root(&c.output);
        root += t.elapsed();
        let statement = hop1_statement(c, output_root, output_root);
        let t = Instant::now();
        let coefficients = statement.coefficients();
        let sum = dleq::vartime_combination(&coefficients, &decoded);
        combination += t.elapsed();
        assert_ne!(sum.compress().to_bytes(), [0; 32]);
    }
    for c in &chunks {
        let t = Instant::now();
        let input = chain::decode_points(&c.input, 0).expect("valid");
        let output = chain::decode_points(&c.output, 0).expect("valid");
        let statement = hop1_statement(c, points_root(&c.input), points_root(&c.output));
        let proof = c.proof.as_ref().expect("hop 1 proves");
        dleq::verify_chunk(&statement, &input, &output, proof).expect("honest proof");
        verify += t.elapsed();
        let t = Instant::now();
        let again = dleq::prove_chunk(&owner, &statement, &input, &mut rng);
        prove += t.elapsed();
        assert_ne!(again.a, WirePoint([0; 32]));
    }
    HopFigures {
        points: n,
        threads: rayon::current_num_threads(),
        chunk_size,
        hash_to_group_us,
        hash_to_group_cpu_us,
        kernel_us,
        hop_us,
        verify_us: per_point(verify, n),
        prove_us: per_point(prove, n),
        decompress_us: per_point(decompress, n),
        combination_us: per_point(combination, n),
        root_us: per_point(root, n),
        kernel_cpu_us,
        hop_cpu_us,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_positive_and_cover_every_point() {
        let f = hop_figures(600, 256);
        assert_eq!(f.points, 600);
        for v in [
            f.hash_to_group_us,
            f.kernel_us,
            f.hop_us,
            f.verify_us,
            f.prove_us,
            f.decompress_us,
            f.combination_us,
            f.root_us,
        ] {
            assert!(v.is_finite() && v > 0.0, "{f:?}");
        }
        // The floor adds work to the kernel: below 1, and a hop that does
        // at least that work cannot beat it by much (timing noise aside).
        assert!(f.floor_ratio() < 1.0, "{f:?}");
    }
}

/// What the chain v2 benchmark measured, per point (issue 13).
#[derive(Debug, Clone)]
pub struct V2Figures {
    /// Points measured.
    pub points: usize,
    /// The raw dalek kernel on the v2 hop's input, µs per point.
    pub kernel_us: f64,
    /// The real v2 middle hop (frame decode, digest check, statement
    /// signature check, decode, multiply, compress, digest, statement
    /// signature, frame encode), µs per point.
    pub hop_us: f64,
    /// The check's extra cost for the owner (`A_0`) and the linker (`B`,
    /// decoding `Z` included), µs per point of the list.
    pub check_us: f64,
    /// CPU time of the kernel, µs per point.
    pub kernel_cpu_us: Option<f64>,
    /// CPU time of the hop, µs per point.
    pub hop_cpu_us: Option<f64>,
    /// CPU time of `A_0` and `B`, µs per point.
    pub check_cpu_us: Option<f64>,
}

impl V2Figures {
    /// `kernel / hop` in wall time.
    pub fn ratio(&self) -> f64 {
        self.kernel_us / self.hop_us
    }

    /// `kernel / hop` in CPU time.
    pub fn cpu_ratio(&self) -> Option<f64> {
        Some(self.kernel_cpu_us? / self.hop_cpu_us?)
    }
}

/// Runs the chain v2 benchmark on `n` synthetic points in the current
/// rayon pool: owner → hop 1 → (kernel | hop 2 as a node runs it), then
/// σ, the owner's `A_0` and the linker's `B`.
///
/// # Panics
///
/// Only on an internal inconsistency (a hop refusing honest chunks).
pub fn v2_figures(n: usize, chunk_size: u32) -> V2Figures {
    use ed25519_dalek::SigningKey;
    use kobling_protocol::{
        share::Domain,
        types::Digest,
        v2::{
            combine_chunk, ChainView, ListHeader, Mode, OwnerCheckBuilder, OwnerStream,
            RegisterHop, StepKey,
        },
    };

    let mut rng = ChaCha20Rng::seed_from_u64(13);
    let project = ProjectId::new("BENCH").expect("valid id");
    let header = ListHeader {
        domain: Domain::Project(project.clone()),
        delivery: None,
        list: ListName::new("SSB").expect("valid name"),
        attempt: Attempt::FIRST,
        mode: Mode::Optimistic,
        persons: n as u64,
        chunk_size,
    };
    let keys: Vec<SigningKey> = (1..=3u8)
        .map(|i| SigningKey::from_bytes(&[i; 32]))
        .collect();
    let identity: Vec<RistrettoPoint> = (0..n as u64)
        .into_par_iter()
        .map(|i| hash_to_group(tags::IDENTITY, &i.to_le_bytes()))
        .collect();
    let y = owner_step(&Share::random(&mut rng), &identity);
    drop(identity);
    let mut owner = OwnerStream::new(header.clone()).expect("valid header");
    let mut h1 = RegisterHop::new(
        header.clone(),
        HopIndex(1),
        Name::new("NPR").expect("valid"),
        StepKey::plain(Share::random(&mut rng)),
        vec![keys[0].verifying_key()],
        Vec::new(),
    )
    .expect("valid header");
    let frames: Vec<Vec<u8>> = y
        .chunks(chunk_size as usize)
        .map(|c| {
            let msg = owner.chunk(c.to_vec(), &keys[0]).expect("chunk");
            let out = h1
                .handle_chunk(&msg, &keys[1], &mut rng)
                .expect("honest chunk");
            messages::encode(&Message::ChunkV2 {
                project: project.clone(),
                chunk: out,
            })
        })
        .collect();
    let owner_list = owner.finish(Digest::default()).expect("complete");
    let h1_key = h1.key();
    let h1_record = h1.finish().expect("complete");

    // (a) The kernel on hop 2's input, same pool, same blocks.
    let input: Vec<WirePoint> = frames
        .iter()
        .flat_map(|f| match messages::decode(f) {
            Ok(Message::ChunkV2 { chunk: c, .. }) => c.points.into_inner(),
            _ => unreachable!("frames encoded above"),
        })
        .collect();
    assert_eq!(input.len(), n);
    let (kernel_us, kernel_cpu_us) = kernel_floor(&input, &mut rng);
    drop(input);

    // (b) Hop 2 as a node runs it, frame to frame; Z kept for B.
    let mut h2 = RegisterHop::new(
        header.clone(),
        HopIndex(2),
        Name::new("KPR").expect("valid"),
        StepKey::plain(Share::random(&mut rng)),
        vec![keys[0].verifying_key(), keys[1].verifying_key()],
        vec![h1_key],
    )
    .expect("valid header");
    let mut z_frames = Vec::with_capacity(frames.len());
    let t = Instant::now();
    let cpu = cpu_seconds();
    for f in &frames {
        let Ok(Message::ChunkV2 { chunk, .. }) = messages::decode(f) else {
            unreachable!("frames encoded above")
        };
        let out = h2
            .handle_chunk(&chunk, &keys[2], &mut rng)
            .expect("honest chunk");
        z_frames.push(messages::encode(&Message::ChunkV2 {
            project: project.clone(),
            chunk: out,
        }));
    }
    let hop_us = per_point(t.elapsed(), n);
    let hop_cpu_us = cpu_per_point(cpu, n);
    let records = vec![h1_record, h2.finish().expect("complete")];

    // (c) The check: σ, the owner's A_0 over y, the linker's B over Z.
    let blinding = vec![Share::random(&mut rng).commitment()];
    let linker = Name::new("LINKER").expect("valid");
    let view = ChainView {
        header: &header,
        manifest: Digest::default(),
        owner: header.list.owner(),
        blinding: &blinding,
        owner_list: &owner_list,
        hops: &records,
        linker: (&linker, blinding[0]),
    };
    let z: Vec<_> = z_frames
        .iter()
        .map(|f| match messages::decode(f) {
            Ok(Message::ChunkV2 { chunk: c, .. }) => c.points,
            _ => unreachable!("frames encoded above"),
        })
        .collect();
    let t = Instant::now();
    let cpu = cpu_seconds();
    let sigma = view.sigma().expect("the records chain");
    let mut a0 = OwnerCheckBuilder::new(header.clone(), sigma);
    for c in y.chunks(chunk_size as usize) {
        a0.push_chunk(c).expect("own chunk");
    }
    let a0 = a0.finish(&keys[0]).expect("complete");
    let mut b = RistrettoPoint::default();
    for (c, pts) in z.iter().enumerate() {
        b += combine_chunk(&sigma, ChunkIndex(c as u64), pts).expect("valid Z");
    }
    let check_us = per_point(t.elapsed(), n);
    let check_cpu_us = cpu_per_point(cpu, n);
    assert_ne!(a0.a0.0, b.compress().to_bytes(), "different keys: A_0 ≠ B");

    V2Figures {
        points: n,
        kernel_us,
        hop_us,
        check_us,
        kernel_cpu_us,
        hop_cpu_us,
        check_cpu_us,
    }
}

#[cfg(test)]
mod v2_tests {
    use super::*;

    #[test]
    fn v2_figures_are_positive() {
        let f = v2_figures(600, 256);
        assert_eq!(f.points, 600);
        for v in [f.kernel_us, f.hop_us, f.check_us] {
            assert!(v.is_finite() && v > 0.0, "{f:?}");
        }
    }
}
