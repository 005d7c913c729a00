//! The fixed Hadamard classifier, never stored densely.
//!
//! Let `N' = next_power_of_two(N)`, `H` the `N' x N'` Sylvester-Hadamard matrix
//! (`H[i][j] = (-1)^popcount(i & j)`) and `K = ceil(C / N')`. Row `r` of `Q` belongs to block
//! `k = r / N'`, position `i = r % N'`, and is
//!
//! ```text
//! Q[r][j] = H[i][j] * d_k[j] / sqrt(N)        for j < N
//! ```
//!
//! where `d_0 = (1, ..., 1)` and `d_1 .. d_{K-1}` are seeded random +-1 vectors. So:
//! * every entry is +-1/sqrt(N) and every row has unit norm;
//! * for `C <= N'` this is exactly the paper's truncated Sylvester matrix (first `C` rows, first
//!   `N` columns); `seed` is then unused;
//! * for `C > N'` the blocks are `H D_k` restricted to the first `N` columns. Simply taking more
//!   rows of a bigger Sylvester matrix (the reference code) repeats rows: entry `(i, j)` only
//!   sees the bits of `i` that `j < N` can see, so row `i + N'` equals row `i`. The random
//!   diagonals make the blocks different; the generator also re-draws any `d_k` for which a row
//!   of block `k` would equal a row of an earlier block (`d_k * d_l` equal to a restricted
//!   Walsh row), so no two rows of `Q` are equal, ever (not only with high probability).
//!
//! Orthogonality: when `N` is a power of two the rows within one block are orthonormal
//! (`H H^T = N I`), so for `C <= N` all rows are. Rows of different blocks are not orthogonal
//! (impossible for `C > N`): their inner products are sums of `N` random signs over `N`,
//! of size about `1/sqrt(N)`. When `N` is not a power of two, `x` is zero-padded to `N'` and
//! `Q` keeps only the first `N` columns of each `H D_k`: rows stay distinct within a block (the
//! single-bit columns `1, 2, 4, ... < N` already tell any two indices apart) but are only
//! approximately orthogonal (`sum_{j<N} (-1)^popcount(d & j) / N` need not vanish).
//!
//! Forward: `Q x` for block `k` is `pad(d_k * x) H_{N'}` (first `C` outputs over all blocks,
//! divided by sqrt(N), which is folded into `d_k`), computed for all blocks at once. `H_{N'}` is
//! applied as the two-factor (mixed-radix) fast transform `H_{N'} = H_a (x) H_b`,
//! `a = 2^floor(log2(N')/2)`, `b = N'/a`: reshape to `[.., a, b]`, then `H_a X H_b` (two small
//! GEMMs, `O(N' (a + b))` per block and sample; autograd flows to `x`). `rows_for` multiplies a
//! row of `H_a` by a row of `H_b` (Kronecker), so neither path ever builds `Q`.
//!
//! The two-factor form is used, forward and (`project_transpose`, the fused cross-entropy's
//! backward) backward, because it reads the tensor about four times where a plain butterfly
//! ([`fwht`]) copies it once per level; the timings that chose it are in
//! `docs/classifier-speed.md` ("The Hadamard transform").

