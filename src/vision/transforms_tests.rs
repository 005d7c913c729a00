use super::*;
use crate::vision::data::decode::{decode, Decoder, Pixels};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

const SCALE: (f64, f64) = (0.08, 1.0);
const RATIO: (f64, f64) = (3.0 / 4.0, 4.0 / 3.0);

/// torchvision's acceptance region of one try on a large `aspect` = W / H image (rounding
/// aside): area fraction s ~ U(scale), log r ~ U(log ratio); the box fits when
/// `s r <= aspect` (width) and `s / r <= 1 / aspect` (height). Returns, by a midpoint rule
/// over (s, log r) on a fine grid, P(accept) and E[s | accept], E[log r | accept].
fn accept_integrals(aspect: f64) -> (f64, f64, f64) {
    let n = 2000;
    let (l0, l1) = (RATIO.0.ln(), RATIO.1.ln());
    let (mut p, mut es, mut el) = (0.0, 0.0, 0.0);
    for i in 0..n {
        let s = SCALE.0 + (SCALE.1 - SCALE.0) * (i as f64 + 0.5) / n as f64;
        for j in 0..n {
            let l = l0 + (l1 - l0) * (j as f64 + 0.5) / n as f64;
            let r = l.exp();
            if (s * r).sqrt() <= aspect.sqrt() && (s / r).sqrt() <= 1.0 / aspect.sqrt() {
                p += 1.0;
                es += s;
                el += l;
            }
        }
    }
    (p / (n * n) as f64, es / p, el / p)
}

/// 100,000 draws on a 500 x 375 image (ImageNet's typical shape) against the integrals:
/// the rate of the centre-crop fall-back, the mean area fraction and log aspect ratio of the
/// boxes drawn, and uniform positions.
#[test]
fn crop_statistics_of_100k_draws_match_torchvision_definition() {
    let (w, h) = (500usize, 375usize);
    let (p, es, el) = accept_integrals(w as f64 / h as f64);
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let draws = 100_000;
    let (mut fallback, mut sum_s, mut sum_l, mut sum_pos, mut accepted) = (0, 0.0, 0.0, 0.0, 0);
    for _ in 0..draws {
        let b = random_resized_crop_box(w, h, SCALE, RATIO, &mut rng);
        assert!(b.top + b.height <= h && b.left + b.width <= w && b.width > 0 && b.height > 0);
        // The fall-back on an image whose ratio lies within `ratio` is the whole image
        // (500 / 375 is 4/3 exactly).
        if b == (CropBox {
            top: 0,
            left: 0,
            height: h,
            width: w,
        }) {
            fallback += 1;
            continue;
        }
        accepted += 1;
        sum_s += (b.width * b.height) as f64 / (w * h) as f64;
        sum_l += (b.width as f64 / b.height as f64).ln();
        if b.width < w {
            sum_pos += b.left as f64 / (w - b.width) as f64;
        } else {
            sum_pos += 0.5;
        }
    }
    // The whole image can also be drawn on a try (s near 1, r near 4/3): a handful at most.
    let want_fallback = (1.0 - p).powi(10) * draws as f64;
    let sd = want_fallback.sqrt().max(3.0);
    assert!(
        (fallback as f64 - want_fallback).abs() < 5.0 * sd + 20.0,
        "fall-backs {fallback}, expected {want_fallback:.0}"
    );
    let n = accepted as f64;
    // s is at most uniform on [0.08, 1]: sd < 0.27; 5 sd of the mean of n draws.
    assert!(
        (sum_s / n - es).abs() < 5.0 * 0.27 / n.sqrt() + 2e-3,
        "{} vs {es}",
        sum_s / n
    );
    assert!(
        (sum_l / n - el).abs() < 5.0 * 0.17 / n.sqrt() + 2e-3,
        "{} vs {el}",
        sum_l / n
    );
    assert!((sum_pos / n - 0.5).abs() < 0.01, "{}", sum_pos / n);
}

#[test]
fn fallback_clamps_to_the_ratio_bounds() {
    // An impossible scale (more than the image) forces the fall-back every time.
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let wide = random_resized_crop_box(1000, 100, (2.0, 3.0), RATIO, &mut rng);
    assert_eq!(
        wide,
        CropBox {
            top: 0,
            left: 433,
            height: 100,
            width: 133
        }
    );
    let tall = random_resized_crop_box(100, 1000, (2.0, 3.0), RATIO, &mut rng);
    assert_eq!(
        tall,
        CropBox {
            top: 433,
            left: 0,
            height: 133,
            width: 100
        }
    );
    let square = random_resized_crop_box(100, 100, (2.0, 3.0), RATIO, &mut rng);
    assert_eq!(
        square,
        CropBox {
            top: 0,
            left: 0,
            height: 100,
            width: 100
        }
    );
}

#[test]
fn resize_and_center_crop_follow_torchvision_arithmetic() {
    assert_eq!(resized_size(500, 375, 256), (341, 256));
    assert_eq!(resized_size(375, 500, 256), (256, 341));
    assert_eq!(resized_size(256, 256, 256), (256, 256));
    // (341 - 224) / 2 = 58.5 rounds to 58 (half to even).
    assert_eq!(center_crop_offsets(341, 256, 224), (16, 58));
    assert_eq!(center_crop_offsets(343, 256, 224), (16, 60));
}

#[test]
fn chw_copy_and_flip() {
    // 2 x 2 RGB: pixel (y, x) = [10 y + x, 100 + ..., 200 + ...].
    let hwc: Vec<u8> = (0..2)
        .flat_map(|y| (0..2).flat_map(move |x| [10 * y + x, 100 + 10 * y + x, 200 + 10 * y + x]))
        .collect();
    let mut out = vec![0u8; 12];
    to_chw(&hwc, 3, 2, false, &mut out);
    assert_eq!(
        out,
        vec![0, 1, 10, 11, 100, 101, 110, 111, 200, 201, 210, 211]
    );
    to_chw(&hwc, 3, 2, true, &mut out);
    assert_eq!(
        out,
        vec![1, 0, 11, 10, 101, 100, 111, 110, 201, 200, 211, 210]
    );
}

