//! Image batches for training and evaluation, built on the batch's device with whole-batch
//! tensor ops (no loop over images): normalization, and the random crop with zero padding and
//! random horizontal flip of the usual CIFAR recipe (torchvision's
//! `RandomCrop(32, padding=4)`, `RandomHorizontalFlip()`, `ToTensor()`, `Normalize(mean, std)`).
//!
//! torchvision pads the raw image with black (0) before normalizing. [`augment`] does the same
//! (crop and flip the u8 batch, then normalize); for a batch that is already normalized,
//! [`random_crop_flip_fill`] with [`pad_fill`] pads with the normalized value of black, which
//! gives the same result exactly.
//!
//! The per-image crop offsets and flips are drawn from libtorch's global CPU generator
//! (`tch::manual_seed`; the training engine seeds it for every step), on the CPU whatever the
//! batch's device, so a seed gives the same batch on every device.
use tch::{Device, Kind, Tensor};

/// The normalized value of a black (0) pixel, per channel: `(0 - mean) / std`.
pub fn pad_fill(mean: &[f64], std: &[f64]) -> Vec<f64> {
    mean.iter().zip(std).map(|(m, s)| -m / s).collect()
}

/// u8 images `[B, C, H, W]` -> f32 `(x / 255 - mean[c]) / std[c]`, on the images' device.
/// `mean` and `std` are per channel, in `[0, 1]` pixel units.
pub fn normalize(images_u8: &Tensor, mean: &[f64], std: &[f64]) -> Tensor {
    let c = images_u8.size()[1];
    assert!(
        mean.len() == c as usize && std.len() == c as usize,
        "normalize: {c} channels but {} means and {} stds",
        mean.len(),
        std.len()
    );
    let device = images_u8.device();
    let scale: Vec<f32> = std.iter().map(|s| (1.0 / (255.0 * s)) as f32).collect();
    let shift: Vec<f32> = pad_fill(mean, std).iter().map(|&v| v as f32).collect();
    let per_channel = |v: &[f32]| Tensor::from_slice(v).view([1, c, 1, 1]).to_device(device);
    let mut x = images_u8.to_kind(Kind::Float);
    let _ = x.g_mul_(&per_channel(&scale)).g_add_(&per_channel(&shift));
    x
}

/// The training batch: a random crop of each image from it zero-padded by `pad` on every
/// side, flipped horizontally with probability 1/2 when `flip`, then normalized (f32).
/// Exactly torchvision's `RandomCrop(H, padding=pad)`, `RandomHorizontalFlip()`, `ToTensor()`,
/// `Normalize(mean, std)` on each image, up to the random draws.
pub fn augment(images_u8: &Tensor, mean: &[f64], std: &[f64], pad: i64, flip: bool) -> Tensor {
    normalize(&random_crop_flip(images_u8, pad, flip), mean, std)
}

/// Random crop and horizontal flip of a batch `[B, C, H, W]` (any kind), padding with 0:
/// each image is cropped at a random offset (each of `0..=2 pad`, as the top-left corner in
/// the image padded by `pad`) and, when `flip`, mirrored with probability 1/2. Zero is black
/// in raw pixels; for a normalized batch use [`random_crop_flip_fill`] with [`pad_fill`].
/// With `pad == 0` and no `flip` the batch is returned as it is.
pub fn random_crop_flip(x: &Tensor, pad: i64, flip: bool) -> Tensor {
    crop_flip(x, pad, flip, None)
}

/// [`random_crop_flip`] padding channel `c` with `fill[c]`.
pub fn random_crop_flip_fill(x: &Tensor, pad: i64, flip: bool, fill: &[f64]) -> Tensor {
    crop_flip(x, pad, flip, Some(fill))
}

fn crop_flip(x: &Tensor, pad: i64, flip: bool, fill: Option<&[f64]>) -> Tensor {
    assert!(pad >= 0, "random_crop_flip: negative padding {pad}");
    if pad == 0 && !flip {
        return x.shallow_clone();
    }
    let draws = Draws::new(x.size()[0], pad, flip);
    draws.apply(x, pad, fill)
}

/// The random draws of one batch: crop offsets in the padded image and flips, i64 `[B]`.
struct Draws {
    dy: Tensor,
    dx: Tensor,
    flip: Tensor,
}

impl Draws {
    /// Draws `dy`, then `dx` (uniform in `0..=2 pad`, when `pad > 0`), then the flips (when
    /// `flip`), on the CPU from the global generator.
    fn new(batch: i64, pad: i64, flip: bool) -> Draws {
        let opts = (Kind::Int64, Device::Cpu);
        let offsets = || {
            if pad > 0 {
                Tensor::randint(2 * pad + 1, [batch], opts)
            } else {
                Tensor::zeros([batch], opts)
            }
        };
        let dy = offsets();
        let dx = offsets();
        let flip = if flip {
            Tensor::randint(2, [batch], opts)
        } else {
            Tensor::zeros([batch], opts)
        };
        Draws { dy, dx, flip }
    }

