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
//! Forward: `Q x` for block `k` is `FWHT(pad(d_k * x))[..] / sqrt(N)`, computed for all blocks at
//! once with a fast Walsh-Hadamard transform written in tensor ops (autograd flows to `x`).
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
    /// `N'`, the padded (power of two) transform size.
    pub padded: i64,
    /// `[K, N]`: row `k` is `d_k / sqrt(N)` (entries +-1/sqrt(N)); `d_0` is all ones.
    pub signs: Tensor,
}

/// `(-1)^popcount(a & b)` as +-1.
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

impl Hadamard {
    pub fn new(c: i64, n: i64, seed: u64) -> Result<Self> {
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
        let scale = 1.0 / (n as f32).sqrt();
        let flat: Vec<f32> = diag.iter().flatten().map(|&s| s as f32 * scale).collect();
        let signs = Tensor::from_slice(&flat).view([blocks as i64, n]);
        Ok(Self {
            rows: c,
            cols: n,
            padded: padded as i64,
            signs,
        })
    }

    pub fn to_device(&self, device: Device) -> Self {
        Self {
            rows: self.rows,
            cols: self.cols,
            padded: self.padded,
            signs: self.signs.to_device(device),
        }
    }

    pub fn device(&self) -> Device {
        self.signs.device()
    }

    /// `x [.., N] -> x Q^T [.., C]` by FWHT, in `x`'s kind.
    pub fn project(&self, x: &Tensor) -> Tensor {
        let size = x.size();
        let lead = &size[..size.len() - 1];
        let k = self.signs.size()[0];
        let x2 = x.reshape([-1, self.cols]);
        let signs = self.signs.to_kind(x.kind());
        // [M, K, N]: each block sees its own sign flips of x.
        let mut z = x2.unsqueeze(1) * signs.unsqueeze(0);
        if self.padded > self.cols {
            z = z.constant_pad_nd([0, self.padded - self.cols]);
        }
        let y = fwht(&z)
            .reshape([-1, k * self.padded])
            .narrow(1, 0, self.rows);
        let mut out = lead.to_vec();
        out.push(self.rows);
        y.reshape(out)
    }

    /// Rows of `Q` for class ids of any shape: `[..] -> [.., N]` (float), by bit arithmetic:
    /// `Q[r][j] = (-1)^popcount((r % N') & j) * signs[r / N'][j]`.
    pub fn rows_for(&self, ids: &Tensor) -> Tensor {
        let ids = ids.to_kind(Kind::Int64);
        let size = ids.size();
        let flat = ids.reshape([-1]);
        let block = flat.floor_divide_scalar(self.padded);
        let pos = flat.remainder(self.padded);
        let cols = Tensor::arange(self.cols, (Kind::Int64, ids.device()));
        let both = pos.unsqueeze(1).bitwise_and_tensor(&cols.unsqueeze(0)); // [M, N]
        let mut parity = Tensor::zeros_like(&both);
        let mut bit = 0;
        while (1i64 << bit) < self.padded {
            parity = parity.bitwise_xor_tensor(&both.bitwise_right_shift_tensor_scalar(bit));
            bit += 1;
        }
        let sign = parity.bitwise_and(1).to_kind(self.signs.kind()) * -2.0 + 1.0;
        let rows = sign * self.signs.index_select(0, &block);
        let mut out = size;
        out.push(self.cols);
        rows.reshape(out)
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
