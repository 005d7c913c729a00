//! Timings behind the choices in `matrix.rs` (ignored: run with `--ignored --nocapture`).
//! Dense or fast Hadamard per shape is measured by `fixclf bench heads` (`crate::bench::heads`).
use super::*;
use std::time::Instant;

#[test]
#[ignore]
fn classifier_bench_orthogonal_build() {
    let (c, n) = (33_278i64, 512i64);
    let t0 = Instant::now();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let a = gaussian(c, n, &mut rng);
    let t1 = Instant::now();
    let q = householder_q(&a);
    let t2 = Instant::now();
    let q2 = orthonormal_columns(&a);
    let t3 = Instant::now();
    let diff = (&q - &q2).abs().max().double_value(&[]);
    println!(
        "gaussian {:.0} ms, householder QR {:.0} ms, cholesky QR {:.0} ms, max diff {diff:e}",
        (t1 - t0).as_secs_f64() * 1e3,
        (t2 - t1).as_secs_f64() * 1e3,
        (t3 - t2).as_secs_f64() * 1e3
    );
}