    /// Output pixel (y, x) of image b is pixel (y + dy, x' + dx) of the image padded by `pad`,
    /// with x' = W - 1 - x when flipped, else x: one gather over the flattened padded images.
    fn apply(&self, x: &Tensor, pad: i64, fill: Option<&[f64]>) -> Tensor {
        let [b, c, h, w] = x.size()[..] else {
            panic!(
                "random_crop_flip: expected a batch [B, C, H, W], got {:?}",
                x.size()
            );
        };
        let device = x.device();
        let (hp, wp) = (h + 2 * pad, w + 2 * pad);
        let padded = match fill {
            None if pad == 0 => x.shallow_clone(),
            None => x.constant_pad_nd([pad, pad, pad, pad]),
            Some(fill) => {
                assert_eq!(
                    fill.len() as i64,
                    c,
                    "random_crop_flip: one fill value a channel"
                );
                let padded = Tensor::from_slice(fill)
                    .to_kind(x.kind())
                    .to_device(device)
                    .view([1, c, 1, 1])
                    .expand([b, c, hp, wp], false)
                    .contiguous();
                padded.narrow(2, pad, h).narrow(3, pad, w).copy_(x);
                padded
            }
        };
        let opts = (Kind::Int64, device);
        let per_image = |t: &Tensor| t.to_device(device).view([b, 1, 1]);
        let ys = Tensor::arange(h, opts).view([1, h, 1]);
        let xs = Tensor::arange(w, opts).view([1, 1, w]);
        let rows = ys + per_image(&self.dy);
        let cols = &xs + per_image(&self.flip) * ((w - 1) - &xs * 2) + per_image(&self.dx);
        let index = (rows * wp + cols)
            .view([b, 1, h * w])
            .expand([b, c, h * w], false);
        padded
            .reshape([b, c, hp * wp])
            .gather(2, &index, false)
            .view([b, c, h, w])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serial_test::serial;

    /// A u8 batch whose pixels are all non-zero and mostly distinct.
    fn batch(b: i64, c: i64, h: i64, w: i64) -> Tensor {
        (Tensor::arange(b * c * h * w, (Kind::Int64, Device::Cpu)).remainder(250) + 1)
            .to_kind(Kind::Uint8)
            .view([b, c, h, w])
    }

    /// Image `img` `[C, H, W]` padded with zeros by `pad` and cropped at (dy, dx): the
    /// reference, written with pad + narrow instead of a gather.
    fn shifted(img: &Tensor, pad: i64, dy: i64, dx: i64) -> Tensor {
        let [_, h, w] = img.size()[..] else {
            unreachable!()
        };
        img.constant_pad_nd([pad, pad, pad, pad])
            .narrow(1, dy, h)
            .narrow(2, dx, w)
    }

    fn draws(dy: &[i64], dx: &[i64], flip: &[i64]) -> Draws {
        Draws {
            dy: Tensor::from_slice(dy),
            dx: Tensor::from_slice(dx),
            flip: Tensor::from_slice(flip),
        }
    }

    #[test]
    #[serial(torch_rng)]
    fn no_pad_no_flip_is_the_identity() {
        let x = batch(5, 3, 6, 7);
        assert!(random_crop_flip(&x, 0, false).equal(&x));
        let xf = normalize(&x, &[0.5, 0.4, 0.3], &[0.2, 0.25, 0.3]);
        assert!(random_crop_flip(&xf, 0, false).equal(&xf));
        // The gather path: centered crops without flips.
        let centered = draws(&[4; 5], &[4; 5], &[0; 5]);
        assert!(centered.apply(&x, 4, None).equal(&x));
        assert!(draws(&[0; 5], &[0; 5], &[0; 5])
            .apply(&x, 0, None)
            .equal(&x));
    }

    #[test]
    #[serial(torch_rng)]
    fn flips_are_exact_mirrors() {
        let x = batch(4, 2, 5, 6);
        let d = draws(&[0; 4], &[0; 4], &[1, 0, 1, 0]);
        let out = d.apply(&x, 0, None);
        assert!(out.get(0).equal(&x.get(0).flip([2])));
        assert!(out.get(1).equal(&x.get(1)));
        assert!(out.get(2).equal(&x.get(2).flip([2])));
        // Random flips: each image is itself or its mirror, and both happen.
        let x = batch(64, 3, 4, 5);
        tch::manual_seed(1);
        let out = random_crop_flip(&x, 0, true);
        let mut flipped = 0;
        for i in 0..64 {
            let (o, xi) = (out.get(i), x.get(i));
            if o.equal(&xi.flip([2])) {
                flipped += 1;
            } else {
                assert!(o.equal(&xi), "image {i} is neither itself nor its mirror");
            }
        }
        assert!((10..=54).contains(&flipped), "{flipped} of 64 flipped");
    }

    #[test]
    #[serial(torch_rng)]
    fn crops_are_shifted_copies_with_zero_borders() {
        let x = batch(6, 3, 8, 8);
        // Known draws against the pad + narrow reference, flipped and not.
        let (dy, dx, fl) = ([0, 8, 4, 1, 7, 3], [0, 8, 2, 6, 0, 5], [0, 0, 1, 1, 0, 1]);
        let out = draws(&dy, &dx, &fl).apply(&x, 4, None);
        for i in 0..6 {
            // torchvision's order: crop, then flip the crop.
            let mut want = shifted(&x.get(i), 4, dy[i as usize], dx[i as usize]);
            if fl[i as usize] == 1 {
                want = want.flip([2]);
            }
            assert!(out.get(i).equal(&want), "image {i}");
        }
        // Top-left crop: 4 zero rows and columns, then the image's top-left part.
        let tl = out.get(0);
        assert_eq!(
            tl.narrow(1, 0, 4).abs().sum(Kind::Int64).int64_value(&[]),
            0
        );
        assert_eq!(
            tl.narrow(2, 0, 4).abs().sum(Kind::Int64).int64_value(&[]),
            0
        );
        assert!(tl
            .narrow(1, 4, 4)
            .narrow(2, 4, 4)
            .equal(&x.get(0).narrow(1, 0, 4).narrow(2, 0, 4)));

        // Random crops: each image is one of the 81 shifted copies, offsets vary.
        let x = batch(32, 2, 8, 8);
        tch::manual_seed(5);
        let out = random_crop_flip(&x, 4, false);
        let mut seen = std::collections::HashSet::new();
        for i in 0..32 {
            let found = (0..9)
                .flat_map(|dy| (0..9).map(move |dx| (dy, dx)))
                .find(|&(dy, dx)| out.get(i).equal(&shifted(&x.get(i), 4, dy, dx)));
            seen.insert(found.unwrap_or_else(|| panic!("image {i} is no shifted copy")));
        }
        assert!(seen.len() > 10, "{seen:?}");
    }

    #[test]
    #[serial(torch_rng)]
    fn same_seed_same_batch() {
        let x = normalize(&batch(16, 3, 8, 8), &[0.5; 3], &[0.25; 3]);
        let run = |seed| {
            tch::manual_seed(seed);
            random_crop_flip(&x, 4, true)
        };
        // Tests on other threads draw from the same global generator; one of their draws
        // between our seed and our draws would change them, so a few attempts are allowed.
        assert!((0..5).any(|_| run(3).equal(&run(3))));
        assert!(!run(3).equal(&run(4)));
    }

    #[test]
    fn normalize_matches_the_formula() {
        let x = Tensor::from_slice(&[0u8, 255, 128, 7]).view([1, 2, 1, 2]);
        let (mean, std) = ([0.4914, 0.4822], [0.2470, 0.2435]);
        let y = normalize(&x, &mean, &std);
        assert_eq!(y.kind(), Kind::Float);
        let got = Vec::<f32>::try_from(&y.view([-1])).unwrap();
        let want = [
            (0.0 - mean[0]) / std[0],
            (1.0 - mean[0]) / std[0],
            (128.0 / 255.0 - mean[1]) / std[1],
            (7.0 / 255.0 - mean[1]) / std[1],
        ];
        for (g, w) in got.iter().zip(want) {
            assert!((*g as f64 - w).abs() < 1e-5, "{got:?} vs {want:?}");
        }
        assert_eq!(got[0], pad_fill(&mean, &std)[0] as f32);
    }

    #[test]
    fn padding_a_normalized_batch_with_the_fill_is_cropping_before_normalizing() {
        let x = batch(6, 3, 8, 8);
        let (mean, std) = ([0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]);
        let d = draws(
            &[0, 8, 4, 1, 7, 3],
            &[0, 8, 2, 6, 0, 5],
            &[0, 0, 1, 1, 0, 1],
        );
        let raw_first = normalize(&d.apply(&x, 4, None), &mean, &std);
        let fill = pad_fill(&mean, &std);
        let normalized_first = d.apply(&normalize(&x, &mean, &std), 4, Some(&fill));
        assert!(raw_first.equal(&normalized_first));
        // Zero padding of a normalized batch would not be.
        let zero_padded = d.apply(&normalize(&x, &mean, &std), 4, None);
        assert!(!raw_first.equal(&zero_padded));
    }
}
