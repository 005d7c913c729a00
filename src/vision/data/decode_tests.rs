use super::*;

fn png_bytes(w: u32, h: u32, color: png::ColorType, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(color);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header().unwrap().write_image_data(data).unwrap();
    out
}

fn jpeg_bytes(w: u16, h: u16, gray: bool, progressive: bool) -> Vec<u8> {
    use jpeg_encoder::{ColorType, SamplingFactor};
    let color = if gray {
        ColorType::Luma
    } else {
        ColorType::Rgb
    };
    let l = crate::vision::data::test_jpegs::Layout {
        width: w,
        height: h,
        color,
        sampling: SamplingFactor::R_4_2_0,
        progressive,
        restart: 0,
    };
    crate::vision::data::test_jpegs::encode(l, 0)
}

#[test]
fn png_of_every_colour_type_to_rgb_and_gray() {
    let p = Path::new("a.png");
    let gray = png_bytes(2, 1, png::ColorType::Grayscale, &[10, 200]);
    let img = decode(&gray, p, 3).unwrap();
    assert_eq!(img.data, vec![10, 10, 10, 200, 200, 200]);
    assert_eq!(decode(&gray, p, 1).unwrap().data, vec![10, 200]);
    let rgba = png_bytes(1, 1, png::ColorType::Rgba, &[255, 0, 0, 7]);
    assert_eq!(decode(&rgba, p, 3).unwrap().data, vec![255, 0, 0]);
    assert_eq!(decode(&rgba, p, 1).unwrap().data, vec![76]); // Pillow: L of red is 76
    let ga = png_bytes(1, 1, png::ColorType::GrayscaleAlpha, &[9, 0]);
    assert_eq!(decode(&ga, p, 3).unwrap().data, vec![9, 9, 9]);
}

#[test]
fn jpegs_baseline_progressive_and_gray_decode() {
    let p = Path::new("a.JPEG");
    for progressive in [false, true] {
        let img = decode(&jpeg_bytes(33, 17, false, progressive), p, 3).unwrap();
        assert_eq!(
            (img.width, img.height, img.data.len()),
            (33, 17, 33 * 17 * 3)
        );
        let gray = decode(&jpeg_bytes(9, 8, true, progressive), p, 3).unwrap();
        assert!(gray
            .data
            .chunks(3)
            .all(|px| px[0] == px[1] && px[1] == px[2]));
    }
}

#[test]
fn bad_files_are_one_line_errors_naming_the_file() {
    let p = Path::new("train/n01/x.JPEG");
    let jpeg = jpeg_bytes(40, 30, false, false);
    let truncated = &jpeg[..jpeg.len() / 2];
    for (bytes, says) in [
        (&[][..], "empty file"),
        (b"BM\0\0\0\0".as_slice(), "BMP"),
        (truncated, "unreadable JPEG"),
        (&jpeg[..3], "unreadable JPEG"),
    ] {
        let msg = decode(bytes, p, 3).unwrap_err().to_string();
        assert!(msg.starts_with("train/n01/x.JPEG: "), "{msg}");
        assert!(msg.contains(says) && !msg.contains('\n'), "{msg}");
    }
    // A PNG named .JPEG is a PNG.
    let png = png_bytes(1, 1, png::ColorType::Rgb, &[1, 2, 3]);
    assert_eq!(decode(&png, p, 3).unwrap().data, vec![1, 2, 3]);
}

/// Rectangles of a `w` x `h` image: the whole, corners, single pixels, edge strips, boxes
/// on and one off the iMCU grid, and random ones.
fn rectangles(w: usize, h: usize) -> Vec<CropBox> {
    let b = |left: usize, top: usize, width: usize, height: usize| CropBox {
        top: top.min(h - 1),
        left: left.min(w - 1),
        height: height.clamp(1, h - top.min(h - 1)),
        width: width.clamp(1, w - left.min(w - 1)),
    };
    let mut out = vec![
        CropBox::whole(w, h),
        b(0, 0, 1, 1),
        b(w - 1, h - 1, 1, 1),
        b(w - 1, 0, 1, h),
        b(0, h - 1, w, 1),
        b(0, 0, w, h / 2),
        b(0, h / 2, w, h),
        b(w / 2, 0, w, h),
        b(0, 0, w / 2, h),
    ];
    for a in [7, 8, 9, 15, 16, 17, 31, 32, 33] {
        out.extend([
            b(a, a, 16, 16),
            b(a, 3, w, 9),
            b(1, a, 30, h),
            b(a, a, 1, 1),
        ]);
    }
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    for _ in 0..40 {
        let (left, top) = (next(w), next(h));
        out.push(b(left, top, 1 + next(w - left), 1 + next(h - top)));
    }
    out
}

