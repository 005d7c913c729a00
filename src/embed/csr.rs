//! The sparse (CSR) f32 matrices of the PMI pipeline: the V x V co-occurrence and PPMI
//! matrices are only ever held in this form, and their products with the tall dense
//! matrices of the randomized SVD run here (rayon over row blocks, an avx2+fma kernel where
//! the CPU has it).
use rayon::prelude::*;

/// A compressed-sparse-row f32 matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Csr {
    pub rows: usize,
    pub cols: usize,
    pub indptr: Vec<usize>,
    pub indices: Vec<u32>,
    pub values: Vec<f32>,
}

impl Csr {
    pub fn nnz(&self) -> usize {
        self.values.len()
    }

    pub fn row(&self, i: usize) -> (&[u32], &[f32]) {
        let r = self.indptr[i]..self.indptr[i + 1];
        (&self.indices[r.clone()], &self.values[r])
    }

    /// The value at (i, j), 0 when absent (binary search; for tests and checks).
    pub fn get(&self, i: usize, j: usize) -> f32 {
        let (idx, val) = self.row(i);
        match idx.binary_search(&(j as u32)) {
            Ok(p) => val[p],
            Err(_) => 0.0,
        }
    }

    pub fn transpose(&self) -> Csr {
        let mut counts = vec![0usize; self.cols + 1];
        for &j in &self.indices {
            counts[j as usize + 1] += 1;
        }
        for j in 0..self.cols {
            counts[j + 1] += counts[j];
        }
        let indptr = counts.clone();
        let mut next = counts;
        let mut indices = vec![0u32; self.nnz()];
        let mut values = vec![0f32; self.nnz()];
        for i in 0..self.rows {
            let (idx, val) = self.row(i);
            for (&j, &v) in idx.iter().zip(val) {
                let p = next[j as usize];
                indices[p] = i as u32;
                values[p] = v;
                next[j as usize] += 1;
            }
        }
        Csr {
            rows: self.cols,
            cols: self.rows,
            indptr,
            indices,
            values,
        }
    }

    /// `self (rows x cols) * x (cols x k, row-major)` -> rows x k, row-major.
    pub fn mul_dense(&self, x: &[f32], k: usize) -> Vec<f32> {
        assert_eq!(x.len(), self.cols * k);
        let mut out = super::hugepage_vec(self.rows * k);
        let avx2 = super::simd::has_avx2_fma();
        out.par_chunks_mut(k.max(1) * 64)
            .enumerate()
            .for_each(|(block, chunk)| {
                let first = block * 64;
                #[cfg(target_arch = "x86_64")]
                if avx2 {
                    // SAFETY: avx2 and fma were detected at run time.
                    unsafe { spmm_rows_avx2(self, x, k, first, chunk) };
                    return;
                }
                let _ = avx2;
                spmm_rows::<false>(self, x, k, first, chunk);
            });
        out
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn spmm_rows_avx2(a: &Csr, x: &[f32], k: usize, first: usize, out: &mut [f32]) {
    spmm_rows::<true>(a, x, k, first, out)
}

#[inline(always)]
fn spmm_rows<const FMA: bool>(a: &Csr, x: &[f32], k: usize, first: usize, out: &mut [f32]) {
    for (r, orow) in out.chunks_exact_mut(k).enumerate() {
        let (idx, val) = a.row(first + r);
        for (&j, &v) in idx.iter().zip(val) {
            let xr = &x[j as usize * k..(j as usize + 1) * k];
            for (o, &xi) in orow.iter_mut().zip(xr) {
                *o = if FMA { v.mul_add(xi, *o) } else { *o + v * xi };
            }
        }
    }
}

/// A CSR matrix from its rows, each `(column indices ascending, values)`.
pub(super) fn from_rows(rows: usize, cols: usize, data: Vec<(Vec<u32>, Vec<f32>)>) -> Csr {
    let nnz = data.iter().map(|r| r.0.len()).sum();
    let mut indptr = Vec::with_capacity(rows + 1);
    let mut indices = Vec::with_capacity(nnz);
    let mut values = Vec::with_capacity(nnz);
    indptr.push(0);
    for (idx, val) in data {
        indices.extend_from_slice(&idx);
        values.extend_from_slice(&val);
        indptr.push(indices.len());
    }
    Csr {
        rows,
        cols,
        indptr,
        indices,
        values,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embed_pmi_transpose_and_product() {
        let a = from_rows(
            2,
            3,
            vec![(vec![0, 2], vec![1.0, 2.0]), (vec![1], vec![3.0])],
        );
        let t = a.transpose();
        assert_eq!(t.get(2, 0), 2.0);
        assert_eq!(t.get(1, 1), 3.0);
        // a * [[1,0],[0,1],[1,1]] = [[3,2],[0,3]]
        let y = a.mul_dense(&[1.0, 0.0, 0.0, 1.0, 1.0, 1.0], 2);
        assert_eq!(y, vec![3.0, 2.0, 0.0, 3.0]);
    }
}
