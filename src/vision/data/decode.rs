//! One image file's bytes -> 8-bit pixels, as torchvision's default loader sees them
//! (`PIL.Image.open(f).convert("RGB")`, or `"L"` for one channel).
//!
//! The format comes from the magic bytes, not the extension (ImageNet has a PNG named
//! `.JPEG` and CMYK JPEGs among its files). JPEG: through libjpeg-turbo (`jpeg.rs`; Debian's
//! build, the one inside Debian's Pillow, so the pixels are Pillow's): baseline and
//! progressive, grayscale, YCbCr, RGB, CMYK and YCCK (to RGB by Pillow's arithmetic). A JPEG
//! whose data end before its end-of-image marker is truncated, an error as Pillow's "image
//! file is truncated". PNG: every colour type and depth, 16-bit cut to 8, palettes expanded,
//! alpha dropped (Pillow's `convert("RGB")` drops it too). Anything else is a one-line error.
//!
//! A [`Decoder`] decodes only the rectangle a transform reads (a JPEG's other rows and
//! columns are not transformed, its rows below not even read), into a canvas of the image's
//! size whose pixels in that rectangle are those of the whole decode.
use super::jpeg::{self, ColorSpace, OutSpace};
use crate::error::{Error, Result};
use std::path::Path;

/// Pillow refuses images over twice its `MAX_IMAGE_PIXELS` (a "decompression bomb"); so do we.
pub const MAX_PIXELS: usize = 2 * 89_478_485;

/// An image's 8-bit pixels, interleaved (`[H, W, C]`), `C` 1 or 3.
#[derive(Debug, Clone, PartialEq)]
pub struct Pixels {
    pub width: usize,
    pub height: usize,
    pub channels: usize,
    pub data: Vec<u8>,
}

/// Borrowed pixels (`[H, W, C]`): a decoded image, or a [`Decoder`]'s canvas, whose pixels
/// outside the rectangle decoded are left from earlier images.
#[derive(Debug, Clone, Copy)]
pub struct PixelsRef<'a> {
    pub width: usize,
    pub height: usize,
    pub channels: usize,
    pub data: &'a [u8],
}

impl<'a> From<&'a Pixels> for PixelsRef<'a> {
    fn from(p: &'a Pixels) -> Self {
        Self {
            width: p.width,
            height: p.height,
            channels: p.channels,
            data: &p.data,
        }
    }
}

/// A rectangle of an image: rows `top..top + height`, columns `left..left + width`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropBox {
    pub top: usize,
    pub left: usize,
    pub height: usize,
    pub width: usize,
}

impl CropBox {
    /// The whole of a `width` x `height` image.
    pub fn whole(width: usize, height: usize) -> Self {
        Self {
            top: 0,
            left: 0,
            height,
            width,
        }
    }
}

/// What the magic bytes say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jpeg,
    Png,
}

/// The format of `bytes` from their first bytes, or an error naming what they look like.
pub fn sniff(bytes: &[u8], path: &Path) -> Result<Format> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Ok(Format::Jpeg);
    }
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Ok(Format::Png);
    }
    let what = if bytes.is_empty() {
        "an empty file".to_string()
    } else if bytes.starts_with(b"BM") {
        "a BMP image".to_string()
    } else if bytes.starts_with(b"GIF8") {
        "a GIF image".to_string()
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        "a WebP image".to_string()
    } else if bytes.starts_with(b"II*\0") || bytes.starts_with(b"MM\0*") {
        "a TIFF image".to_string()
    } else {
        let head: Vec<String> = bytes.iter().take(4).map(|b| format!("{b:02x}")).collect();
        format!("starts with bytes {}", head.join(" "))
    };
    Err(Error::bad_file(
        path,
        format!("not a JPEG or PNG image ({what}); convert it to JPEG or PNG, or remove it"),
    ))
}

/// Decodes a JPEG or PNG file's bytes into `channels` (1: Pillow's `"L"`, 3: `"RGB"`).
pub fn decode(bytes: &[u8], path: &Path, channels: usize) -> Result<Pixels> {
    let mut decoder = Decoder::new();
    let (img, ()) =
        decoder.decode_region(bytes, path, channels, |w, h| (CropBox::whole(w, h), ()))?;
    let (width, height) = (img.width, img.height);
    let mut data = std::mem::take(&mut decoder.canvas);
    data.truncate(width * height * channels);
    Ok(Pixels {
        width,
        height,
        channels,
        data,
    })
}

/// Decodes image after image (one per worker thread), reusing libjpeg's decompressor and
/// its buffers.
#[derive(Default)]
pub struct Decoder {
    jpeg: Option<jpeg::Decompressor>,
    /// The image's pixels, `[H, W, C]`; it only grows, so its pixels outside a rectangle
    /// are an earlier image's.
    canvas: Vec<u8>,
    /// libjpeg's pixels when they need converting (CMYK; L of a colour JPEG).
    scratch: Vec<u8>,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Fills the canvas with `byte` (tests: pixels outside a rectangle must not be read).
    #[cfg(test)]
    pub(crate) fn poison(&mut self, len: usize, byte: u8) {
        self.canvas.clear();
        self.canvas.resize(len, byte);
    }

