//! Positive PMI + truncated SVD word vectors (Levy & Goldberg 2014; Levy, Goldberg & Dagan
//! 2015): word-context counts over a symmetric window (optionally weighted 1/d), PPMI with
//! context-distribution smoothing (`cds`) and shift `log k`, then a randomized SVD
//! (Halko, Martinsson & Tropp 2011) of the sparse PPMI matrix; vectors are `U * S^p`.
//!
//! The V x V matrices are only ever sparse (CSR); the dense matrices are V x (dim +
//! oversample). Sparse-times-dense products are Rust (rayon over rows); the dense QR and
//! the final SVD of a V x l matrix use libtorch.
use super::csr::from_rows;
pub use super::csr::Csr;
use crate::error::{Error, Result};
use crate::linalg;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PmiParams {
    pub dim: usize,
    /// Context window on each side.
    pub window: usize,
    /// Weight a co-occurrence at distance d by 1/d instead of 1.
    pub distance_weighted: bool,
    /// Context-distribution smoothing exponent (1 = none).
    pub cds: f64,
    /// Shift: PPMI = max(PMI - log(neg), 0); 1 = no shift.
    pub neg: f64,
    /// Eigenvalue weighting p: vectors are U * S^p.
    pub eig_p: f64,
    pub oversample: usize,
    pub power_iters: usize,
    pub threads: usize,
    pub seed: u64,
}

impl Default for PmiParams {
    fn default() -> Self {
        Self {
            dim: 512,
            window: 5,
            distance_weighted: false,
            cds: 0.75,
            neg: 1.0,
            eig_p: 0.5,
            oversample: 16,
            power_iters: 4,
            threads: super::word2vec::default_threads(),
            seed: 1,
        }
    }
}

impl PmiParams {
    pub fn validate(&self, vocab_size: usize) -> Result<()> {
        if self.window == 0 {
            return Err(Error::arg(
                "--window",
                "must be at least 1 (try --window 5)",
            ));
        }
        if self.dim == 0 {
            return Err(Error::arg("--dim", "must be at least 1"));
        }
        if self.dim >= vocab_size {
            return Err(Error::arg(
                "--dim",
                format!(
                    "{} must be smaller than the vocabulary size {vocab_size}; lower --dim",
                    self.dim
                ),
            ));
        }
        if !(self.cds > 0.0 && self.cds.is_finite()) {
            return Err(Error::arg("--cds", "must be a positive number (try 0.75)"));
        }
        if !(self.neg >= 1.0 && self.neg.is_finite()) {
            return Err(Error::arg("--neg", "must be >= 1 (1 = no shift)"));
        }
        if !self.eig_p.is_finite() {
            return Err(Error::arg("--eig-p", "must be a number (0, 0.5 or 1)"));
        }
        if self.threads == 0 {
            return Err(Error::arg("--threads", "must be at least 1"));
        }
        Ok(())
    }
}

/// Word-context co-occurrence counts over a symmetric window of `window` tokens each side
/// (weight 1, or 1/d with `distance_weighted`). Rows are words, columns contexts.
pub fn cooccurrence(
    tokens: &[u32],
    vocab_size: usize,
    window: usize,
    distance_weighted: bool,
) -> Csr {
    let n = tokens.len();
    let window = window.min(u16::MAX as usize);
    // Pass 1: number of (word, context) events per word.
    let mut start = vec![0usize; vocab_size + 1];
    for (t, &w) in tokens.iter().enumerate() {
        let left = t.min(window);
        let right = (n - 1 - t).min(window);
        start[w as usize + 1] += left + right;
    }
    for i in 0..vocab_size {
        start[i + 1] += start[i];
    }
    // Pass 2: events as (context << 16 | distance), grouped by word.
    let mut events = vec![0u64; start[vocab_size]];
    let mut next = start.clone();
    for (t, &w) in tokens.iter().enumerate() {
        let w = w as usize;
        let lo = t.saturating_sub(window);
        let hi = (t + window).min(n - 1);
        let mut p = next[w];
        for (c, &ctx) in tokens.iter().enumerate().take(hi + 1).skip(lo) {
            if c != t {
                events[p] = (ctx as u64) << 16 | (c.abs_diff(t) as u64);
                p += 1;
            }
        }
        next[w] = p;
    }
    drop(next);
    // Pass 3 (parallel over words): sort each word's events and merge equal contexts.
    let mut slices: Vec<&mut [u64]> = Vec::with_capacity(vocab_size);
    let mut rest: &mut [u64] = &mut events;
    for i in 0..vocab_size {
        let (a, b) = rest.split_at_mut(start[i + 1] - start[i]);
        slices.push(a);
        rest = b;
    }
    let rows: Vec<(Vec<u32>, Vec<f32>)> = slices
        .into_par_iter()
        .map(|ev| {
            ev.sort_unstable();
            let mut idx = Vec::new();
            let mut val: Vec<f32> = Vec::new();
            let mut acc = 0f64;
            let mut cur: Option<u32> = None;
            for &e in ev.iter() {
                let c = (e >> 16) as u32;
                let d = (e & 0xFFFF) as f64;
                if cur != Some(c) {
                    if let Some(pc) = cur {
                        idx.push(pc);
                        val.push(acc as f32);
                    }
                    cur = Some(c);
                    acc = 0.0;
                }
                acc += if distance_weighted { 1.0 / d } else { 1.0 };
            }
            if let Some(pc) = cur {
                idx.push(pc);
                val.push(acc as f32);
            }
            (idx, val)
        })
        .collect();
    drop(events);
    from_rows(vocab_size, vocab_size, rows)
}

