//! The fixed matrices `Q` (C x N, unit rows) and the spec that regenerates them.
use super::hadamard::{hadamard_prefers_dense, Hadamard};
use crate::error::{Error, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// Which fixed matrix.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum FixedKind {
    Orthogonal,
    Hadamard,
    Simplex,
    Pretrained,
}

impl std::fmt::Display for FixedKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FixedKind::Orthogonal => "orthogonal",
            FixedKind::Hadamard => "hadamard",
            FixedKind::Simplex => "simplex",
            FixedKind::Pretrained => "pretrained",
        })
    }
}

/// Everything needed to regenerate `Q` bit for bit, so checkpoints store this, never `Q`.
/// `seed` is used by `orthogonal` and by `hadamard` when `C > next_power_of_two(N)`;
/// `source` and `source_sha256` only by `pretrained` (`build` checks the hash when present).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct FixedSpec {
    pub kind: FixedKind,
    pub rows: i64,
    pub cols: i64,
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub source: Option<PathBuf>,
    #[serde(default)]
    pub source_sha256: Option<String>,
    /// Hadamard and simplex: a seeded random orientation (see [`FixedMatrix::build`]);
    /// absent (false) in specs written before it existed, which still rebuild their matrix.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub random_orientation: bool,
}

impl FixedSpec {
    /// The spec of a matrix to build with [`FixedMatrix::build`] (a pretrained one also needs
    /// `source`; its SHA-256 is filled in when it is built).
    pub fn request(kind: FixedKind, rows: i64, cols: i64, seed: u64) -> Self {
        Self::new(kind, rows, cols, seed)
    }

    fn new(kind: FixedKind, rows: i64, cols: i64, seed: u64) -> Self {
        Self {
            kind,
            rows,
            cols,
            seed,
            source: None,
            source_sha256: None,
            random_orientation: false,
        }
    }
}

#[derive(Debug)]
enum Repr {
    /// `C x N`, contiguous, float, no grad.
    Dense(Tensor),
    Hadamard(Hadamard),
}

/// A fixed `C x N` matrix with unit rows; never requires grad. See the module docs for each
/// kind. `clone` is cheap (shares the tensors, which are never modified in place), e.g. to
/// use the same `Q` as the LM's fixed input embedding and its classifier.
#[derive(Debug)]
pub struct FixedMatrix {
    spec: FixedSpec,
    repr: Repr,
}

impl Clone for FixedMatrix {
    fn clone(&self) -> Self {
        let repr = match &self.repr {
            Repr::Dense(q) => Repr::Dense(q.shallow_clone()),
            Repr::Hadamard(h) => Repr::Hadamard(h.to_device(h.device())),
        };
        Self {
            spec: self.spec.clone(),
            repr,
        }
    }
}

fn check_shape(what: &str, c: i64, n: i64) -> Result<()> {
    if c < 1 || n < 1 {
        return Err(Error::arg(
            what,
            format!("needs at least one row (class) and one column (feature), got {c} x {n}"),
        ));
    }
    Ok(())
}

/// `rows x cols` standard normal f64 ([`crate::random::fill_standard_normal`] on a ChaCha8
/// stream), row-major.
fn gaussian(rows: i64, cols: i64, rng: &mut ChaCha8Rng) -> Tensor {
    let len = (rows * cols) as usize;
    // Written straight into the tensor's buffer: at the LM size (33,278 x 512 f64, 136 MB) a
    // Vec and its copy would double the peak memory of the setup.
    let t = Tensor::empty([rows, cols], (Kind::Double, Device::Cpu));
    if len == 0 {
        return t; // no buffer to write into (its pointer may be null)
    }
    // SAFETY: `t` is a fresh contiguous f64 CPU tensor of exactly `len` elements, and nothing
    // else refers to its storage while the slice lives.
    let v = unsafe { std::slice::from_raw_parts_mut(t.data_ptr() as *mut f64, len) };
    crate::random::fill_standard_normal(rng, v);
    t
}