use crate::error::{Error, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

/// The parameters of a Hadamard fixed matrix; `Q` itself is never materialized by `project`
/// and `rows_for`.
#[derive(Debug)]
pub(crate) struct Hadamard {
    pub rows: i64,
    pub cols: i64,
    /// `N'`, the padded (power of two) transform size, `= a * b`.
    pub padded: i64,
    /// `[K, N]`: row `k` is `d_k / sqrt(N)` (entries +-1/sqrt(N)); `d_0` is all ones.
    pub signs: Tensor,
    /// `H_a` and `H_b` (f32, +-1), `a = 2^floor(log2(N')/2)`, `b = N' / a`:
    /// `H_{N'} = H_a (x) H_b` (Kronecker), so index `i = i_a * b + i_b`.
    pub ha: Tensor,
    pub hb: Tensor,
}

/// Mixed into the seed of the column signs' stream, apart from the blocks' stream.
const COLUMN_SIGNS_STREAM: u64 = 0xC01_5165;

/// `(-1)^popcount(a & b)` as +-1: entry `(a, b)` of the Sylvester matrix.
pub(crate) fn walsh(a: usize, b: usize) -> i8 {
    if (a & b).count_ones() % 2 == 0 {
        1
    } else {
        -1
    }
}

/// True when `v` (length `n`, +-1) equals row `r` of the Sylvester matrix restricted to the
/// first `n` columns, for some `r < next_power_of_two(n)`. Such an `r` is fixed by the
/// single-bit columns `v[2^b]` (all `< n`), then checked on every column.
fn is_restricted_walsh_row(v: &[i8]) -> bool {
    let n = v.len();
    if v[0] != 1 {
        return false;
    }
    let mut r = 0usize;
    let mut bit = 1usize;
    while bit < n {
        if v[bit] == -1 {
            r |= bit;
        }
        bit <<= 1;
    }
    v.iter().enumerate().all(|(j, &s)| s == walsh(r, j))
}

/// Whether a `C x N` Hadamard classifier is faster as a stored dense `Q` (one GEMM) than as
/// the fast transform. On the CPU the crossover lies between 100 x 342 and 100 x 1024 (the
/// timings per shape: `docs/classifier-speed.md`, "Dense or fast per shape"; `fixclf bench
/// heads --shapes` measures them through the whole head), so matrices up to 2^16 entries (the
/// CIFAR heads: 10 x 64, 100 x 342) are stored; the rest use the transform.
/// A fixed rule rather than a timing at start-up, so that a run and its resumption compute
/// the same way.
pub fn hadamard_prefers_dense(c: i64, n: i64) -> bool {
    c.saturating_mul(n) <= HADAMARD_DENSE_MAX
}

/// The largest `C x N` stored densely (see [`hadamard_prefers_dense`]).
const HADAMARD_DENSE_MAX: i64 = 1 << 16;

impl Hadamard {
    /// The canonical matrix (no column signs), for the tests.
    #[cfg(test)]
    pub fn new(c: i64, n: i64, seed: u64) -> Result<Self> {
        Self::with_column_signs(c, n, seed, false)
    }

    /// The matrix of the module docs (`C x N`, blocks `d_k` from `seed`), with every `d_k` also
    /// multiplied by one seeded random +-1 vector
    /// `s` when `column_signs`: `Q diag(s)`, so no row is all positive (row 0 of Sylvester's
    /// matrix is all ones, and on non-negative features, such as a ReLU network's pooled
    /// ones, its logit is never below any other row's). `Q Q^T` is unchanged, and so are the
    /// fast transform and its cost; `s` comes from its own stream, so the blocks' `d_k` are
    /// the same either way.
    pub fn with_column_signs(c: i64, n: i64, seed: u64, column_signs: bool) -> Result<Self> {
        if c < 1 || n < 1 {
            return Err(Error::arg(
                "hadamard",
                format!("needs at least one row and one column, got {c} x {n}"),
            ));
        }
        let nu = n as usize;
        let padded = nu.next_power_of_two();
        let blocks = (c as usize).div_ceil(padded);
        // The blocks are distinct cosets of the restricted Walsh rows (N' of them) among the
        // 2^N sign vectors, so at most 2^N / N' blocks exist.
        if n < 40 && blocks * padded > 1usize << n {
            return Err(Error::arg(
                "hadamard",
                format!(
                    "{c} classes need {blocks} blocks of {padded} distinct +-1 rows, but {n} \
                     columns only give 2^{n} distinct rows; use more features or another matrix"
                ),
            ));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut diag: Vec<Vec<i8>> = vec![vec![1; nu]];
        while diag.len() < blocks {
            let cand: Vec<i8> = (0..nu)
                .map(|_| if rng.gen::<bool>() { 1 } else { -1 })
                .collect();
            // Reject a diagonal that would repeat a row of an earlier block: rows (k, i) and
            // (l, i') are equal iff d_k * d_l is the restricted Walsh row i ^ i'.
            let clash = diag.iter().any(|d| {
                let prod: Vec<i8> = d.iter().zip(&cand).map(|(a, b)| a * b).collect();
                is_restricted_walsh_row(&prod)
            });
            if !clash {
                diag.push(cand);
            }
        }
        if column_signs {
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ COLUMN_SIGNS_STREAM);
            let s: Vec<i8> = (0..nu)
                .map(|_| if rng.gen::<bool>() { 1 } else { -1 })
                .collect();
            for d in &mut diag {
                d.iter_mut().zip(&s).for_each(|(x, y)| *x *= y);
            }
        }
        let scale = 1.0 / (n as f32).sqrt();
        let flat: Vec<f32> = diag.iter().flatten().map(|&s| s as f32 * scale).collect();
        let signs = Tensor::from_slice(&flat).view([blocks as i64, n]);
        let log2 = padded.trailing_zeros();
        let a = 1i64 << (log2 / 2);
        let b = padded as i64 / a;
        let eye = |k| Tensor::eye(k, (Kind::Float, Device::Cpu));
        Ok(Self {
            rows: c,
            cols: n,
            padded: padded as i64,
            signs,
            ha: fwht(&eye(a)),
            hb: fwht(&eye(b)),
        })
    }

    pub fn to_device(&self, device: Device) -> Self {
        Self {
            rows: self.rows,
            cols: self.cols,
            padded: self.padded,
            signs: self.signs.to_device(device),
            ha: self.ha.to_device(device),
            hb: self.hb.to_device(device),
        }
    }

    pub fn device(&self) -> Device {
        self.signs.device()
    }

    /// `x [.., N] -> x Q^T [.., C]`, in `x`'s kind: for each block, `pad(d_k * x) H_{N'}` by
    /// the two-factor transform `H_a X H_b` on `X = [a, b]` (two small GEMMs).
    pub fn project(&self, x: &Tensor) -> Tensor {
        let size = x.size();
        let lead = &size[..size.len() - 1];
        let k = self.signs.size()[0];
        let kind = x.kind();
        // [M, K, N]: each block sees its own sign flips of x.
        let mut z = x.reshape([-1, 1, self.cols]) * self.signs.to_kind(kind).unsqueeze(0);
        if self.padded > self.cols {
            z = z.constant_pad_nd([0, self.padded - self.cols]);
        }
        let y = self.transform(&z);
        let y = y.reshape([-1, k * self.padded]).narrow(1, 0, self.rows);
        let mut out = lead.to_vec();
        out.push(self.rows);
        y.reshape(out)
    }

    /// `y H_{N'}` for every `N'`-slice of `y` (any shape whose element count is a multiple of
    /// `N'`), as `H_a Y H_b` on each slice reshaped to `[a, b]`; returns `[slices, a, b]`.
    fn transform(&self, y: &Tensor) -> Tensor {
        let kind = y.kind();
        let (a, b) = (self.ha.size()[0], self.hb.size()[0]);
        let y = y.reshape([-1, a, b]).matmul(&self.hb.to_kind(kind));
        self.ha.to_kind(kind).matmul(&y)
    }

    /// `g [.., C] -> g Q [.., N]`. Row `r = k N' + i` of `Q` is `H[i] * d_k` (first `N`
    /// columns), so `(g Q)[j] = sum_k d_k[j] (g_k H)[j]` with `g_k` the `k`-th `N'`-slice of `g`
    /// (zero-padded past `C`): the same two-factor transform as [`project`](Self::project)
    /// (`H` is symmetric), then the signs, summed over blocks.
    pub fn project_transpose(&self, g: &Tensor) -> Tensor {
        let mut size = g.size();
        let k = self.signs.size()[0];
        let kind = g.kind();
        let mut y = g.reshape([-1, self.rows]);
        if k * self.padded > self.rows {
            y = y.constant_pad_nd([0, k * self.padded - self.rows]);
        }
        let y = self.transform(&y);
        let y = y.reshape([-1, k, self.padded]).narrow(2, 0, self.cols)
            * self.signs.to_kind(kind).unsqueeze(0);
        size.pop();
        size.push(self.cols);
        y.sum_dim_intlist(1, false, kind).reshape(size)
    }

    /// Rows of `Q` for class ids of any shape: `[..] -> [.., N]` (f32). With `i = r % N' =
    /// i_a * b + i_b`, row `i` of `H_{N'}` is `H_a[i_a] (x) H_b[i_b]`; times `signs[r / N']`.
    pub fn rows_for(&self, ids: &Tensor) -> Tensor {
        let ids = ids.to_kind(Kind::Int64);
        let mut size = ids.size();
        let flat = ids.reshape([-1]);
        let b = self.hb.size()[0];
        let block = flat.floor_divide_scalar(self.padded);
        let pos = flat.remainder(self.padded);
        let ra = self.ha.index_select(0, &pos.floor_divide_scalar(b)); // [M, a]
        let rb = self.hb.index_select(0, &pos.remainder(b)); // [M, b]
        let h = (ra.unsqueeze(2) * rb.unsqueeze(1))
            .reshape([-1, self.padded])
            .narrow(1, 0, self.cols);
        let rows = h * self.signs.index_select(0, &block);
        size.push(self.cols);
        rows.reshape(size)
    }

    /// The whole `C x N` matrix (tests, inspection, or the dense forward path).
    pub fn dense(&self) -> Tensor {
        let ids = Tensor::arange(self.rows, (Kind::Int64, self.device()));
        self.rows_for(&ids).contiguous()
    }
}

/// Unnormalized fast Walsh-Hadamard transform over the last dimension (a power of two), in
/// Sylvester (natural) order: `fwht(x) = x H`. `log2(n)` levels of butterflies, each a view,
/// one add, one sub and one stack, so autograd flows through it.
pub fn fwht(x: &Tensor) -> Tensor {
    let size = x.size();
    let n = *size.last().unwrap_or(&1);
    debug_assert!(
        n > 0 && (n & (n - 1)) == 0,
        "fwht: last dim {n} is not a power of two"
    );
    let mut y = x.reshape([-1, n]);
    let m = y.size()[0];
    let mut h = 1;
    while h < n {
        let v = y.view([m, n / (2 * h), 2, h]);
        let a = v.select(2, 0);
        let b = v.select(2, 1);
        y = Tensor::stack(&[&a + &b, &a - &b], 2).view([m, n]);
        h *= 2;
    }
    y.view(size.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Dense matrix straight from the definition (independent of `fwht` and `rows_for`).
    fn dense_by_definition(h: &Hadamard) -> Tensor {
        let signs: Vec<f32> = Vec::<f32>::try_from(h.signs.reshape([-1])).unwrap();
        let (c, n, np) = (h.rows as usize, h.cols as usize, h.padded as usize);
        let mut q = vec![0f32; c * n];
        for r in 0..c {
            for j in 0..n {
                q[r * n + j] = walsh(r % np, j) as f32 * signs[(r / np) * n + j];
            }
        }
        Tensor::from_slice(&q).view([c as i64, n as i64])
    }

    #[test]
    fn classifier_fwht_matches_sylvester() {
        for n in [1i64, 2, 8, 64] {
            let eye = Tensor::eye(n, (Kind::Float, Device::Cpu));
            let h = fwht(&eye);
            for i in 0..n {
                for j in 0..n {
                    let want = walsh(i as usize, j as usize) as f64;
                    assert_eq!(h.double_value(&[i, j]), want);
                }
            }
        }
    }

    #[test]
    fn classifier_hadamard_fwht_equals_dense() {
        for (c, n) in [(10, 16), (16, 16), (300, 64), (300, 48), (40, 48), (7, 5)] {
            let h = Hadamard::new(c, n, 3).unwrap();
            let q = dense_by_definition(&h);
            assert!(h.dense().equal(&q), "rows_for != definition for {c}x{n}");
            let x = Tensor::randn([3, 2, n], (Kind::Double, Device::Cpu));
            let fast = h.project(&x);
            assert_eq!(fast.size(), vec![3, 2, c]);
            let slow = x.matmul(&q.to_kind(Kind::Double).tr());
            let diff = (fast - slow).abs().max().double_value(&[]);
            assert!(diff < 1e-12, "{c}x{n}: {diff}");
            // Autograd flows to x: d/dx sum(g * xQ^T) = g Q.
            let x = x.set_requires_grad(true);
            let g = Tensor::randn([3, 2, c], (Kind::Double, Device::Cpu));
            (h.project(&x) * &g).sum(Kind::Double).backward();
            let want = g.matmul(&q.to_kind(Kind::Double));
            let diff = (x.grad() - &want).abs().max().double_value(&[]);
            assert!(diff < 1e-12, "{c}x{n}: gradient {diff}");
            // The transpose transform (the fused cross-entropy's backward) is g Q too.
            let diff = (h.project_transpose(&g) - want)
                .abs()
                .max()
                .double_value(&[]);
            assert!(diff < 1e-12, "{c}x{n}: project_transpose {diff}");
        }
    }

    #[test]
    fn classifier_hadamard_rows_unit_distinct() {
        for (c, n) in [
            (300, 64),
            (300, 48),
            (16, 16),
            (32, 5),
            (8, 3),
            (1, 1),
            (2, 1),
        ] {
            let h = Hadamard::new(c, n, 11).unwrap();
            let q = h.dense();
            let mag = q.abs() - 1.0 / (n as f64).sqrt();
            assert!(mag.abs().max().double_value(&[]) < 1e-6, "{c}x{n}: entries");
            let norms = q.square().sum_dim_intlist(1, false, Kind::Float);
            assert!((norms - 1.0).abs().max().double_value(&[]) < 1e-5);
            // Equal unit rows have inner product 1; distinct ones at most 1 - 2/N.
            let gram = q.matmul(&q.tr()) - Tensor::eye(c, (Kind::Float, Device::Cpu)) * 2.0;
            let max = gram.max().double_value(&[]);
            assert!(
                max < 1.0 - 1.0 / n as f64,
                "{c}x{n}: two equal rows ({max})"
            );
        }
    }

    #[test]
    fn classifier_hadamard_orthonormal_when_power_of_two() {
        let h = Hadamard::new(64, 64, 0).unwrap();
        let q = h.dense();
        let gram = q.matmul(&q.tr());
        let eye = Tensor::eye(64, (Kind::Float, Device::Cpu));
        assert!((gram - eye).abs().max().double_value(&[]) < 1e-6);
        // The first block is the plain truncated Sylvester matrix, seed-independent.
        let other = Hadamard::new(64, 64, 99).unwrap();
        assert!(other.dense().equal(&q));
    }

    #[test]
    fn classifier_hadamard_too_many_classes_is_an_error() {
        let err = Hadamard::new(9, 3, 0).unwrap_err().to_string();
        assert!(err.contains("2^3"), "{err}");
        assert!(Hadamard::new(0, 3, 0).is_err());
    }

    #[test]
    fn classifier_hadamard_reproducible() {
        let a = Hadamard::new(300, 48, 5).unwrap().dense();
        let b = Hadamard::new(300, 48, 5).unwrap().dense();
        let c = Hadamard::new(300, 48, 6).unwrap().dense();
        assert!(a.equal(&b));
        assert!(!a.equal(&c));
    }

    #[test]
    fn classifier_restricted_walsh_detection() {
        for n in [1usize, 3, 5, 8, 48] {
            let np = n.next_power_of_two();
            for r in 0..np {
                let v: Vec<i8> = (0..n).map(|j| walsh(r, j)).collect();
                assert!(is_restricted_walsh_row(&v));
            }
        }
        assert!(!is_restricted_walsh_row(&[1, 1, 1, -1, 1]));
        assert!(!is_restricted_walsh_row(&[-1, 1]));
    }
}

/// Timings at the language model's size; run with
/// `cargo test --release classifier_bench -- --ignored --nocapture`.
#[cfg(test)]
mod bench {
    use super::*;
    use std::time::Instant;

    type Variant<'a> = Box<dyn Fn(&Tensor) -> Tensor + 'a>;

    /// Best of `reps` (the machine may be shared), in ms.
    fn time<F: FnMut() -> Tensor>(reps: usize, mut f: F) -> f64 {
        let _ = f(); // warm-up
        (0..reps)
            .map(|_| {
                let t0 = Instant::now();
                let _ = f();
                t0.elapsed().as_secs_f64() * 1e3
            })
            .fold(f64::INFINITY, f64::min)
    }

    /// Same, with `H_a` applied as one GEMM on the transposed copy.
    fn kron_transpose(x: &Tensor, ha: &Tensor, hb: &Tensor) -> Tensor {
        let size = x.size();
        let (a, b) = (ha.size()[0], hb.size()[0]);
        let y = x
            .reshape([-1, a, b])
            .matmul(hb)
            .transpose(1, 2)
            .contiguous();
        y.matmul(ha).transpose(1, 2).reshape(size.as_slice())
    }

    #[test]
    #[ignore]
    fn classifier_bench_lm_size() {
        let (c, n, m) = (33_278i64, 512i64, 700i64);
        println!("threads: {}", tch::get_num_threads());
        let t0 = Instant::now();
        let orth = crate::classifier::FixedMatrix::orthogonal(c, n, 1).unwrap();
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        println!("orthogonal build (QR f64): {ms:.0} ms");
        let h = Hadamard::new(c, n, 1).unwrap();
        let t0 = Instant::now();
        let q = h.dense();
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        println!("hadamard dense() by rows_for: {ms:.0} ms");
        let oq = orth.dense();
        let x = Tensor::randn([m, n], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let g = Tensor::randn([m, c], (Kind::Float, Device::Cpu));
        let k = h.signs.size()[0];
        let eye = |n| Tensor::eye(n, (Kind::Float, Device::Cpu));
        let (h16, h32) = (fwht(&eye(16)), fwht(&eye(32)));
        let expand = |x: &Tensor| x.unsqueeze(1) * h.signs.unsqueeze(0);
        let finish = |y: Tensor| y.reshape([-1, k * 512]).narrow(1, 0, c);
        let variants: Vec<(&str, Variant)> = vec![
            (
                "dense linear (orthogonal Q)",
                Box::new(|x: &Tensor| x.linear::<Tensor>(&oq, None)),
            ),
            (
                "dense linear (hadamard Q)",
                Box::new(|x: &Tensor| x.linear::<Tensor>(&q, None)),
            ),
            (
                "FWHT butterfly",
                Box::new(|x: &Tensor| finish(fwht(&expand(x)))),
            ),
            (
                "project: 2-factor 16x32",
                Box::new(|x: &Tensor| h.project(x)),
            ),
            (
                "2-factor, transposed GEMM",
                Box::new(|x: &Tensor| finish(kron_transpose(&expand(x), &h16, &h32))),
            ),
        ];
        let want = x.linear::<Tensor>(&q, None);
        for (name, f) in &variants[1..] {
            let diff = (f(&x) - &want).abs().max().double_value(&[]);
            assert!(diff < 1e-3, "{name}: {diff}");
        }
        for round in 0..2 {
            for (name, f) in &variants {
                let fwd = time(3, || f(&x));
                let both = time(3, || {
                    (f(&x) * &g).sum(Kind::Float).backward();
                    x.grad()
                });
                println!("[{round}] {name:<30} fwd {fwd:7.1} ms   fwd+bwd {both:7.1} ms");
            }
        }
        // The backward of the fused cross-entropy: g Q, without autograd.
        let oq_matrix = orth;
        let hm = crate::classifier::FixedMatrix::hadamard(c, n, 1).unwrap();
        for round in 0..2 {
            let dense = time(3, || oq_matrix.project_transpose(&g));
            let fast = time(3, || hm.project_transpose(&g));
            println!("[{round}] g Q: dense GEMM {dense:7.1} ms   2-factor transform {fast:7.1} ms");
        }
        let ids = Tensor::randint(c, [700], (Kind::Int64, Device::Cpu));
        let ms = time(5, || h.rows_for(&ids));
        println!("hadamard rows_for(700 ids): {ms:.2} ms");
    }
}