    /// Decodes the rectangle that `plan` picks once the image's width and height are known
    /// (a PNG is decoded whole), into `channels` (1: `"L"`, 3: `"RGB"`). Inside the
    /// rectangle the pixels are [`decode`]'s; what `plan` returned beside it comes back.
    pub fn decode_region<T>(
        &mut self,
        bytes: &[u8],
        path: &Path,
        channels: usize,
        plan: impl FnOnce(usize, usize) -> (CropBox, T),
    ) -> Result<(PixelsRef<'_>, T)> {
        if channels != 1 && channels != 3 {
            return Err(Error::arg(
                "channels",
                format!("{channels}: images decode to 1 (L) or 3 (RGB) channels"),
            ));
        }
        let (width, height, planned) = match sniff(bytes, path)? {
            Format::Jpeg => self.decode_jpeg(bytes, path, channels, plan)?,
            Format::Png => {
                let (w, h, c, data) = decode_png(bytes, path)?;
                let (_, planned) = plan(w, h);
                self.canvas = convert_channels(data, c, channels);
                (w, h, planned)
            }
        };
        let img = PixelsRef {
            width,
            height,
            channels,
            data: &self.canvas[..width * height * channels],
        };
        Ok((img, planned))
    }

    /// A JPEG's rectangle into the canvas; its width and height.
    fn decode_jpeg<T>(
        &mut self,
        bytes: &[u8],
        path: &Path,
        channels: usize,
        plan: impl FnOnce(usize, usize) -> (CropBox, T),
    ) -> Result<(usize, usize, T)> {
        let bad = |e: &dyn std::fmt::Display| {
            Error::bad_file(
                path,
                format!("unreadable JPEG ({e}); re-encode the file or remove it"),
            )
        };
        if self.jpeg.is_none() {
            self.jpeg = Some(jpeg::Decompressor::new().map_err(|e| bad(&e))?);
        }
        let started = self
            .jpeg
            .as_mut()
            .expect("made above")
            .header(bytes)
            .map_err(|e| bad(&e))?;
        let head = started.header;
        let (w, h) = (head.width, head.height);
        check_size(w, h, path)?;
        if !has_end_marker(bytes, head.scan_offset) {
            return Err(bad(&"image file is truncated: no end-of-image marker"));
        }
        let (region, planned) = plan(w, h);
        if region.width == 0
            || region.height == 0
            || region.left + region.width > w
            || region.top + region.height > h
        {
            return Err(bad(&format!("{region:?} is not inside the {w}x{h} image")));
        }
        let rect = (
            region.left,
            region.top,
            region.left + region.width,
            region.top + region.height,
        );
        // Gray stays gray (libjpeg replicates it for RGB, as Pillow's convert does); YCbCr
        // and RGB to RGB; CMYK and YCCK to CMYK, converted below as Pillow converts it.
        let space = match (head.color_space, channels) {
            (ColorSpace::Gray, 1) => OutSpace::Gray,
            (ColorSpace::Gray | ColorSpace::Rgb | ColorSpace::YCbCr, _) => OutSpace::Rgb,
            (ColorSpace::Cmyk | ColorSpace::Ycck, _) => OutSpace::Cmyk,
            (ColorSpace::Unknown, _) => {
                return Err(bad(&format!(
                    "{} components in no colour space Pillow reads",
                    head.components
                )))
            }
        };
        let need = w * h * channels;
        if self.canvas.len() < need {
            self.canvas.resize(need, 0);
        }
        let stride = w * channels;
        if space.components() == channels {
            let rows = &mut self.canvas[region.top * stride..need];
            return started
                .decode(space, rect, rows, stride)
                .map(|()| (w, h, planned))
                .map_err(|e| bad(&e));
        }
        let n = space.components();
        self.scratch.resize(w * n * region.height, 0);
        started
            .decode(space, rect, &mut self.scratch, w * n)
            .map_err(|e| bad(&e))?;
        let (src_row, dst_row) = (region.width * n, region.width * channels);
        for (y, src) in self.scratch.chunks_exact(w * n).enumerate() {
            let at = (region.top + y) * stride + region.left * channels;
            let src = &src[region.left * n..region.left * n + src_row];
            convert_row(src, space, &mut self.canvas[at..at + dst_row], channels);
        }
        Ok((w, h, planned))
    }
}