/// Orthonormal columns of a tall (or square) `a` (f64): the `Q` of `a = QR` with `R`'s
/// diagonal positive, which makes it unique. Very tall matrices (rows >= 4 cols, e.g. the LM's
/// 33,278 x 512) use one Cholesky QR step ([`crate::linalg::cholesky_qr`]: BLAS-3 only, faster
/// than Householder at that size, `docs/classifier-speed.md`; a tall Gaussian is so well conditioned, cond < 3,
/// that the squared condition number costs nothing in f64); others, and any matrix whose
/// Cholesky QR fails, use Householder QR with the signs fixed. Both give the same `Q` up to
/// f64 rounding (measured 2e-15 at the LM size), but not the same bits, so which one a shape
/// takes is part of what checkpoints depend on.
fn orthonormal_columns(a: &Tensor) -> Tensor {
    let (rows, cols) = a.size2().unwrap_or((0, 0));
    if rows >= 4 * cols {
        if let Ok(Some((q, _r))) = crate::linalg::cholesky_qr(a) {
            return q;
        }
    }
    householder_q(a)
}

/// Householder QR's `Q` with the column signs fixed so that `diag(R) >= 0`.
fn householder_q(a: &Tensor) -> Tensor {
    let (q, r) = Tensor::linalg_qr(a, "reduced");
    let d = r.diagonal(0, -2, -1).sign();
    let d = d.where_self(&d.ne(0.0), &d.ones_like());
    q * d.unsqueeze(0)
}

/// Scales the rows of `q` to unit norm, in place.
fn unit_rows(mut q: Tensor) -> Tensor {
    let norms = q.norm_scalaropt_dim(2.0, [1i64], true).clamp_min(1e-30);
    let _ = q.g_div_(&norms);
    q
}

impl FixedMatrix {
    fn dense_from(spec: FixedSpec, q: Tensor) -> Self {
        // One pass to a contiguous f32 copy (q may be f64 and column-major).
        let mut dense = Tensor::empty(q.size(), (Kind::Float, q.device()));
        dense.copy_(&q);
        drop(q);
        let q = dense.set_requires_grad(false);
        Self {
            spec,
            repr: Repr::Dense(q),
        }
    }

    /// Random orthogonal `Q` from a seeded Gaussian matrix (QR in f64 on the CPU, so the same
    /// `(c, n, seed)` gives the same `Q` on any device). `C <= N`: orthonormal rows.
    /// `C > N`: the Gaussian is `C x N`, its QR gives orthonormal columns, then rows are scaled
    /// to unit norm (rows cannot be mutually orthogonal then; the columns are no longer
    /// exactly orthonormal after the row scaling; the rows are uniformly spread directions).
    pub fn orthogonal(c: i64, n: i64, seed: u64) -> Result<Self> {
        check_shape("orthogonal", c, n)?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let q = if c <= n {
            orthonormal_columns(&gaussian(n, c, &mut rng)).tr()
        } else {
            let columns = orthonormal_columns(&gaussian(c, n, &mut rng));
            unit_rows(columns)
        };
        Ok(Self::dense_from(
            FixedSpec::new(FixedKind::Orthogonal, c, n, seed),
            q,
        ))
    }

    /// Truncated Sylvester-Hadamard with seeded sign blocks for `C > N'`; see
    /// [`super::hadamard`]. Entries are +-1/sqrt(N). Applied as the fast transform (`Q` never
    /// stored) where that is faster, as a stored dense `Q` otherwise
    /// ([`super::hadamard::hadamard_prefers_dense`]); the values are the same either way.
    pub fn hadamard(c: i64, n: i64, seed: u64) -> Result<Self> {
        Self::hadamard_as(c, n, seed, hadamard_prefers_dense(c, n))
    }

    /// [`hadamard`](Self::hadamard) stored densely (`dense = true`) or applied as the fast
    /// transform, whatever the shape (for measuring both).
    pub fn hadamard_as(c: i64, n: i64, seed: u64, dense: bool) -> Result<Self> {
        Self::hadamard_spec(FixedSpec::new(FixedKind::Hadamard, c, n, seed), dense)
    }

    /// The Hadamard matrix of `spec`, with its random column signs when
    /// `spec.random_orientation` ([`Hadamard::with_column_signs`]).
    fn hadamard_spec(spec: FixedSpec, dense: bool) -> Result<Self> {
        let (c, n, seed) = (spec.rows, spec.cols, spec.seed);
        check_shape("hadamard", c, n)?;
        let h = Hadamard::with_column_signs(c, n, seed, spec.random_orientation)?;
        Ok(if dense {
            Self::dense_from(spec, h.dense())
        } else {
            Self {
                spec,
                repr: Repr::Hadamard(h),
            }
        })
    }

