//! torchvision's image transforms on decoded pixels, so that published recipes carry over:
//! `RandomResizedCrop(size, scale, ratio)` (its 10 tries and centre-crop fall-back) with
//! `RandomHorizontalFlip()`, and evaluation's `Resize(resize)` (short side, long side
//! truncated) + `CenterCrop(size)` (Python's rounding); resizing is Pillow's antialiased
//! bilinear convolution (`fast_image_resize` computes Pillow's coefficients).
//!
//! A transform writes one image as u8 `[C, size, size]` straight into its slot of the batch
//! (HWC -> CHW, the flip done in that copy); normalization happens later on the device.
//!
//! A transform's draws are made from the image's size alone ([`Transform::plan`]), before
//! decoding, so that only the rectangle it reads is decoded: the crop box of
//! `RandomResizedCrop` (Pillow resizes the crop alone), the source pixels under the bilinear
//! filter's support for the kept pixels of `Resize` + `CenterCrop`.
pub use super::data::decode::CropBox;
use super::data::decode::PixelsRef;
use crate::error::{Error, Result};
use fast_image_resize::images::{CroppedImage, Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// What is done to each image before it joins a batch.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum TransformKind {
    /// Nothing: every image must already be `size` x `size` (the augmentation of the
    /// in-memory sets, `vision.crop_padding` and `vision.flip`, then runs on the device).
    None,
    /// `RandomResizedCrop(size, scale, ratio)` + `RandomHorizontalFlip()` when `vision.flip`.
    RandomResizedCrop,
    /// `Resize(resize)` + `CenterCrop(size)`.
    ResizeCenterCrop,
}

/// The transform of one split and its sizes (`[vision.transform]` resolved for a split).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transform {
    pub kind: TransformKind,
    pub size: usize,
    pub resize: usize,
    pub scale: (f64, f64),
    pub ratio: (f64, f64),
    pub flip: bool,
}

/// torchvision's `RandomResizedCrop.get_params`: up to 10 draws of an area fraction in
/// `scale` and a log-uniform aspect ratio in `ratio`, the first box that fits at a uniform
/// position; else the centre crop of the image clamped to `ratio`. Rounding is Python's
/// `round` (half to even).
pub fn random_resized_crop_box(
    width: usize,
    height: usize,
    scale: (f64, f64),
    ratio: (f64, f64),
    rng: &mut impl Rng,
) -> CropBox {
    let area = (width * height) as f64;
    let (log_lo, log_hi) = (ratio.0.ln(), ratio.1.ln());
    for _ in 0..10 {
        let target_area = area * rng.gen_range_incl(scale);
        let aspect = rng.gen_range_incl((log_lo, log_hi)).exp();
        let w = (target_area * aspect).sqrt().round_ties_even() as usize;
        let h = (target_area / aspect).sqrt().round_ties_even() as usize;
        if 0 < w && w <= width && 0 < h && h <= height {
            let top = rng.gen_range(0..=height - h);
            let left = rng.gen_range(0..=width - w);
            return CropBox {
                top,
                left,
                height: h,
                width: w,
            };
        }
    }
    let in_ratio = width as f64 / height as f64;
    let (w, h) = if in_ratio < ratio.0 {
        (width, (width as f64 / ratio.0).round_ties_even() as usize)
    } else if in_ratio > ratio.1 {
        ((height as f64 * ratio.1).round_ties_even() as usize, height)
    } else {
        (width, height)
    };
    CropBox {
        top: (height - h) / 2,
        left: (width - w) / 2,
        height: h,
        width: w,
    }
}

/// A uniform draw in `[lo, hi]` (torch's `uniform_`; `lo == hi` allowed).
trait UniformIncl {
    fn gen_range_incl(&mut self, range: (f64, f64)) -> f64;
}

impl<R: Rng> UniformIncl for R {
    fn gen_range_incl(&mut self, (lo, hi): (f64, f64)) -> f64 {
        lo + (hi - lo) * self.gen::<f64>()
    }
}

/// torchvision's `Resize(resize)` on a `width` x `height` image: the short side becomes
/// `resize`, the long side `int(resize * long / short)`.
pub fn resized_size(width: usize, height: usize, resize: usize) -> (usize, usize) {
    if width <= height {
        (
            resize,
            (resize as f64 * height as f64 / width as f64) as usize,
        )
    } else {
        (
            (resize as f64 * width as f64 / height as f64) as usize,
            resize,
        )
    }
}

/// torchvision's `CenterCrop(size)` offsets (top, left) in an image of `width` x `height`:
/// `int(round((H - size) / 2))`, Python's rounding.
pub fn center_crop_offsets(width: usize, height: usize, size: usize) -> (usize, usize) {
    let off = |n: usize| ((n as f64 - size as f64) / 2.0).round_ties_even().max(0.0) as usize;
    (off(height), off(width))
}