/// PPMI(w, c) = max(log(#(w,c) * sum_c #c^cds / (#w * #c^cds)) - log(neg), 0),
/// with #w the row sums and #c the column sums of `counts` (Levy et al. 2015).
/// Zero entries are dropped.
pub fn ppmi(counts: &Csr, cds: f64, neg: f64) -> Csr {
    let row_sum: Vec<f64> = (0..counts.rows)
        .map(|i| counts.row(i).1.iter().map(|&v| v as f64).sum())
        .collect();
    let mut col_sum = vec![0f64; counts.cols];
    for (&j, &v) in counts.indices.iter().zip(&counts.values) {
        col_sum[j as usize] += v as f64;
    }
    let col_s: Vec<f64> = col_sum.iter().map(|&c| c.powf(cds)).collect();
    let total: f64 = col_s.iter().sum();
    let log_total = total.ln();
    let log_neg = neg.ln();
    let log_col: Vec<f64> = col_s.iter().map(|&c| c.ln()).collect();
    let rows: Vec<(Vec<u32>, Vec<f32>)> = (0..counts.rows)
        .into_par_iter()
        .map(|i| {
            let (idx, val) = counts.row(i);
            let base = log_total - row_sum[i].ln() - log_neg;
            let mut oi = Vec::with_capacity(idx.len());
            let mut ov = Vec::with_capacity(idx.len());
            for (&j, &v) in idx.iter().zip(val) {
                let pmi = (v as f64).ln() + base - log_col[j as usize];
                if pmi > 0.0 {
                    oi.push(j);
                    ov.push(pmi as f32);
                }
            }
            (oi, ov)
        })
        .collect();
    from_rows(counts.rows, counts.cols, rows)
}

fn to_tensor(x: &[f32], rows: usize, cols: usize) -> Result<Tensor> {
    Ok(Tensor::f_from_slice(x)?.f_view([rows as i64, cols as i64])?)
}

fn from_tensor(t: &Tensor) -> Result<Vec<f32>> {
    let t = t.f_to_kind(Kind::Float)?.f_contiguous()?;
    let n = t.numel();
    let mut v = super::hugepage_vec(n);
    t.f_copy_data(&mut v, n)?;
    Ok(v)
}

/// Orthonormal basis of the columns of `y` (rows x cols, row-major) and back to row-major:
/// [`linalg::orthonormalize`] (Cholesky QR, several times faster than Householder QR on
/// these tall matrices). `passes` = 2 is CholeskyQR2 (orthogonal to f32 precision); 1 pass
/// is enough between power iterations, where only the subspace matters.
fn orthonormalize(y: &[f32], rows: usize, cols: usize, passes: usize) -> Result<Vec<f32>> {
    let y = to_tensor(y, rows, cols)?;
    from_tensor(&linalg::orthonormalize(&y, passes)?.0)
}

/// A truncated SVD's left side: `u` is rows x k (row-major), each column signed so that its
/// largest-|value| entry is positive; `s` the k singular values (descending). (The right
/// singular vectors are not formed: word vectors need U and S.)
pub struct Svd {
    pub k: usize,
    pub u: Vec<f32>,
    pub s: Vec<f32>,
}

