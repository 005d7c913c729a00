//! The few statistics the benches and the report share: a median of timings, the mean and
//! sample standard deviation over seeds, and a number kept only when finite.

/// `x`, when it is a finite number (a NaN or infinite value reads as missing).
pub fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// The median of `v` (NaN when empty).
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Mean and sample standard deviation (n - 1; NaN for one value).
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_means_and_deviations() {
        assert_eq!(median(&[3.0, 1.0, 2.0, 10.0]), 2.5);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert!(median(&[]).is_nan());
        let (m, s) = mean_std(&[80.0, 90.0]);
        assert_eq!(m, 85.0);
        assert!((s - 50f64.sqrt()).abs() < 1e-12);
        assert!(
            mean_std(&[1.0]).1.is_nan(),
            "one value has no sample deviation"
        );
        assert_eq!(
            (finite(1.5), finite(f64::NAN), finite(f64::INFINITY)),
            (Some(1.5), None, None)
        );
    }
}