#[test]
fn resizing_a_constant_image_keeps_it_and_same_size_is_identity() {
    let img = Pixels {
        width: 50,
        height: 40,
        channels: 3,
        data: vec![77; 50 * 40 * 3],
    };
    let mut t = Transformer::new();
    t.resize_center_crop(&img, 32, 24).unwrap();
    assert!(t.scratch.iter().all(|&v| v == 77));
    let ramp = Pixels {
        width: 8,
        height: 8,
        channels: 1,
        data: (0..64).map(|v| v as u8 * 3).collect(),
    };
    t.crop_resize(
        &ramp,
        CropBox {
            top: 0,
            left: 0,
            height: 8,
            width: 8,
        },
        8,
    )
    .unwrap();
    assert_eq!(t.scratch, ramp.data);
    t.crop_resize(
        &ramp,
        CropBox {
            top: 2,
            left: 3,
            height: 4,
            width: 4,
        },
        4,
    )
    .unwrap();
    let want: Vec<u8> = (2..6)
        .flat_map(|y| (3..7).map(move |x| (y * 8 + x) as u8 * 3))
        .collect();
    assert_eq!(t.scratch, want);
}

#[test]
fn center_crop_support_covers_the_filter_of_the_kept_pixels() {
    // Resize(256) of 500 x 375 is 341 x 256, scale 1.466 and 1.465; the crop keeps columns
    // 58..282 and rows 16..240 of it: source columns 85.0..413.5 and rows 23.4..351.6,
    // widened by the filter's support (1.47) and one pixel.
    let r = center_crop_support(500, 375, 256, 224);
    assert_eq!(
        r,
        CropBox {
            top: 20,
            left: 82,
            height: 335,
            width: 334
        }
    );
    // Upscaling: support 1 source pixel; a crop larger than the image reads all of it.
    // Resize(40) of 20 x 10 is 80 x 40; the crop keeps columns 36..44 and rows 16..24 of it,
    // source columns 9..11 and rows 4..6, widened by 1 + 1.
    assert_eq!(
        center_crop_support(20, 10, 40, 8),
        CropBox {
            top: 2,
            left: 7,
            height: 6,
            width: 6
        }
    );
    assert_eq!(center_crop_support(20, 10, 8, 32), CropBox::whole(20, 10));
}

/// The transforms of the tests: RandomResizedCrop at two sizes and scales, Resize +
/// CenterCrop downscaling, upscaling and with a crop larger than the resize.
fn transforms() -> Vec<Transform> {
    let rrc = |size, scale| Transform {
        kind: TransformKind::RandomResizedCrop,
        size,
        resize: 256,
        scale,
        ratio: RATIO,
        flip: true,
    };
    let center = |resize, size| Transform {
        kind: TransformKind::ResizeCenterCrop,
        size,
        resize,
        scale: SCALE,
        ratio: RATIO,
        flip: false,
    };
    vec![
        rrc(24, SCALE),
        rrc(64, SCALE),
        rrc(16, (0.01, 0.05)),
        center(40, 32),
        center(64, 56),
        center(131, 120),
        center(140, 128),
        center(250, 224),
        center(30, 40),
        center(160, 16),
    ]
}

/// Decoding only the rectangle a transform reads and transforming it gives the output of the
/// whole decode, bit for bit, for every JPEG layout (subsampling, progressive, gray, CMYK),
/// L and RGB, many crop boxes (edges included) and the centre crops; the decoder's canvas is
/// poisoned first, so that a pixel read outside the rectangle shows.
#[test]
fn region_decode_then_transform_equals_whole_decode_then_transform() {
    let p = Path::new("x.JPEG");
    let mut decoder = Decoder::new();
    let mut t = Transformer::new();
    let (mut plans, mut smaller) = (0, 0);
    for (name, bytes) in crate::vision::data::test_jpegs::variety() {
        for channels in [3, 1] {
            let whole = decode(&bytes, p, channels).unwrap();
            let (w, h) = (whole.width, whole.height);
            for tr in transforms() {
                let seeds = if tr.kind == TransformKind::RandomResizedCrop {
                    30
                } else {
                    1
                };
                let slot = channels * tr.size * tr.size;
                for seed in 0..seeds {
                    let mut want = vec![0u8; slot];
                    let mut rng = ChaCha8Rng::seed_from_u64(seed);
                    t.apply(&tr, &whole, p, &mut rng, &mut want).unwrap();
                    let mut rng = ChaCha8Rng::seed_from_u64(seed);
                    decoder.poison(w * h * channels, 0xA5 ^ seed as u8);
                    let (img, plan) = decoder
                        .decode_region(&bytes, p, channels, |w, h| {
                            let plan = tr.plan(w, h, &mut rng);
                            (plan.region, plan)
                        })
                        .unwrap();
                    let mut got = vec![0u8; slot];
                    t.render(&tr, &plan, img, p, &mut got).unwrap();
                    assert!(
                        got == want,
                        "{name}, {channels} channels, {tr:?}, seed {seed}: {plan:?} differs"
                    );
                    plans += 1;
                    smaller += usize::from(plan.region != CropBox::whole(w, h));
                }
            }
        }
    }
    // Most plans read less than the whole image (else this would test nothing).
    assert!(
        smaller * 10 > plans * 8,
        "{smaller} of {plans} plans read a part"
    );
}