/// One image's transform, drawn: what [`Transformer::render`] does, and the source pixels
/// it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    step: Step,
    /// The rectangle of the source image the transform reads; pixels outside it are not
    /// looked at.
    pub region: CropBox,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Copy,
    Crop { b: CropBox, flip: bool },
    ResizeCenterCrop,
}

impl Transform {
    /// The draws for a `width` x `height` image (from `rng`, in torchvision's order: the
    /// box, then the flip) and the rectangle they read.
    pub fn plan(&self, width: usize, height: usize, rng: &mut impl Rng) -> Plan {
        let whole = CropBox::whole(width, height);
        match self.kind {
            TransformKind::None => Plan {
                step: Step::Copy,
                region: whole,
            },
            TransformKind::RandomResizedCrop => {
                let b = random_resized_crop_box(width, height, self.scale, self.ratio, rng);
                let flip = self.flip && rng.gen::<bool>();
                Plan {
                    step: Step::Crop { b, flip },
                    region: b,
                }
            }
            TransformKind::ResizeCenterCrop => Plan {
                step: Step::ResizeCenterCrop,
                region: center_crop_support(width, height, self.resize, self.size),
            },
        }
    }
}

/// The source pixels that `Resize(resize)` + `CenterCrop(size)` reads: for each kept output
/// pixel, Pillow's bilinear filter covers `center +- support` (`support = max(scale, 1)`,
/// the scale of the source per output pixel), clamped to the image; one more pixel on each
/// side keeps the rectangle safe of rounding in those bounds.
pub fn center_crop_support(width: usize, height: usize, resize: usize, size: usize) -> CropBox {
    let (rw, rh) = resized_size(width, height, resize);
    let (top, left) = center_crop_offsets(rw, rh, size);
    let span = |offset: usize, kept: usize, out: usize, n: usize| {
        let scale = n as f64 / out as f64;
        let support = scale.max(1.0);
        let lo = (offset as f64 * scale - support).floor() - 1.0;
        let hi = ((offset + kept) as f64 * scale + support).ceil() + 1.0;
        let lo = lo.max(0.0) as usize;
        let hi = (hi.max(0.0) as usize).min(n);
        (lo.min(n.saturating_sub(1)), hi)
    };
    let (x0, x1) = span(left, size.min(rw), rw, width);
    let (y0, y1) = span(top, size.min(rh), rh, height);
    CropBox {
        top: y0,
        left: x0,
        height: (y1 - y0).max(1),
        width: (x1 - x0).max(1),
    }
}

/// Applies transforms with its own scratch buffers (one per worker thread).
pub struct Transformer {
    resizer: Resizer,
    scratch: Vec<u8>,
}

impl Default for Transformer {
    fn default() -> Self {
        Self::new()
    }
}

impl Transformer {
    pub fn new() -> Self {
        Self {
            resizer: Resizer::new(),
            scratch: Vec::new(),
        }
    }

