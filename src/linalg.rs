//! Dense linear algebra shared by the fixed orthogonal classifier
//! ([`FixedMatrix::orthogonal`](crate::classifier::FixedMatrix::orthogonal)) and the PMI
//! randomized SVD ([`randomized_svd`](crate::embed::pmi::randomized_svd)): Cholesky QR of
//! tall matrices, written once so that both use the same, measured sequence of operations.
use crate::error::Result;
use tch::{Kind, Tensor};

/// One Cholesky QR step of a tall `y` (`rows x cols`, `rows >= cols`): `y = Q R` with `Q`'s
/// columns orthonormal and `R` upper triangular with a positive diagonal, computed as
/// `G = y^T y = L L^T` (Cholesky), `Q^T = L^-1 y^T` (triangular solve), `R = L^T`. Only
/// BLAS-3 work, so several times faster than Householder QR on tall matrices (timed at the
/// LM's 33,278 x 512: `docs/classifier-speed.md`). The price: `G` squares the condition
/// number of `y`, so `Q` is orthonormal to about `eps * cond(y)^2`; that is nothing for a tall Gaussian (cond < 3),
/// and a second step ([`orthonormalize`] with 2 passes, CholeskyQR2) repairs it otherwise.
///
/// Kinds: `G` and the solve are in `y`'s kind (f32 or f64); the factorisation of `G` is always
/// f64 (`G` is cast up, `L` back down), so that for f32 input it adds no f32 rounding of its
/// own and fails less often near singularity. For f64 input the whole step is f64.
///
/// Layout: `Q` is the transpose of a contiguous `cols x rows` tensor (column-major) and `R`
/// the transpose of a contiguous lower triangle; call `contiguous` where row-major is needed.
/// Either layout of `y` works (a column-major `y`, e.g. a previous `Q`, needs no copy).
///
/// `None` when `G` is not numerically positive definite (`y` rank deficient or too badly
/// conditioned) or `Q` is not finite: the caller then falls back to Householder QR.
///
/// The exact operations (Gram by `matmul` of the transposed view, lower Cholesky, left-side
/// lower solve of `y^T`) must not change: `FixedMatrix::orthogonal` rebuilds checkpointed
/// matrices from a seed through this function, and `classifier::matrix` pins a hash of one.
/// (The upper Cholesky with a right-side solve is the same maths but rounds differently.)
pub fn cholesky_qr(y: &Tensor) -> Result<Option<(Tensor, Tensor)>> {
    let gram = y.f_tr()?.f_matmul(y)?.f_to_kind(Kind::Double)?;
    let (l, info) = gram.f_linalg_cholesky_ex(false, false)?;
    if info.f_int64_value(&[])? != 0 {
        return Ok(None);
    }
    let l = l.f_to_kind(y.kind())?;
    // Solve Q L^T = y, i.e. L Q^T = y^T (lower triangular, on the left).
    let qt = l.f_linalg_solve_triangular(&y.f_tr()?, false, true, false)?;
    if qt.f_isfinite()?.f_all()?.f_int64_value(&[])? == 0 {
        return Ok(None);
    }
    Ok(Some((qt.f_tr()?, l.f_tr()?)))
}

/// Orthonormal basis of the columns of a tall `y` and the `R` of `y = Q R`, by `passes`
/// [`cholesky_qr`] steps (`R` accumulates: `R = R_p ... R_1`). 2 passes is CholeskyQR2,
/// orthonormal to working precision whenever the first Cholesky succeeds; 1 pass is enough
/// where only the spanned subspace matters (between power iterations). Falls back to
/// Householder QR of `y` (`Tensor::linalg_qr`, no sign convention) when a step fails or
/// `passes` is 0. Kinds and layout as for [`cholesky_qr`].
pub fn orthonormalize(y: &Tensor, passes: usize) -> Result<(Tensor, Tensor)> {
    let mut q = y.shallow_clone();
    let mut r_total: Option<Tensor> = None;
    for _ in 0..passes {
        match cholesky_qr(&q)? {
            Some((q2, r)) => {
                r_total = Some(match r_total {
                    None => r,
                    Some(prev) => r.f_mm(&prev)?,
                });
                q = q2;
            }
            None => return Ok(Tensor::f_linalg_qr(y, "reduced")?),
        }
    }
    match r_total {
        Some(r) => Ok((q, r)),
        None => Ok(Tensor::f_linalg_qr(y, "reduced")?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn max_abs(t: &Tensor) -> f64 {
        t.abs().max().double_value(&[])
    }

    #[test]
    fn linalg_cholesky_qr_factors_both_kinds() {
        tch::manual_seed(5);
        for (kind, tol) in [(Kind::Double, 1e-12), (Kind::Float, 1e-4)] {
            let y = Tensor::randn([300, 12], (kind, Device::Cpu));
            let (q, r) = cholesky_qr(&y)
                .unwrap()
                .expect("a tall Gaussian is well conditioned");
            assert_eq!((q.kind(), r.kind()), (kind, kind));
            assert_eq!((q.size(), r.size()), (vec![300, 12], vec![12, 12]));
            let eye = Tensor::eye(12, (kind, Device::Cpu));
            assert!(max_abs(&(q.tr().matmul(&q) - &eye)) < tol);
            assert!(max_abs(&(q.matmul(&r) - &y)) < tol * 10.0);
            assert!(max_abs(&r.tril(-1)) == 0.0, "R is upper triangular");
            assert!(r.diagonal(0, 0, 1).min().double_value(&[]) > 0.0);
            // Same Q as Householder once its signs are fixed (the QR with diag(R) > 0 is unique).
            let (qh, rh) = Tensor::linalg_qr(&y, "reduced");
            let d = rh.diagonal(0, 0, 1).sign();
            assert!(max_abs(&(qh * d.unsqueeze(0) - &q)) < tol);
        }
    }

    #[test]
    fn linalg_cholesky_qr_rank_deficient_falls_back() {
        // A zero column makes G exactly singular (an exactly repeated column may not: its
        // rounded G can keep a tiny positive pivot).
        let col = Tensor::randn([50, 1], (Kind::Double, Device::Cpu));
        let y = Tensor::cat(&[&col, &col.zeros_like()], 1);
        assert!(cholesky_qr(&y).unwrap().is_none());
        // orthonormalize then uses Householder, which still factors y.
        let (q, r) = orthonormalize(&y, 2).unwrap();
        assert!(max_abs(&(q.matmul(&r) - &y)) < 1e-12);
    }

    #[test]
    fn linalg_cholesky_qr2_is_orthonormal_on_ill_conditioned_input() {
        // Columns scaled over 3 orders of magnitude (cond ~ 1e3): one f32 pass leaves
        // Q^T Q off by ~eps * cond^2, the second pass brings it back to ~eps.
        tch::manual_seed(6);
        let scale = Tensor::logspace(0.0, -3.0, 8, 10.0, (Kind::Float, Device::Cpu));
        let y = Tensor::randn([400, 8], (Kind::Float, Device::Cpu)) * scale.unsqueeze(0);
        let eye = Tensor::eye(8, (Kind::Float, Device::Cpu));
        let (q1, _) = orthonormalize(&y, 1).unwrap();
        let (q2, r2) = orthonormalize(&y, 2).unwrap();
        let err1 = max_abs(&(q1.tr().matmul(&q1) - &eye));
        let err2 = max_abs(&(q2.tr().matmul(&q2) - &eye));
        assert!(err2 < 1e-5 && err2 < err1, "{err1:e} {err2:e}");
        assert!(max_abs(&(q2.matmul(&r2) - &y)) < 1e-5);
    }
}
