//! Criterion benchmarks of the protocol's per-point costs, each beside the
//! raw curve25519-dalek kernel it is measured against (PROTOCOL.md §12):
//! decompress + variable-base scalar multiplication + batched compression.
//!
//! Run with `cargo bench -p kobling-protocol`. Throughput is per point, so
//! criterion reports points/second; the ratio kernel/hop is the figure the
//! performance targets are stated in.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use curve25519_dalek::{ristretto::CompressedRistretto, RistrettoPoint, Scalar};
use kobling_protocol::{
    chain,
    dleq::{self, ChunkStatement},
    group::WirePoint,
    hash::{hash_to_group, tags},
    share::Share,
    types::{ChunkIndex, Digest, HopIndex, ListName, ProjectId},
};
use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};
use rayon::prelude::*;

const N: usize = 4096;

fn inputs() -> Vec<WirePoint> {
    (0..N as u64)
        .map(|i| {
            WirePoint(
                hash_to_group(tags::IDENTITY, &i.to_le_bytes())
                    .compress()
                    .to_bytes(),
            )
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let share = Share::random(&mut rng);
    let scalar = Scalar::random(&mut rng);
    let input = inputs();
    let project = ProjectId::new("BENCH").expect("valid");
    let list = ListName::new("NPR").expect("valid");

    let mut g = c.benchmark_group("per_point");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(20);

    g.bench_function("hash_to_group", |b| {
        b.iter(|| {
            (0..N as u64)
                .into_par_iter()
                .map(|i| hash_to_group(tags::IDENTITY, &i.to_le_bytes()))
                .collect::<Vec<_>>()
        })
    });

    // The floor: dalek directly, same thread pool, same batch shape.
    g.bench_function("kernel_raw_dalek", |b| {
        let half = scalar.div_by_2();
        b.iter(|| {
            input
                .par_chunks(chain::BLOCK)
                .flat_map_iter(|block| {
                    let ps: Vec<RistrettoPoint> = block
                        .iter()
                        .map(|w| half * CompressedRistretto(w.0).decompress().expect("valid"))
                        .collect();
                    RistrettoPoint::double_and_compress_batch(&ps)
                })
                .collect::<Vec<_>>()
        })
    });

    g.bench_function("scalar_mul_only", |b| {
        let ps = chain::decode_points(&input, 0).expect("valid");
        b.iter(|| ps.par_iter().map(|p| scalar * p).collect::<Vec<_>>())
    });

    g.bench_function("chain_step", |b| {
        b.iter(|| chain::apply_share(&share, &input, 0).expect("valid"))
    });

    let decoded = chain::decode_points(&input, 0).expect("valid");
    let output = chain::multiply_decoded(&share, &decoded);
    let decoded_out = chain::decode_points(&output, 0).expect("valid");
    let statement = ChunkStatement {
        project: &project,
        list: &list,
        hop: HopIndex(1),
        chunk: ChunkIndex(0),
        key: share.commitment(),
        input_root: Digest([1; 32]),
        output_root: Digest([2; 32]),
        count: N as u64,
    };
    g.bench_function("proof_generation", |b| {
        b.iter_batched(
            || ChaCha20Rng::seed_from_u64(2),
            |mut rng| dleq::prove_chunk(&share, &statement, &decoded, &mut rng),
            BatchSize::SmallInput,
        )
    });
    let proof = dleq::prove_chunk(&share, &statement, &decoded, &mut rng);
    g.bench_function("proof_verification", |b| {
        b.iter(|| dleq::verify_chunk(&statement, &decoded, &decoded_out, &proof).expect("valid"))
    });
    g.bench_function("proof_verification_with_decode", |b| {
        b.iter(|| {
            let i = chain::decode_points(&input, 0).expect("valid");
            let o = chain::decode_points(&output, 0).expect("valid");
            dleq::verify_chunk(&statement, &i, &o, &proof).expect("valid")
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
