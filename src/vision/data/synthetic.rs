//! A small, learnable synthetic image set, deterministic from its seed.
use super::*;
use crate::error::Result;
use crate::random::standard_normal;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::Tensor;

pub(super) fn synthetic_data(spec: &SyntheticSpec) -> Result<ImageData> {
    spec.validate()?;
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let (c, s) = (spec.channels as usize, spec.size as usize);
    let pixels = c * s * s;
    let g = SYNTHETIC_GRID;
    // Bilinear weights of the coarse grid along one side: (low cell, high cell, t).
    let axis: Vec<(usize, usize, f64)> = (0..s)
        .map(|y| {
            let pos = if s > 1 {
                y as f64 * (g - 1) as f64 / (s - 1) as f64
            } else {
                0.0
            };
            let lo = (pos.floor() as usize).min(g - 1);
            (lo, (lo + 1).min(g - 1), pos - lo as f64)
        })
        .collect();
    let mut prototypes = Vec::with_capacity(spec.classes as usize * pixels);
    for _ in 0..spec.classes {
        for _ in 0..c {
            let grid: Vec<f64> = (0..g * g).map(|_| rng.gen::<f64>()).collect();
            for &(y0, y1, ty) in &axis {
                for &(x0, x1, tx) in &axis {
                    let top = grid[y0 * g + x0] * (1.0 - tx) + grid[y0 * g + x1] * tx;
                    let bottom = grid[y1 * g + x0] * (1.0 - tx) + grid[y1 * g + x1] * tx;
                    prototypes.push(top * (1.0 - ty) + bottom * ty);
                }
            }
        }
    }
    let mut sample = |n: i64| -> ImageSet {
        let mut images = Vec::with_capacity(n as usize * pixels);
        let labels: Vec<i64> = (0..n).map(|i| i % spec.classes).collect();
        for &label in &labels {
            let proto = &prototypes[label as usize * pixels..(label as usize + 1) * pixels];
            images.extend(proto.iter().map(|&p| {
                let v = (p + SYNTHETIC_NOISE * standard_normal(&mut rng)) * 255.0;
                v.round().clamp(0.0, 255.0) as u8
            }));
        }
        ImageSet {
            images: Tensor::from_slice(&images).view([n, spec.channels, spec.size, spec.size]),
            labels: Tensor::from_slice(&labels),
            classes: spec.classes,
        }
    };
    let train = sample(spec.train);
    let test = sample(spec.test);
    let (mean, std) = channel_mean_std(&train.images);
    Ok(ImageData {
        train,
        test,
        name: DatasetKind::Synthetic.name().to_string(),
        mean,
        std,
    })
}
