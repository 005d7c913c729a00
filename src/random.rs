//! The one standard normal sampler of the crate (Box-Muller), generic over the RNG.
//!
//! Written out rather than taken from `rand_distr`: the fixed orthogonal classifier is
//! rebuilt from a seed when a checkpoint is loaded, so its Gaussian stream must never change
//! with a dependency's release; this code and a seeded ChaCha stream pin it.
use rand::Rng;

/// Fills `out` with independent standard normal draws by Box-Muller: per pair of outputs,
/// `u1 = 1 - rng.gen::<f64>()` (in `(0, 1]`, so `ln u1` is finite), `u2 = rng.gen::<f64>()`,
/// `r = sqrt(-2 ln u1)`, then `r cos(2 pi u2)` and `r sin(2 pi u2)`. An odd length uses only
/// the cosine of its last pair (both uniforms are still drawn).
///
/// Filling a slice in pieces of even lengths gives the same values as one fill of the whole,
/// so callers may sample through a small buffer. `FixedMatrix::orthogonal` writes straight
/// into its tensor's buffer with this, and checkpoints depend on its exact stream: do not
/// change the convention.
pub fn fill_standard_normal<R: Rng + ?Sized>(rng: &mut R, out: &mut [f64]) {
    for pair in out.chunks_mut(2) {
        let u1: f64 = 1.0 - rng.gen::<f64>();
        let u2: f64 = rng.gen::<f64>();
        let r = (-2.0 * u1.ln()).sqrt();
        let t = std::f64::consts::TAU * u2;
        pair[0] = r * t.cos();
        if let Some(second) = pair.get_mut(1) {
            *second = r * t.sin();
        }
    }
}

/// One standard normal draw, the convention of [`fill_standard_normal`] (its cosine branch;
/// the sine is discarded), i.e. the first value of a fill from the same RNG state.
///
/// Used for the language model's variable BPTT length (`lm::task`).
pub fn standard_normal<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    let mut x = [0f64; 1];
    fill_standard_normal(rng, &mut x);
    x[0]
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// The loop `classifier::matrix::gaussian` had before this module existed, verbatim.
    fn reference(len: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
        let mut v = vec![0f64; len];
        let mut i = 0;
        while i < len {
            let u1: f64 = 1.0 - rng.gen::<f64>(); // (0, 1]
            let u2: f64 = rng.gen::<f64>();
            let r = (-2.0 * u1.ln()).sqrt();
            let t = std::f64::consts::TAU * u2;
            v[i] = r * t.cos();
            if i + 1 < len {
                v[i + 1] = r * t.sin();
            }
            i += 2;
        }
        v
    }

    fn bits(v: &[f64]) -> Vec<u64> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    #[test]
    fn random_fill_matches_the_matrix_stream_bit_for_bit() {
        for len in [0, 1, 2, 7, 1000, 1001] {
            let mut a = ChaCha8Rng::seed_from_u64(9);
            let mut b = ChaCha8Rng::seed_from_u64(9);
            let mut got = vec![0f64; len];
            fill_standard_normal(&mut a, &mut got);
            assert_eq!(bits(&got), bits(&reference(len, &mut b)), "len {len}");
            // Both consumed the same number of uniforms.
            assert_eq!(a.gen::<u64>(), b.gen::<u64>());
        }
    }

    #[test]
    fn random_fill_in_even_pieces_equals_one_fill() {
        let mut whole = vec![0f64; 1001];
        fill_standard_normal(&mut ChaCha8Rng::seed_from_u64(3), &mut whole);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut pieces = vec![0f64; 1001];
        for piece in pieces.chunks_mut(64) {
            fill_standard_normal(&mut rng, piece);
        }
        assert_eq!(bits(&whole), bits(&pieces));
    }

    #[test]
    fn random_standard_normal_is_the_first_value_of_a_fill() {
        let mut a = ChaCha8Rng::seed_from_u64(4);
        let mut b = ChaCha8Rng::seed_from_u64(4);
        let mut pair = [0f64; 2];
        for _ in 0..100 {
            fill_standard_normal(&mut a, &mut pair);
            assert_eq!(standard_normal(&mut b).to_bits(), pair[0].to_bits());
        }
        // Through a trait object too (`R: ?Sized`).
        let dynamic: &mut dyn rand::RngCore = &mut ChaCha8Rng::seed_from_u64(4);
        let mut c = ChaCha8Rng::seed_from_u64(4);
        assert_eq!(standard_normal(dynamic), standard_normal(&mut c));
    }

    #[test]
    fn random_moments_are_standard_normal() {
        let mut v = vec![0f64; 200_000];
        fill_standard_normal(&mut ChaCha8Rng::seed_from_u64(1), &mut v);
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        let kurt = v.iter().map(|x| (x - mean).powi(4)).sum::<f64>() / n / var.powi(2);
        // Standard errors: mean 0.0022, var 0.0032, kurtosis 0.011; bounds are ~5 sigma.
        assert!(mean.abs() < 0.012, "{mean}");
        assert!((var - 1.0).abs() < 0.016, "{var}");
        assert!((kurt - 3.0).abs() < 0.06, "{kurt}");
        let within1 = v.iter().filter(|x| x.abs() < 1.0).count() as f64 / n;
        assert!((within1 - 0.6827).abs() < 0.006, "{within1}");
        assert!(v.iter().all(|x| x.is_finite()));
    }
}