    /// Transforms `img` (its draws from `rng`) into `out`, u8 `[C, size, size]`.
    pub fn apply<'a>(
        &mut self,
        t: &Transform,
        img: impl Into<PixelsRef<'a>>,
        path: &Path,
        rng: &mut impl Rng,
        out: &mut [u8],
    ) -> Result<()> {
        let img = img.into();
        let plan = t.plan(img.width, img.height, rng);
        self.render(t, &plan, img, path, out)
    }

    /// Transforms `img` as `plan` (drawn for its size) says into `out`, u8
    /// `[C, size, size]`; only the pixels of `plan.region` are read.
    pub fn render<'a>(
        &mut self,
        t: &Transform,
        plan: &Plan,
        img: impl Into<PixelsRef<'a>>,
        path: &Path,
        out: &mut [u8],
    ) -> Result<()> {
        let img = img.into();
        let s = t.size;
        assert_eq!(out.len(), img.channels * s * s, "one slot of the batch");
        match plan.step {
            Step::Copy => {
                if (img.width, img.height) != (s, s) {
                    return Err(Error::bad_file(
                        path,
                        format!(
                            "image of {}x{} pixels, not {s}x{s} (vision.transform.size); \
                             resize the files or use a resizing transform",
                            img.width, img.height
                        ),
                    ));
                }
                to_chw(img.data, img.channels, s, false, out);
            }
            Step::Crop { b, flip } => {
                self.crop_resize(img, b, s)?;
                to_chw(&self.scratch, img.channels, s, flip, out);
            }
            Step::ResizeCenterCrop => {
                self.resize_center_crop(img, t.resize, s)?;
                to_chw(&self.scratch, img.channels, s, false, out);
            }
        }
        Ok(())
    }

    /// The last resize's pixels (HWC).
    pub fn output(&self) -> &[u8] {
        &self.scratch
    }

    /// Pillow's `img.crop(box).resize((s, s), BILINEAR)` into `self.scratch` (HWC): the
    /// filter sees the crop alone, its edges clamped as at an image border.
    pub fn crop_resize<'a>(
        &mut self,
        img: impl Into<PixelsRef<'a>>,
        b: CropBox,
        s: usize,
    ) -> Result<()> {
        let img = img.into();
        let src = image_ref(&img);
        let cropped = CroppedImage::new(
            &src,
            b.left as u32,
            b.top as u32,
            b.width as u32,
            b.height as u32,
        )
        .expect("crop boxes lie inside the image");
        self.resize_into(&cropped, img.channels, s, s, &bilinear())
    }

    /// Pillow's `img.resize(resized_size)` then the centre `s` x `s` crop, into
    /// `self.scratch`: only the kept pixels are computed (the filter's positions and its
    /// clamping at the image's borders are those of the whole resize).
    pub fn resize_center_crop<'a>(
        &mut self,
        img: impl Into<PixelsRef<'a>>,
        resize: usize,
        s: usize,
    ) -> Result<()> {
        let img = img.into();
        let (rw, rh) = resized_size(img.width, img.height, resize);
        let (top, left) = center_crop_offsets(rw, rh, s);
        let (sx, sy) = (img.width as f64 / rw as f64, img.height as f64 / rh as f64);
        let (cw, ch) = (s.min(rw), s.min(rh));
        let options = bilinear().crop(
            left as f64 * sx,
            top as f64 * sy,
            cw as f64 * sx,
            ch as f64 * sy,
        );
        self.resize_into(&image_ref(&img), img.channels, cw, ch, &options)?;
        if (cw, ch) != (s, s) {
            // CenterCrop larger than the image pads with black, as torchvision does.
            let c = img.channels;
            let mut padded = vec![0u8; s * s * c];
            let (py, px) = ((s - ch) / 2, (s - cw) / 2);
            for y in 0..ch {
                let row = &self.scratch[y * cw * c..(y + 1) * cw * c];
                let at = ((y + py) * s + px) * c;
                padded[at..at + cw * c].copy_from_slice(row);
            }
            self.scratch = padded;
        }
        Ok(())
    }

    /// Pillow's `img.resize((w, h), BILINEAR)` of the whole image (HWC, in the scratch).
    pub fn resize_whole<'a>(
        &mut self,
        img: impl Into<PixelsRef<'a>>,
        w: usize,
        h: usize,
    ) -> Result<&[u8]> {
        let img = img.into();
        self.resize_into(&image_ref(&img), img.channels, w, h, &bilinear())?;
        Ok(&self.scratch)
    }

    fn resize_into(
        &mut self,
        src: &impl fast_image_resize::IntoImageView,
        channels: usize,
        w: usize,
        h: usize,
        options: &ResizeOptions,
    ) -> Result<()> {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.resize(w * h * channels, 0);
        let mut dst = Image::from_slice_u8(w as u32, h as u32, &mut scratch, pixel_type(channels))
            .expect("the scratch buffer fits the output");
        self.resizer
            .resize(src, &mut dst, options)
            .map_err(|e| Error::arg("resize", e.to_string()))?;
        self.scratch = scratch;
        Ok(())
    }
}

fn bilinear() -> ResizeOptions {
    ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear))
}

fn pixel_type(channels: usize) -> PixelType {
    if channels == 1 {
        PixelType::U8
    } else {
        PixelType::U8x3
    }
}

fn image_ref<'a>(img: &PixelsRef<'a>) -> ImageRef<'a> {
    ImageRef::new(
        img.width as u32,
        img.height as u32,
        img.data,
        pixel_type(img.channels),
    )
    .expect("decoded pixels fill their image")
}

/// HWC u8 `s` x `s` -> CHW, mirrored left-right when `flip`.
pub fn to_chw(hwc: &[u8], c: usize, s: usize, flip: bool, out: &mut [u8]) {
    for y in 0..s {
        let row = &hwc[y * s * c..(y + 1) * s * c];
        for ch in 0..c {
            let dst = &mut out[(ch * s + y) * s..(ch * s + y + 1) * s];
            if flip {
                for (x, d) in dst.iter_mut().enumerate() {
                    *d = row[(s - 1 - x) * c + ch];
                }
            } else {
                for (x, d) in dst.iter_mut().enumerate() {
                    *d = row[x * c + ch];
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "transforms_tests.rs"]
mod tests;