    /// Simplex equiangular tight frame: `C <= N + 1` unit rows with pairwise inner products
    /// `-1/(C-1)`. Closed form: rows of `sqrt(C/(C-1)) (I - 11^T/C)` written in the Helmert
    /// basis of the plane orthogonal to `1`, i.e. column `k` (1-based, `k < C`) has
    /// `1/sqrt(k(k+1))` in rows `0..k`, `-k/sqrt(k(k+1))` in row `k`, zeros below, all times
    /// `sqrt(C/(C-1))`; columns `C-1..N` are zero. Deterministic (no seed).
    pub fn simplex(c: i64, n: i64) -> Result<Self> {
        Self::simplex_spec(FixedSpec::new(FixedKind::Simplex, c, n, 0))
    }

    /// The simplex of `spec`; with `spec.random_orientation`, its `C - 1` used columns are
    /// rotated into a seeded random `(C - 1)`-dimensional subspace of all `N` features
    /// (`S U^T`, `U` with orthonormal columns): the Gram matrix stays the simplex's, but no
    /// row is all positive and every feature takes part (the Helmert form uses only the
    /// first `C - 1` features, so the others only shrink `x/|x|` there, and its row 0 is
    /// all positive: on non-negative features it cannot lose to every other row).
    fn simplex_spec(mut spec: FixedSpec) -> Result<Self> {
        if !spec.random_orientation {
            spec.seed = 0; // unused: the Helmert form is deterministic
        }
        let (c, n) = (spec.rows, spec.cols);
        check_shape("simplex", c, n)?;
        if c < 2 {
            return Err(Error::arg(
                "simplex",
                format!("a simplex needs at least 2 classes, got {c}"),
            ));
        }
        if c > n + 1 {
            return Err(Error::arg(
                "simplex",
                format!(
                    "a simplex of {c} classes needs at least {} features (C <= N + 1), got \
                     {n}; use orthogonal or hadamard for C > N + 1",
                    c - 1
                ),
            ));
        }
        let (cu, nu) = (c as usize, n as usize);
        let scale = (c as f64 / (c - 1) as f64).sqrt();
        let mut q = vec![0f64; cu * nu];
        for k in 1..cu {
            let kf = k as f64;
            let denom = (kf * (kf + 1.0)).sqrt();
            for row in q.chunks_mut(nu).take(k) {
                row[k - 1] = scale / denom;
            }
            q[k * nu + k - 1] = -scale * kf / denom;
        }
        let mut q = Tensor::from_slice(&q).view([c, n]);
        if spec.random_orientation {
            let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
            let u = orthonormal_columns(&gaussian(n, c - 1, &mut rng));
            q = q.narrow(1, 0, c - 1).matmul(&u.tr());
        }
        Ok(Self::dense_from(spec, q))
    }

    /// Pretrained word vectors as `Q`: row `i` is the L2-normalized vector of `vocab[i]`, read
    /// with [`crate::vectors::read_any`]. Returns the matrix and the file's SHA-256 (also in
    /// `spec().source_sha256`). Errors name the file and the offending words.
    pub fn pretrained(path: &Path, vocab: &[String], n: i64) -> Result<(Self, String)> {
        let (q, sha) = super::pretrained::load(path, vocab, n)?;
        let mut spec = FixedSpec::new(FixedKind::Pretrained, vocab.len() as i64, n, 0);
        spec.source = Some(path.to_path_buf());
        spec.source_sha256 = Some(sha.clone());
        Ok((Self::dense_from(spec, q), sha))
    }

    /// Regenerates `Q` from its spec. `vocab` is needed (and must have `spec.rows` words) for
    /// `pretrained`; when the spec records a SHA-256, the file must still have it.
    pub fn build(spec: &FixedSpec, vocab: Option<&[String]>) -> Result<Self> {
        match spec.kind {
            FixedKind::Orthogonal => Self::orthogonal(spec.rows, spec.cols, spec.seed),
            FixedKind::Hadamard => {
                Self::hadamard_spec(spec.clone(), hadamard_prefers_dense(spec.rows, spec.cols))
            }
            FixedKind::Simplex => Self::simplex_spec(spec.clone()),
            FixedKind::Pretrained => {
                let source = spec.source.as_deref().ok_or_else(|| {
                    Error::arg("pretrained", "the spec names no source embeddings file")
                })?;
                let vocab = vocab.ok_or_else(|| {
                    Error::arg(
                        "pretrained",
                        "a pretrained fixed matrix needs the model's vocabulary",
                    )
                })?;
                if vocab.len() as i64 != spec.rows {
                    return Err(Error::arg(
                        "pretrained",
                        format!(
                            "the spec has {} rows but the vocabulary has {} words",
                            spec.rows,
                            vocab.len()
                        ),
                    ));
                }
                let (m, sha) = Self::pretrained(source, vocab, spec.cols)?;
                if let Some(want) = &spec.source_sha256 {
                    if *want != sha {
                        return Err(Error::bad_file(
                            source,
                            format!(
                                "SHA-256 is {sha} but the checkpoint was trained with {want}; \
                                 the embeddings file changed since"
                            ),
                        ));
                    }
                }
                Ok(m)
            }
        }
    }

