//! Image folders written by fixclf: an in-memory data set (Fashion-MNIST, MNIST, CIFAR) as a
//! PNG `ImageFolder` (`fixclf data export`), and folders of photograph-like JPEGs of a given
//! size and quality for tests and benchmarks (`fixclf data jpegs`).
//!
//! A folder is written whole into `<out>.partial-<pid>/` and renamed to `<out>` at the end,
//! so an interrupted export leaves no folder that looks finished.
use super::data::{self, DatasetKind, ImageSet};
use crate::error::{Error, IoContext, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// The staging folder of `out`; refuses an `out` that exists.
pub fn staging_dir(out: &Path) -> Result<PathBuf> {
    if out.exists() {
        return Err(Error::bad_file(
            out,
            "already exists; remove it or choose another --out",
        ));
    }
    let name = out
        .file_name()
        .map_or("out".into(), |n| n.to_string_lossy().to_string());
    let partial = out.with_file_name(format!("{name}.partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial).at(&partial)?;
    Ok(partial)
}

/// Renames the finished staging folder to `out`.
pub fn finish_dir(partial: &Path, out: &Path) -> Result<()> {
    std::fs::rename(partial, out).at(out)
}

/// Class folder names `0..classes`, zero-padded so that their sorted order is the labels'.
pub fn class_names(classes: usize) -> Vec<String> {
    let width = (classes.max(2) - 1).to_string().len();
    (0..classes).map(|c| format!("{c:0width$}")).collect()
}

/// PNG bytes of one u8 image `[C, H, W]` (C 1 or 3).
pub fn png_bytes(chw: &[u8], c: usize, h: usize, w: usize) -> Vec<u8> {
    let mut hwc = vec![0u8; chw.len()];
    for ch in 0..c {
        for p in 0..h * w {
            hwc[p * c + ch] = chw[ch * h * w + p];
        }
    }
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w as u32, h as u32);
    enc.set_color(if c == 1 {
        png::ColorType::Grayscale
    } else {
        png::ColorType::Rgb
    });
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().expect("writing to memory");
    writer.write_image_data(&hwc).expect("sizes match");
    writer.finish().expect("writing to memory");
    out
}

/// Writes `set` as `<dir>/<class>/<index>.png` (index in the set, zero-padded).
fn write_split(set: &ImageSet, dir: &Path) -> Result<usize> {
    let [c, h, w] = set.image_shape().map(|v| v as usize);
    let n = set.len() as usize;
    let names = class_names(set.classes as usize);
    for name in &names {
        std::fs::create_dir_all(dir.join(name)).at(dir.join(name))?;
    }
    let images = Vec::<u8>::try_from(set.images.contiguous().view([-1])).expect("u8 images");
    let labels = Vec::<i64>::try_from(&set.labels).expect("i64 labels");
    let digits = n.max(2).to_string().len();
    (0..n).into_par_iter().try_for_each(|i| {
        let img = &images[i * c * h * w..(i + 1) * c * h * w];
        let path = dir
            .join(&names[labels[i] as usize])
            .join(format!("{i:0digits$}.png"));
        std::fs::write(&path, png_bytes(img, c, h, w)).at(&path)
    })?;
    Ok(n)
}

/// `fixclf data export`: the data set `kind` in `dir` as a PNG image folder at `out`
/// (`train/`, `val/`); returns the image counts.
pub fn export_png_folder(kind: DatasetKind, dir: &Path, out: &Path) -> Result<(usize, usize)> {
    if kind.is_streamed() || kind == DatasetKind::Synthetic {
        return Err(Error::arg(
            "--dataset",
            format!("{kind} is not a file data set; use fashion-mnist, mnist, cifar10 or cifar100"),
        ));
    }
    let data = data::load(kind, dir, None)?;
    let partial = staging_dir(out)?;
    let train = write_split(&data.train, &partial.join("train"))?;
    let test = write_split(&data.test, &partial.join("val"))?;
    finish_dir(&partial, out)?;
    Ok((train, test))
}

/// What `fixclf data jpegs` makes.
#[derive(Debug, Clone, Copy)]
pub struct JpegSpec {
    pub classes: usize,
    pub per_class: usize,
    pub width: usize,
    pub height: usize,
    pub quality: u8,
    pub seed: u64,
}

/// One photograph-like RGB image `[H, W, 3]`: smooth random colour fields (a few random
/// waves per channel over the class's base colour), edges and fine noise, so that JPEG
/// encoding and decoding cost what they cost on photographs; the class is learnable from
/// the base colour.
pub fn photo_like(spec: &JpegSpec, class: usize, rng: &mut impl Rng) -> Vec<u8> {
    let (w, h) = (spec.width, spec.height);
    let mut base = ChaCha8Rng::seed_from_u64(spec.seed ^ 0xC1A5 ^ class as u64);
    let colour: [f32; 3] = [0, 1, 2].map(|_| base.gen_range(40.0..215.0));
    let waves: Vec<(f32, f32, f32, f32, usize)> = (0..6)
        .map(|k| {
            (
                rng.gen_range(0.002..0.05),
                rng.gen_range(0.002..0.05),
                rng.gen_range(0.0..6.3),
                rng.gen_range(10.0..40.0),
                k % 3,
            )
        })
        .collect();
    let (ex, ey) = (rng.gen_range(0..w) as f32, rng.gen_range(0..h) as f32);
    let mut out = vec![0u8; w * h * 3];
    for y in 0..h {
        for x in 0..w {
            let mut px = colour;
            for &(fx, fy, ph, amp, ch) in &waves {
                px[ch] += amp * (fx * x as f32 + fy * y as f32 + ph).sin();
            }
            // An object: a disc of another shade.
            let (dx, dy) = (x as f32 - ex, y as f32 - ey);
            let inside = dx * dx + dy * dy < (h as f32 / 4.0).powi(2);
            for (c, v) in px.iter().enumerate() {
                let noise: f32 = rng.gen_range(-12.0..12.0);
                let v = if inside { 255.0 - v } else { *v };
                out[(y * w + x) * 3 + c] = (v + noise).clamp(0.0, 255.0) as u8;
            }
        }
    }
    out
}

/// JPEG bytes of RGB `[H, W, 3]` pixels at `quality` (4:2:0, as Pillow's default).
pub fn jpeg_bytes(rgb: &[u8], w: usize, h: usize, quality: u8) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let enc = jpeg_encoder::Encoder::new(&mut out, quality);
    enc.encode(rgb, w as u16, h as u16, jpeg_encoder::ColorType::Rgb)
        .map_err(|e| Error::arg("jpeg", e.to_string()))?;
    Ok(out)
}

/// `fixclf data jpegs`: `<out>/{train,val}/<class>/<i>.jpg`, `per_class` training images
/// and a fifth of that (at least one) for validation per class.
pub fn write_jpeg_folder(spec: &JpegSpec, out: &Path) -> Result<usize> {
    if spec.width == 0 || spec.height == 0 || spec.width > 8192 || spec.height > 8192 {
        return Err(Error::arg("--width/--height", "use 1 to 8192 pixels"));
    }
    let partial = staging_dir(out)?;
    let names = class_names(spec.classes);
    let mut jobs = Vec::new();
    for (split, n) in [
        ("train", spec.per_class),
        ("val", (spec.per_class / 5).max(1)),
    ] {
        for (c, name) in names.iter().enumerate() {
            let dir = partial.join(split).join(name);
            std::fs::create_dir_all(&dir).at(&dir)?;
            let base = jobs.len();
            jobs.extend((0..n).map(|i| (dir.join(format!("{i:06}.jpg")), c, base + i)));
        }
    }
    jobs.par_iter().try_for_each(|(path, c, k)| {
        let mut rng = ChaCha8Rng::seed_from_u64(spec.seed.wrapping_add(*k as u64 * 7919));
        let rgb = photo_like(spec, *c, &mut rng);
        std::fs::write(
            path,
            jpeg_bytes(&rgb, spec.width, spec.height, spec.quality)?,
        )
        .at(path)
    })?;
    finish_dir(&partial, out)?;
    Ok(jobs.len())
}