/// Randomized SVD of `a` (Halko, Martinsson & Tropp 2011, algorithm 4.4): rank `k`,
/// `oversample` extra columns, `power_iters` subspace iterations with QR in between.
pub fn randomized_svd(
    a: &Csr,
    k: usize,
    oversample: usize,
    power_iters: usize,
    seed: u64,
    log: &dyn Fn(&str),
) -> Result<Svd> {
    let (m, n) = (a.rows, a.cols);
    let l = (k + oversample).min(m).min(n);
    if k == 0 || k > l {
        return Err(Error::arg(
            "--dim",
            format!("rank {k} is impossible for a {m} x {n} matrix"),
        ));
    }
    let at = a.transpose();
    let omega = gaussian(n * l, seed);
    let t = std::time::Instant::now();
    let (mut t_mul, mut t_qr) = (0f64, 0f64);
    let mut timed_mul = |m: &Csr, x: &[f32]| {
        let t = std::time::Instant::now();
        let y = m.mul_dense(x, l);
        t_mul += t.elapsed().as_secs_f64();
        y
    };
    let mut timed_qr = |y: &[f32], rows: usize, passes: usize| {
        let t = std::time::Instant::now();
        let q = orthonormalize(y, rows, l, passes);
        t_qr += t.elapsed().as_secs_f64();
        q
    };
    let mut q = timed_qr(
        &timed_mul(a, &omega),
        m,
        if power_iters == 0 { 2 } else { 1 },
    )?;
    drop(omega);
    for it in 0..power_iters {
        let z = timed_qr(&timed_mul(&at, &q), n, 1)?;
        let last = it + 1 == power_iters;
        q = timed_qr(&timed_mul(a, &z), m, if last { 2 } else { 1 })?;
        log(&format!(
            "power iteration {}/{power_iters} done ({:.1}s)",
            it + 1,
            t.elapsed().as_secs_f64()
        ));
        crate::interrupt::stop_unwritten("pmi")?;
    }
    // B = Q^T A (l x n); we hold B^T = A^T Q (n x l) = Q2 R (Cholesky QR) and
    // R = Ur S Vr^T (a small l x l SVD), so B = Vr S (Q2 Ur)^T and A ~ (Q Vr) S (Q2 Ur)^T.
    let bt = to_tensor(&timed_mul(&at, &q), n, l)?;
    let (_q2, r) = linalg::orthonormalize(&bt, 2)?;
    drop(bt);
    let (_ur, sr, vr) = r.f_svd(true, true)?;
    let vr = vr.f_narrow(1, 0, k as i64)?; // l x k
    let u = flip_signs(&to_tensor(&q, m, l)?.f_matmul(&vr)?)?;
    log(&format!(
        "randomized SVD: {:.1}s in sparse x dense products, {:.1}s in QR, {:.1}s in all",
        t_mul,
        t_qr,
        t.elapsed().as_secs_f64()
    ));
    Ok(Svd {
        k,
        u: from_tensor(&u)?,
        s: from_tensor(&sr.f_narrow(0, 0, k as i64)?)?,
    })
}

/// Signs each column of `u` so that its largest-|value| entry (the first, on ties) is
/// positive, as sklearn's `svd_flip` does. Singular vectors are defined only up to sign, and
/// without a convention the signs follow the random start and even the last bit of the QR:
/// between seeds 1 and 2 on WikiText-2, 273 of 512 columns came out negated, the leading
/// ones otherwise equal (|cos| > 0.999). Negation is exact, so nothing else changes.
fn flip_signs(u: &Tensor) -> Result<Tensor> {
    let at = u.f_abs()?.f_argmax(0, true)?; // 1 x k: row of each column's largest |value|
    let signs = u.f_gather(0, &at, false)?.f_sign()?; // 0 only for an all-zero column
    Ok(u.f_mul(&signs)?)
}

/// Standard normal f32s ([`crate::random::fill_standard_normal`] on a seeded `StdRng`),
/// sampled in f64 through a small buffer: a whole f64 copy of the n x l start matrix
/// would double its memory.
fn gaussian(len: usize, seed: u64) -> Vec<f32> {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    // Even, so that the pieces keep the pairs of one fill of all `len` values.
    let mut buf = [0f64; 1024];
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let piece = &mut buf[..(len - out.len()).min(1024)];
        crate::random::fill_standard_normal(&mut rng, piece);
        out.extend(piece.iter().map(|&x| x as f32));
    }
    out
}

