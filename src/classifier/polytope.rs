//! The regular polytopes of Pernici et al., "Regular Polytope Networks" (TNNLS 2021;
//! matteo-bruni/regular-polytope-networks `prototypes.py`) as fixed class rows:
//!
//! * d-orthoplex: `d = ceil(C/2)` dimensions, rows `e_0 .. e_{d-1}, -e_0 .. -e_{d-1}` (the
//!   reference's `vstack((I, -I))`), the first `C` of them (an odd `C` drops `-e_{d-1}`).
//!   Two rows are orthogonal or opposite.
//! * d-cube: `d = ceil(log2 C)` dimensions, vertex `t` has `(-1)^bit_i(t) / sqrt(d)` in
//!   coordinate `i` (the reference's `perm(d)` order, normalized as it does), the first `C`
//!   vertices. The reference asks `C = 2^d`; any `C <= 2^d` is allowed here.
//!
//! [`polytope_rows`] returns the `C x d` rows in f64; the fixed matrix places them in the first
//! `d` of `N` features, or rotates them into all `N` (`random_orientation`), as the simplex.
use crate::error::{Error, Result};
use tch::{Kind, Tensor};

/// Which polytope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Polytope {
    Orthoplex,
    Cube,
}

impl Polytope {
    /// The dimension `d` the polytope of `c` vertices lives in.
    pub fn dim(self, c: i64) -> i64 {
        match self {
            Polytope::Orthoplex => (c + 1) / 2,
            // ceil(log2 c), at least 1 (two classes are the two vertices of a segment).
            Polytope::Cube => (64 - (c.max(2) - 1).leading_zeros()) as i64,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Polytope::Orthoplex => "orthoplex",
            Polytope::Cube => "cube",
        }
    }
}

/// The `c x d` unit rows of the polytope (f64, CPU), `d = kind.dim(c)`.
pub fn polytope_rows(kind: Polytope, c: i64) -> Result<Tensor> {
    if c < 2 {
        return Err(Error::arg(
            kind.name(),
            format!("a polytope needs at least 2 classes, got {c}"),
        ));
    }
    let d = kind.dim(c);
    if kind == Polytope::Cube && d > 62 {
        return Err(Error::arg("cube", format!("{c} classes is too many")));
    }
    let (cu, du) = (c as usize, d as usize);
    let mut q = vec![0f64; cu * du];
    for (r, row) in q.chunks_mut(du).enumerate() {
        match kind {
            Polytope::Orthoplex => row[r % du] = if r < du { 1.0 } else { -1.0 },
            Polytope::Cube => {
                let s = 1.0 / (d as f64).sqrt();
                for (i, v) in row.iter_mut().enumerate() {
                    *v = if (r >> i) & 1 == 0 { s } else { -s };
                }
            }
        }
    }
    Ok(Tensor::from_slice(&q).view([c, d]).to_kind(Kind::Double))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gram(kind: Polytope, c: i64) -> Vec<Vec<f64>> {
        let q = polytope_rows(kind, c).unwrap();
        let g = q.mm(&q.tr());
        (0..c)
            .map(|i| Vec::<f64>::try_from(g.get(i)).unwrap())
            .collect()
    }

    /// Rows as `prototypes.py` builds them (orthoplex(10, 5): `vstack(I5, -I5)`; dcube(8, 3):
    /// `perm(3)` normalized), written out.
    #[test]
    fn rows_match_the_reference_construction() {
        let q = polytope_rows(Polytope::Orthoplex, 6).unwrap();
        let want = [
            [1., 0., 0.],
            [0., 1., 0.],
            [0., 0., 1.],
            [-1., 0., 0.],
            [0., -1., 0.],
            [0., 0., -1.],
        ];
        for (r, w) in want.iter().enumerate() {
            assert_eq!(Vec::<f64>::try_from(q.get(r as i64)).unwrap(), w.to_vec());
        }
        let q = polytope_rows(Polytope::Cube, 8).unwrap();
        let s = 1.0 / 3f64.sqrt();
        // perm(3)[t][i] = (1, -1)[(t >> i) % 2]
        let t5 = Vec::<f64>::try_from(q.get(5)).unwrap();
        assert_eq!(t5, vec![-s, s, -s]);
        let t6 = Vec::<f64>::try_from(q.get(6)).unwrap();
        assert_eq!(t6, vec![s, -s, -s]);
        assert_eq!(q.size(), [8, 3]);
    }

    /// Gram matrices: the orthoplex's entries are 1 (diagonal), -1 (a row and its opposite,
    /// `i` and `i + d`) and 0; the cube's `1 - 2 hamming(i, j) / d`.
    #[test]
    fn gram_matrices() {
        let (c, d) = (7, 4);
        assert_eq!(Polytope::Orthoplex.dim(c), d);
        let g = gram(Polytope::Orthoplex, c);
        for (i, row) in g.iter().enumerate() {
            for (j, &v) in row.iter().enumerate() {
                let want = if i == j {
                    1.0
                } else if i % d as usize == j % d as usize {
                    -1.0
                } else {
                    0.0
                };
                assert_eq!(v, want, "({i}, {j})");
            }
        }
        let c = 10;
        let d = Polytope::Cube.dim(c);
        assert_eq!(d, 4);
        let g = gram(Polytope::Cube, c);
        for (i, row) in g.iter().enumerate() {
            for (j, &v) in row.iter().enumerate() {
                let ham = ((i ^ j) as u32).count_ones() as f64;
                assert!(
                    (v - (1.0 - 2.0 * ham / d as f64)).abs() < 1e-12,
                    "({i}, {j})"
                );
            }
        }
        assert_eq!(Polytope::Cube.dim(2), 1);
        assert_eq!(Polytope::Cube.dim(16), 4);
        assert_eq!(Polytope::Cube.dim(17), 5);
        assert!(polytope_rows(Polytope::Cube, 1).is_err());
    }
}