/// The pixels of `region` in a `[H, W, C]` image.
fn cut(data: &[u8], w: usize, c: usize, r: CropBox) -> Vec<u8> {
    (r.top..r.top + r.height)
        .flat_map(|y| &data[(y * w + r.left) * c..(y * w + r.left + r.width) * c])
        .copied()
        .collect()
}

/// A region's pixels are the whole decode's there, bit for bit, in every layout (4:4:4 to
/// 4:1:1, progressive, restart markers, gray, CMYK, YCCK, Pillow's files) and for L and RGB:
/// the canvas is poisoned first, so a pixel the region decode misses shows.
#[test]
fn region_decodes_equal_the_whole_decode() {
    let p = Path::new("x.JPEG");
    let mut decoder = Decoder::new();
    for (name, bytes) in crate::vision::data::test_jpegs::variety() {
        for channels in [3, 1] {
            let whole = decode(&bytes, p, channels).unwrap();
            let (w, h) = (whole.width, whole.height);
            for (k, r) in rectangles(w, h).into_iter().enumerate() {
                decoder.poison(w * h * channels, 0x5A ^ k as u8);
                let (img, ()) = decoder
                    .decode_region(&bytes, p, channels, |_, _| (r, ()))
                    .unwrap();
                assert_eq!((img.width, img.height), (w, h));
                assert!(
                    cut(img.data, w, channels, r) == cut(&whole.data, w, channels, r),
                    "{name}, {channels} channels, {r:?}: region decode differs"
                );
            }
        }
    }
}

#[test]
fn cmyk_and_ycck_decode_as_pillow_converts() {
    // Pillow reads a CMYK JPEG inverted, then cmyk2rgb: white paper (raw 255s) is white,
    // full black ink (raw k 0) black, half cyan on white (raw c 128) light cyan.
    assert_eq!(cmyk_to_rgb(&[255, 255, 255, 255]), [255, 255, 255]);
    assert_eq!(cmyk_to_rgb(&[255, 255, 255, 0]), [0, 0, 0]);
    assert_eq!(cmyk_to_rgb(&[128, 255, 255, 255]), [128, 255, 255]);
    let p = Path::new("x.JPEG");
    for color in [
        jpeg_encoder::ColorType::Cmyk,
        jpeg_encoder::ColorType::CmykAsYcck,
    ] {
        let l = crate::vision::data::test_jpegs::Layout {
            width: 16,
            height: 8,
            color,
            sampling: jpeg_encoder::SamplingFactor::R_4_4_4,
            progressive: false,
            restart: 0,
        };
        let rgb = decode(&crate::vision::data::test_jpegs::encode(l, 1), p, 3).unwrap();
        let gray = decode(&crate::vision::data::test_jpegs::encode(l, 1), p, 1).unwrap();
        for (px, g) in rgb.data.chunks(3).zip(&gray.data) {
            assert_eq!(luma(px[0], px[1], px[2]), *g);
        }
    }
}

#[test]
fn a_jpeg_cut_anywhere_in_its_scans_is_truncated() {
    let p = Path::new("train/n01/x.JPEG");
    for (name, bytes) in crate::vision::data::test_jpegs::variety() {
        let mut d = jpeg::Decompressor::new().unwrap();
        let start = d.header(&bytes).unwrap().header.scan_offset;
        for cut in [start + 1, (start + bytes.len()) / 2, bytes.len() - 1] {
            let msg = decode(&bytes[..cut], p, 3).unwrap_err().to_string();
            assert!(
                msg.contains("truncated") && !msg.contains('\n'),
                "{name} cut at {cut}: {msg}"
            );
        }
    }
}

/// Damaged JPEGs (bytes overwritten, in the headers and in the scans) through the fuzz
/// target's entry: each decodes or fails with one line naming the file, and a rectangle's
/// decode agrees with the whole decode's (libjpeg's recovery from corrupt data included).
#[test]
fn damaged_jpegs_decode_or_fail_on_one_line_and_regions_agree() {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    for (_, bytes) in crate::vision::data::test_jpegs::variety() {
        for _ in 0..12 {
            let mut damaged = bytes.clone();
            for _ in 0..1 + next(4) {
                let at = next(damaged.len());
                damaged[at] = next(256) as u8;
            }
            let pick = next(256) as u8;
            let mut input = vec![pick];
            input.extend_from_slice(&damaged);
            crate::fuzzing::image(&input);
        }
    }
}
