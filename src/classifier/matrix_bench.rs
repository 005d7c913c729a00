//! Timings behind the choices in `matrix.rs` (ignored: run with `--ignored --nocapture`).
use super::*;
use std::time::Instant;

#[test]
#[ignore]
fn classifier_hadamard_dense_or_fast() {
    let time = |f: &dyn Fn() -> Tensor| {
        let _ = f();
        let t0 = Instant::now();
        for _ in 0..5 {
            let _ = f();
        }
        t0.elapsed().as_secs_f64() * 1e3 / 5.0
    };
    println!("threads {}", tch::get_num_threads());
    for (c, n) in [
        (10, 64),
        (100, 342),
        (100, 1024),
        (300, 512),
        (1000, 256),
        (1000, 960),
        (1000, 2048),
        (10_000, 512),
        (33_278, 512),
    ] {
        for m in [128i64, 700] {
            let x = Tensor::randn([m, n], (Kind::Float, Device::Cpu));
            let g = Tensor::randn([m, c], (Kind::Float, Device::Cpu));
            let mut ms = Vec::new();
            for dense in [true, false] {
                let q = FixedMatrix::hadamard_as(c, n, 1, dense).unwrap();
                ms.push(time(&|| q.project(&x)));
                ms.push(time(&|| {
                    let _ = q.project(&x);
                    q.project_transpose(&g)
                }));
            }
            println!(
                "C {c:6} N {n:5} batch {m:4}: dense fwd {:8.3} fwd+T {:8.3} | fast fwd {:8.3} fwd+T {:8.3} ms",
                ms[0], ms[1], ms[2], ms[3]
            );
        }
    }
}

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