/// What the PMI pipeline reports besides the vectors.
#[derive(Debug, Clone, Serialize)]
pub struct PmiStats {
    pub count_nnz: usize,
    pub ppmi_nnz: usize,
    pub seconds_counts: f64,
    pub seconds_ppmi: f64,
    pub seconds_svd: f64,
    /// All `dim` singular values, descending.
    pub singular_values: Vec<f32>,
}

/// The whole pipeline: counts, PPMI, randomized SVD, `U * S^p`. Returns V x dim row-major.
pub fn ppmi_svd(
    tokens: &[u32],
    vocab_size: usize,
    params: &PmiParams,
    log: &(dyn Fn(&str) + Sync),
) -> Result<(Vec<f32>, PmiStats)> {
    params.validate(vocab_size)?;
    super::check_tokens(tokens, vocab_size)?;
    tch::set_num_threads(params.threads as i32);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(params.threads)
        .build()
        .map_err(|e| Error::arg("--threads", e.to_string()))?;
    pool.install(|| {
        let t0 = std::time::Instant::now();
        let counts = cooccurrence(tokens, vocab_size, params.window, params.distance_weighted);
        crate::interrupt::stop_unwritten("pmi")?;
        let seconds_counts = t0.elapsed().as_secs_f64();
        log(&format!(
            "co-occurrence counts: {} non-zeros ({seconds_counts:.1}s)",
            counts.nnz()
        ));
        let t1 = std::time::Instant::now();
        let count_nnz = counts.nnz();
        let m = ppmi(&counts, params.cds, params.neg);
        drop(counts);
        crate::interrupt::stop_unwritten("pmi")?;
        let seconds_ppmi = t1.elapsed().as_secs_f64();
        log(&format!("PPMI: {} non-zeros ({seconds_ppmi:.1}s)", m.nnz()));
        let t2 = std::time::Instant::now();
        let svd = randomized_svd(
            &m,
            params.dim,
            params.oversample,
            params.power_iters,
            params.seed,
            log,
        )?;
        let seconds_svd = t2.elapsed().as_secs_f64();
        let k = params.dim;
        let weights: Vec<f32> = svd
            .s
            .iter()
            .map(|&s| (s.max(0.0) as f64).powf(params.eig_p) as f32)
            .collect();
        let mut out = svd.u;
        for row in out.chunks_exact_mut(k) {
            for (x, w) in row.iter_mut().zip(&weights) {
                *x *= w;
            }
        }
        Ok((
            out,
            PmiStats {
                count_nnz,
                ppmi_nnz: m.nnz(),
                seconds_counts,
                seconds_ppmi,
                seconds_svd,
                singular_values: svd.s.clone(),
            },
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embed_pmi_counts_and_ppmi_by_hand() {
        // Corpus "a b a c" (ids a=0 b=1 c=2), window 1:
        // pairs (a,b) (b,a) (b,a) (a,b) (a,c) (c,a).
        let counts = cooccurrence(&[0, 1, 0, 2], 3, 1, false);
        assert_eq!(counts.get(0, 1), 2.0);
        assert_eq!(counts.get(1, 0), 2.0);
        assert_eq!(counts.get(0, 2), 1.0);
        assert_eq!(counts.get(2, 0), 1.0);
        assert_eq!(counts.get(0, 0), 0.0);
        assert_eq!(counts.get(1, 2), 0.0);
        assert_eq!(counts.nnz(), 4);
        // Window 2, weighted: (a,a) at distance 2 twice -> 0.5 + 0.5; (b,c) distance 2.
        let w = cooccurrence(&[0, 1, 0, 2], 3, 2, true);
        assert_eq!(w.get(0, 0), 1.0);
        assert_eq!(w.get(1, 2), 0.5);
        assert_eq!(w.get(0, 1), 2.0);

        // Row sums: a=3, b=2, c=1; column sums the same. cds = 1, neg = 1:
        // PMI(a,b) = ln(2 * 6 / (3 * 2)) = ln 2; PMI(a,c) = ln(1*6/(3*1)) = ln 2;
        // PMI(b,a) = ln(2*6/(2*3)) = ln 2; PMI(c,a) = ln 2.
        let p = ppmi(&counts, 1.0, 1.0);
        for (i, j) in [(0, 1), (0, 2), (1, 0), (2, 0)] {
            assert!((p.get(i, j) - 2f32.ln()).abs() < 1e-6, "{i},{j}");
        }
        // Shift by ln 2 removes everything (PMI - ln 2 = 0 is not positive).
        assert_eq!(ppmi(&counts, 1.0, 2.0).nnz(), 0);
        // cds 0.5: sum_c = sqrt3 + sqrt2 + 1; PMI(a,b) = ln(2 * S / (3 * sqrt 2)).
        let s = 3f64.sqrt() + 2f64.sqrt() + 1.0;
        let p = ppmi(&counts, 0.5, 1.0);
        let want = (2.0 * s / (3.0 * 2f64.sqrt())).ln() as f32;
        assert!((p.get(0, 1) - want).abs() < 1e-6);
        // PMI(b,a) = ln(2 * S / (2 * sqrt 3)) = ln(S / sqrt 3) > 0.
        let want = (s / 3f64.sqrt()).ln() as f32;
        assert!((p.get(1, 0) - want).abs() < 1e-6);
    }

    #[test]
    fn embed_randomized_svd_recovers_low_rank() {
        // A = sum_r s_r u_r v_r^T with known orthogonal u, v (built by QR of random matrices).
        let (m, n, r) = (120, 90, 4);
        let uq = orthonormalize(&gaussian(m * r, 1), m, r, 2).unwrap();
        let vq = orthonormalize(&gaussian(n * r, 2), n, r, 2).unwrap();
        let s = [10.0f32, 5.0, 2.0, 1.0];
        let mut rows = Vec::new();
        for i in 0..m {
            let mut idx = Vec::new();
            let mut val = Vec::new();
            for j in 0..n {
                let x: f32 = (0..r).map(|q| s[q] * uq[i * r + q] * vq[j * r + q]).sum();
                idx.push(j as u32);
                val.push(x);
            }
            rows.push((idx, val));
        }
        let a = from_rows(m, n, rows);
        let svd = randomized_svd(&a, r, 5, 2, 3, &|_| {}).unwrap();
        let other = randomized_svd(&a, r, 5, 2, 4, &|_| {}).unwrap();
        for q in 0..r {
            assert!((svd.s[q] - s[q]).abs() < 1e-3 * s[q], "{:?}", svd.s);
            // |<u_q, true u_q>| ~ 1
            let d: f32 = (0..m).map(|i| svd.u[i * r + q] * uq[i * r + q]).sum();
            assert!((d.abs() - 1.0).abs() < 1e-3, "u {q}: {d}");
            // The sign convention: the largest |entry| is positive, so another random start
            // gives the same column, not its negation.
            let col: Vec<f32> = (0..m).map(|i| svd.u[i * r + q]).collect();
            let big = col
                .iter()
                .fold(0f32, |b, &x| if x.abs() > b.abs() { x } else { b });
            assert!(big > 0.0, "u {q}: largest entry {big}");
            let d: f32 = (0..m).map(|i| svd.u[i * r + q] * other.u[i * r + q]).sum();
            assert!((d - 1.0).abs() < 1e-3, "u {q} across seeds: {d}");
        }
    }

    #[test]
    fn embed_pmi_gaussian_is_one_fill_of_the_shared_sampler() {
        use rand::SeedableRng;
        let len = 2 * 1024 + 3; // several pieces, the last one odd
        let mut want = vec![0f64; len];
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        crate::random::fill_standard_normal(&mut rng, &mut want);
        let want: Vec<f32> = want.iter().map(|&x| x as f32).collect();
        assert_eq!(gaussian(len, 5), want);
    }

    #[test]
    fn embed_pmi_rejects_bad_params() {
        let p = PmiParams {
            dim: 3,
            ..PmiParams::default()
        };
        let err = ppmi_svd(&[0, 1, 2], 3, &p, &|_| {})
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--dim") && err.contains("vocabulary size 3"),
            "{err}"
        );
        let p = PmiParams {
            dim: 1,
            window: 0,
            ..PmiParams::default()
        };
        let err = ppmi_svd(&[0, 1, 2], 3, &p, &|_| {})
            .unwrap_err()
            .to_string();
        assert!(err.contains("--window"), "{err}");
    }
}
