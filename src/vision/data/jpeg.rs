//! libjpeg-turbo through `csrc/fixclf_jpeg.c`: a JPEG's header, then the whole image or a
//! rectangle of it, decoded as the whole image's decode would give it there. Errors come
//! back as libjpeg's one-line message; `decode.rs` names the file.
use std::ffi::CStr;
use std::marker::PhantomData;
use std::os::raw::{c_char, c_int};
use std::ptr::NonNull;

#[repr(C)]
struct RawDecoder {
    _private: [u8; 0],
}

#[repr(C)]
#[derive(Default)]
struct RawInfo {
    width: u32,
    height: u32,
    components: u32,
    color_space: u32,
    progressive: u32,
    scan_offset: u64,
}

extern "C" {
    fn fixclf_jpeg_new() -> *mut RawDecoder;
    fn fixclf_jpeg_free(d: *mut RawDecoder);
    fn fixclf_jpeg_message(d: *const RawDecoder) -> *const c_char;
    fn fixclf_jpeg_abort(d: *mut RawDecoder);
    fn fixclf_jpeg_header(
        d: *mut RawDecoder,
        data: *const u8,
        len: usize,
        info: *mut RawInfo,
    ) -> c_int;
    #[allow(clippy::too_many_arguments)]
    fn fixclf_jpeg_decode(
        d: *mut RawDecoder,
        out_space: c_int,
        x0: u32,
        y0: u32,
        x1: u32,
        y1: u32,
        out: *mut u8,
        stride: usize,
    ) -> c_int;
}

/// The colour space of a JPEG's samples, as libjpeg reads it from the markers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorSpace {
    Gray,
    Rgb,
    YCbCr,
    Cmyk,
    /// Adobe's YCbCr + K.
    Ycck,
    /// Another number of components: libjpeg cannot convert it (nor can Pillow).
    Unknown,
}

/// The colour space libjpeg writes pixels in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutSpace {
    Gray,
    Rgb,
    Cmyk,
}

impl OutSpace {
    pub fn components(self) -> usize {
        match self {
            Self::Gray => 1,
            Self::Rgb => 3,
            Self::Cmyk => 4,
        }
    }

    /// libjpeg's `J_COLOR_SPACE` number.
    fn code(self) -> c_int {
        match self {
            Self::Gray => 1,
            Self::Rgb => 2,
            Self::Cmyk => 4,
        }
    }
}

/// What a JPEG's header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub width: usize,
    pub height: usize,
    pub components: usize,
    pub color_space: ColorSpace,
    pub progressive: bool,
    /// Where the first scan's entropy-coded data begin.
    pub scan_offset: usize,
}

/// A libjpeg decompressor, reused from image to image (one per thread).
pub struct Decompressor {
    raw: NonNull<RawDecoder>,
}

// The decompressor is only used through `&mut self`, one thread at a time.
unsafe impl Send for Decompressor {}

impl Drop for Decompressor {
    fn drop(&mut self) {
        unsafe { fixclf_jpeg_free(self.raw.as_ptr()) }
    }
}

impl Decompressor {
    pub fn new() -> Result<Self, String> {
        NonNull::new(unsafe { fixclf_jpeg_new() })
            .map(|raw| Self { raw })
            .ok_or_else(|| "libjpeg could not start (out of memory)".to_string())
    }

    fn message(&self) -> String {
        let msg = unsafe { CStr::from_ptr(fixclf_jpeg_message(self.raw.as_ptr())) };
        let msg = msg.to_string_lossy().trim().replace('\n', " ");
        if msg.is_empty() {
            "libjpeg failed".to_string()
        } else {
            msg
        }
    }

    /// Reads the header of `bytes`; the image is then decoded through the value returned,
    /// which holds `bytes` borrowed (libjpeg reads them in place).
    pub fn header<'a>(&'a mut self, bytes: &'a [u8]) -> Result<Started<'a>, String> {
        let mut info = RawInfo::default();
        let rc = unsafe {
            fixclf_jpeg_header(self.raw.as_ptr(), bytes.as_ptr(), bytes.len(), &mut info)
        };
        if rc != 0 {
            return Err(self.message());
        }
        let color_space = match (info.color_space, info.components) {
            (1, 1) => ColorSpace::Gray,
            (2, 3) => ColorSpace::Rgb,
            (3, 3) => ColorSpace::YCbCr,
            (4, 4) => ColorSpace::Cmyk,
            (5, 4) => ColorSpace::Ycck,
            _ => ColorSpace::Unknown,
        };
        let header = Header {
            width: info.width as usize,
            height: info.height as usize,
            components: info.components as usize,
            color_space,
            progressive: info.progressive != 0,
            scan_offset: (info.scan_offset as usize).min(bytes.len()),
        };
        Ok(Started {
            decompressor: self,
            header,
            _bytes: PhantomData,
        })
    }
}

/// An image whose header was read; dropped undecoded, it is abandoned.
pub struct Started<'a> {
    decompressor: &'a mut Decompressor,
    pub header: Header,
    _bytes: PhantomData<&'a [u8]>,
}

impl Drop for Started<'_> {
    fn drop(&mut self) {
        unsafe { fixclf_jpeg_abort(self.decompressor.raw.as_ptr()) }
    }
}

impl Started<'_> {
    /// Decodes rows `y0..y1` and columns `x0..x1` in `space` into `out`, whole rows `stride`
    /// bytes apart from row `y0`: pixel (x, y) lands at
    /// `out[(y - y0) * stride + x * components..]`. Inside the rectangle the pixels are those
    /// of the whole image's decode; a few columns beside it are written too (libjpeg's
    /// margins), with pixels that may differ.
    pub fn decode(
        self,
        space: OutSpace,
        (x0, y0, x1, y1): (usize, usize, usize, usize),
        out: &mut [u8],
        stride: usize,
    ) -> Result<(), String> {
        let (w, h) = (self.header.width, self.header.height);
        if x0 >= x1 || x1 > w || y0 >= y1 || y1 > h {
            return Err(format!("region {x0}..{x1} x {y0}..{y1} outside {w}x{h}"));
        }
        let row = w * space.components();
        if stride < row || out.len() < (y1 - y0 - 1) * stride + row {
            return Err(format!(
                "{} bytes for {} rows of {row} bytes, {stride} apart",
                out.len(),
                y1 - y0
            ));
        }
        // u32 is safe: libjpeg's dimensions are at most 65,500.
        let rc = unsafe {
            fixclf_jpeg_decode(
                self.decompressor.raw.as_ptr(),
                space.code(),
                x0 as u32,
                y0 as u32,
                x1 as u32,
                y1 as u32,
                out.as_mut_ptr(),
                stride,
            )
        };
        if rc != 0 {
            return Err(self.decompressor.message());
        }
        Ok(())
    }
}