/// Whether an end-of-image marker (FF D9) follows the first scan's start. Entropy-coded
/// data never hold FF D9 (a data byte FF is followed by 00), so a file cut anywhere in its
/// scans lacks it; the search runs from the end, where a whole file has it.
fn has_end_marker(bytes: &[u8], scan_offset: usize) -> bool {
    bytes[scan_offset.min(bytes.len())..]
        .windows(2)
        .rev()
        .any(|w| w == [0xFF, 0xD9])
}

/// One row of libjpeg's RGB or CMYK as `channels` (1 or 3) as Pillow converts it.
fn convert_row(src: &[u8], space: OutSpace, dst: &mut [u8], channels: usize) {
    match (space, channels) {
        (OutSpace::Rgb, 1) => {
            for (d, p) in dst.iter_mut().zip(src.chunks_exact(3)) {
                *d = luma(p[0], p[1], p[2]);
            }
        }
        (OutSpace::Cmyk, _) => {
            for (d, p) in dst.chunks_exact_mut(channels).zip(src.chunks_exact(4)) {
                let [r, g, b] = cmyk_to_rgb(p);
                if channels == 1 {
                    d[0] = luma(r, g, b);
                } else {
                    d.copy_from_slice(&[r, g, b]);
                }
            }
        }
        _ => unreachable!("only RGB to L and CMYK need converting"),
    }
}

/// Pillow's CMYK JPEG pixel as RGB: Pillow reads CMYK JPEGs inverted (raw mode `CMYK;I`,
/// Adobe's convention), then `cmyk2rgb`: `255 - k - c * (255 - k) / 255`, rounded its way.
fn cmyk_to_rgb(p: &[u8]) -> [u8; 3] {
    let nk = p[3] as i32; // 255 - (255 - raw k)
    let channel = |raw: u8| {
        let c = 255 - raw as i32;
        let t = c * nk + 128;
        let mul = ((t >> 8) + t) >> 8;
        (nk - mul).clamp(0, 255) as u8
    };
    [channel(p[0]), channel(p[1]), channel(p[2])]
}

/// Width, height, channels (1, 2, 3 or 4) and 8-bit pixels of a PNG.
fn decode_png(bytes: &[u8], path: &Path) -> Result<(usize, usize, usize, Vec<u8>)> {
    let bad = |e: &dyn std::fmt::Display| {
        Error::bad_file(
            path,
            format!("unreadable PNG ({e}); re-encode the file or remove it"),
        )
    };
    let mut decoder = png::Decoder::new_with_limits(
        std::io::Cursor::new(bytes),
        png::Limits {
            bytes: MAX_PIXELS * 4,
        },
    );
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().map_err(|e| bad(&e))?;
    let (w, h) = (reader.info().width as usize, reader.info().height as usize);
    check_size(w, h, path)?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| bad(&"image too large"))?;
    let mut data = vec![0u8; size];
    let frame = reader.next_frame(&mut data).map_err(|e| bad(&e))?;
    let c = frame.color_type.samples();
    data.truncate(frame.buffer_size());
    if frame.bit_depth != png::BitDepth::Eight || data.len() != w * h * c {
        return Err(bad(&format!(
            "{} bytes of pixels for {w}x{h}x{c}",
            data.len()
        )));
    }
    Ok((w, h, c, data))
}

fn check_size(w: usize, h: usize, path: &Path) -> Result<()> {
    if w == 0 || h == 0 || w * h > MAX_PIXELS {
        return Err(Error::bad_file(
            path,
            format!(
                "image of {w}x{h} pixels: empty or more than {MAX_PIXELS} pixels; \
                 resize or remove it"
            ),
        ));
    }
    Ok(())
}

/// Pillow's luma of an RGB pixel (`ITU-R 601-2`, its fixed-point `L24` rounding).
fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((r as u32 * 19595 + g as u32 * 38470 + b as u32 * 7471 + 0x8000) >> 16) as u8
}

/// Interleaved pixels of `from` channels (1 gray, 2 gray + alpha, 3 RGB, 4 RGBA) as `to`
/// channels (1 or 3), as Pillow's `convert`: alpha dropped, gray replicated, luma of RGB.
fn convert_channels(data: Vec<u8>, from: usize, to: usize) -> Vec<u8> {
    match (from, to) {
        (1, 1) | (3, 3) => data,
        (1, 3) => data.iter().flat_map(|&v| [v, v, v]).collect(),
        (2, 1) => data.chunks_exact(2).map(|p| p[0]).collect(),
        (2, 3) => data.chunks_exact(2).flat_map(|p| [p[0]; 3]).collect(),
        (3, 1) => data
            .chunks_exact(3)
            .map(|p| luma(p[0], p[1], p[2]))
            .collect(),
        (4, 1) => data
            .chunks_exact(4)
            .map(|p| luma(p[0], p[1], p[2]))
            .collect(),
        (4, 3) => data
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect(),
        _ => unreachable!("PNG and JPEG give 1 to 4 channels"),
    }
}

#[cfg(test)]
#[path = "decode_tests.rs"]
mod tests;
