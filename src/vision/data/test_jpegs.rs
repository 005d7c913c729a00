//! JPEGs for the tests, in the layouts libjpeg meets: photograph-like pixels (gradients,
//! edges and noise, so that an upsampling or rounding difference shows), every chroma
//! subsampling, baseline and progressive, restart markers, gray, CMYK and YCCK; and the
//! files Pillow wrote (tests/fixtures/pillow/).
use jpeg_encoder::{ColorType, Encoder, SamplingFactor};
use std::path::Path;

/// `w` x `h` pixels of `c` channels: smooth gradients, a disc, a diagonal edge, noise.
pub fn photo(w: usize, h: usize, c: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut noise = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % 41) as f64 - 20.0
    };
    let mut out = Vec::with_capacity(w * h * c);
    for y in 0..h {
        for x in 0..w {
            let (fx, fy) = (x as f64, y as f64);
            let disc = (fx - w as f64 / 3.0).hypot(fy - h as f64 / 2.0) < h as f64 / 4.0;
            let edge = 2 * x > y + w / 3;
            for ch in 0..c {
                let base = 128.0
                    + 90.0 * (0.05 * fx * (ch + 1) as f64 + 0.07 * fy + seed as f64).sin()
                    + if disc { 60.0 } else { 0.0 }
                    - if edge && ch % 2 == 0 { 50.0 } else { 0.0 };
                out.push((base + noise()).clamp(0.0, 255.0) as u8);
            }
        }
    }
    out
}

/// One test JPEG's layout.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    pub width: u16,
    pub height: u16,
    pub color: ColorType,
    pub sampling: SamplingFactor,
    pub progressive: bool,
    pub restart: u16,
}

pub fn encode(l: Layout, seed: u64) -> Vec<u8> {
    let c = match l.color {
        ColorType::Luma => 1,
        ColorType::Cmyk | ColorType::CmykAsYcck => 4,
        _ => 3,
    };
    let pixels = photo(l.width as usize, l.height as usize, c, seed);
    let mut out = Vec::new();
    let mut enc = Encoder::new(&mut out, 90);
    enc.set_sampling_factor(l.sampling);
    enc.set_progressive(l.progressive);
    enc.set_restart_interval(l.restart);
    enc.encode(&pixels, l.width, l.height, l.color)
        .expect("the test JPEG encodes");
    out
}

/// Named JPEGs of every layout (odd sizes, so that partial iMCUs occur at both edges).
pub fn variety() -> Vec<(String, Vec<u8>)> {
    use SamplingFactor::*;
    let base = Layout {
        width: 173,
        height: 131,
        color: ColorType::Rgb,
        sampling: R_4_2_0,
        progressive: false,
        restart: 0,
    };
    let mut layouts = vec![];
    for sampling in [R_4_4_4, R_4_2_2, R_4_2_0, R_4_4_0, R_4_1_1] {
        for progressive in [false, true] {
            layouts.push(Layout {
                sampling,
                progressive,
                ..base
            });
        }
    }
    layouts.extend([
        Layout { restart: 3, ..base },
        Layout {
            color: ColorType::Luma,
            ..base
        },
        Layout {
            color: ColorType::Luma,
            progressive: true,
            ..base
        },
        Layout {
            color: ColorType::Cmyk,
            ..base
        },
        Layout {
            color: ColorType::CmykAsYcck,
            ..base
        },
        Layout {
            width: 17,
            height: 9,
            ..base
        },
        Layout {
            width: 40,
            height: 203,
            progressive: true,
            ..base
        },
    ]);
    let mut files: Vec<(String, Vec<u8>)> = layouts
        .into_iter()
        .enumerate()
        .map(|(k, l)| (format!("{l:?}"), encode(l, k as u64)))
        .collect();
    let pillow = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pillow");
    for name in ["baseline.jpg", "progressive.jpg", "gray.jpg", "cmyk.jpg"] {
        let bytes = std::fs::read(pillow.join(name)).expect("the Pillow fixtures are there");
        files.push((format!("Pillow's {name}"), bytes));
    }
    files
}