    /// The spec that regenerates this matrix (store it in checkpoints).
    pub fn spec(&self) -> &FixedSpec {
        &self.spec
    }

    pub fn kind(&self) -> FixedKind {
        self.spec.kind
    }

    /// `C`, the number of classes.
    pub fn rows(&self) -> i64 {
        self.spec.rows
    }

    /// `N`, the number of features.
    pub fn cols(&self) -> i64 {
        self.spec.cols
    }

    pub fn device(&self) -> Device {
        match &self.repr {
            Repr::Dense(q) => q.device(),
            Repr::Hadamard(h) => h.device(),
        }
    }

    /// A copy on `device` (a cheap shallow copy when already there).
    pub fn to_device(&self, device: Device) -> Self {
        let repr = match &self.repr {
            Repr::Dense(q) => Repr::Dense(q.to_device(device).set_requires_grad(false)),
            Repr::Hadamard(h) => Repr::Hadamard(h.to_device(device)),
        };
        Self {
            spec: self.spec.clone(),
            repr,
        }
    }

    /// `x [.., N] -> x Q^T [.., C]`, in `x`'s kind (Q is cast when `x` is not f32).
    /// Panics (as tch modules do) when the last dimension of `x` is not `N`.
    pub fn project(&self, x: &Tensor) -> Tensor {
        self.project_with_bias(x, None)
    }

    /// `x Q^T + bias`, with the bias fused into the matmul for dense kinds.
    pub fn project_with_bias(&self, x: &Tensor, bias: Option<&Tensor>) -> Tensor {
        match &self.repr {
            Repr::Dense(q) => {
                if q.kind() == x.kind() {
                    x.linear(q, bias)
                } else {
                    x.linear(&q.to_kind(x.kind()), bias)
                }
            }
            Repr::Hadamard(h) => {
                let y = h.project(x);
                match bias {
                    Some(b) => y + b,
                    None => y,
                }
            }
        }
    }

    /// `g [.., C] -> g Q [.., N]`: the transpose of [`project`](Self::project), which maps a
    /// gradient of the logits back to the features. Dense kinds are one GEMM with the stored
    /// `Q`; Hadamard is the same fast transform as the forward (`H` is symmetric).
    pub fn project_transpose(&self, g: &Tensor) -> Tensor {
        match &self.repr {
            Repr::Dense(q) => {
                let mut size = g.size();
                let flat = g.reshape([-1, self.rows()]);
                let y = if q.kind() == g.kind() {
                    flat.mm(q)
                } else {
                    flat.mm(&q.to_kind(g.kind()))
                };
                size.pop();
                size.push(self.cols());
                y.reshape(size)
            }
            Repr::Hadamard(h) => h.project_transpose(g),
        }
    }

    /// Rows of `Q` for class ids of any shape: `[..] -> [.., N]` f32 (no grad). The language
    /// model uses this as a fixed input embedding. Hadamard rows are computed, not looked up.
    pub fn rows_for(&self, ids: &Tensor) -> Tensor {
        match &self.repr {
            Repr::Dense(q) => {
                let size = ids.size();
                let rows = q.index_select(0, &ids.reshape([-1]).to_kind(Kind::Int64));
                let mut out = size;
                out.push(self.cols());
                rows.reshape(out)
            }
            Repr::Hadamard(h) => h.rows_for(ids),
        }
    }

    /// The whole `C x N` matrix (f32), for tests and inspection.
    pub fn dense(&self) -> Tensor {
        match &self.repr {
            Repr::Dense(q) => q.shallow_clone(),
            Repr::Hadamard(h) => h.dense(),
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
#[path = "matrix_bench.rs"]
mod bench;
