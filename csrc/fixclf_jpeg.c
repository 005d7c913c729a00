/*
 * JPEG decoding through libjpeg-turbo (linked statically; Debian's build is the one inside
 * Debian's Pillow, so the pixels are Pillow's), of the whole image or only a rectangle of
 * it: columns through jpeg_crop_scanline, rows above skipped with jpeg_skip_scanlines, rows
 * below never decoded. Pillow's settings: islow IDCT, fancy upsampling, no DCT scaling.
 *
 * libjpeg reports errors through error_exit, which must not return: it longjmps back to
 * the call that entered the library, with libjpeg's message kept for the caller. Warnings
 * are silent, as in Pillow, except running out of data ("Premature end of JPEG file"),
 * which Pillow reports as a truncated file.
 */
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

typedef struct {
  struct jpeg_decompress_struct cinfo;
  struct jpeg_error_mgr err;
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
  int started; /* a header has been read and not yet abandoned */
} fixclf_jpeg;

typedef struct {
  uint32_t width;
  uint32_t height;
  uint32_t components;
  /* libjpeg's J_COLOR_SPACE of the file: 1 gray, 2 RGB, 3 YCbCr, 4 CMYK, 5 YCCK. */
  uint32_t color_space;
  uint32_t progressive;
  /* Bytes up to the end of the first scan's header: the entropy-coded data start there. */
  uint64_t scan_offset;
} fixclf_jpeg_info;

static void on_error(j_common_ptr cinfo) {
  fixclf_jpeg *d = (fixclf_jpeg *)cinfo->client_data;
  (*cinfo->err->format_message)(cinfo, d->message);
  longjmp(d->jump, 1);
}

static void on_message(j_common_ptr cinfo, int level) {
  /* level -1: a warning; higher: trace messages, never wanted. */
  if (level == -1 && cinfo->err->msg_code == JWRN_JPEG_EOF)
    on_error(cinfo);
}

static void no_output(j_common_ptr cinfo) { (void)cinfo; }

fixclf_jpeg *fixclf_jpeg_new(void) {
  fixclf_jpeg *volatile d = (fixclf_jpeg *)calloc(1, sizeof(fixclf_jpeg));
  if (!d)
    return NULL;
  d->cinfo.err = jpeg_std_error(&d->err);
  d->err.error_exit = on_error;
  d->err.emit_message = on_message;
  d->err.output_message = no_output;
  d->cinfo.client_data = d;
  if (setjmp(d->jump)) {
    free(d);
    return NULL;
  }
  jpeg_create_decompress(&d->cinfo);
  return d;
}

void fixclf_jpeg_free(fixclf_jpeg *d) {
  if (!d)
    return;
  jpeg_destroy_decompress(&d->cinfo);
  free(d);
}

const char *fixclf_jpeg_message(const fixclf_jpeg *d) { return d->message; }

/* Abandons the image begun (after an error too): the object is ready for the next one. */
void fixclf_jpeg_abort(fixclf_jpeg *d) {
  if (d->started) {
    jpeg_abort_decompress(&d->cinfo);
    d->started = 0;
  }
}

/* Reads the header of `len` bytes at `data`, which must stay alive until the image is
 * decoded or abandoned. 0 on success, -1 with the message on error. */
int fixclf_jpeg_header(fixclf_jpeg *d, const uint8_t *data, size_t len,
                       fixclf_jpeg_info *info) {
  fixclf_jpeg_abort(d);
  d->message[0] = 0;
  if (setjmp(d->jump)) {
    jpeg_abort_decompress(&d->cinfo);
    d->started = 0;
    return -1;
  }
  d->started = 1;
  jpeg_mem_src(&d->cinfo, data, (unsigned long)len);
  jpeg_read_header(&d->cinfo, TRUE);
  info->width = d->cinfo.image_width;
  info->height = d->cinfo.image_height;
  info->components = (uint32_t)d->cinfo.num_components;
  info->color_space = (uint32_t)d->cinfo.jpeg_color_space;
  info->progressive = (uint32_t)jpeg_has_multiple_scans(&d->cinfo);
  info->scan_offset = (uint64_t)(len - d->cinfo.src->bytes_in_buffer);
  return 0;
}

/*
 * Decodes rows [y0, y1) and at least columns [x0, x1) of the image whose header was read,
 * in `out_space` (1 gray, 2 RGB, 4 CMYK, libjpeg's numbering), into `out`, which holds
 * whole rows: pixel (x, y) at out + (y - y0) * stride + x * components, stride at least the
 * image's width times the components. The rectangle is decoded with margins so that its
 * pixels are those of the whole image: fancy upsampling replicates the edge samples at a
 * crop's left and right edges, where the whole image has other neighbours; the crop's left
 * edge also snaps down to an iMCU column. Columns in the margins are written too, with
 * pixels that may differ from the whole image's; columns beyond them are not touched. The
 * image is abandoned afterwards. 0 on success, -1 with the message on error.
 */
int fixclf_jpeg_decode(fixclf_jpeg *d, int out_space, uint32_t x0, uint32_t y0,
                       uint32_t x1, uint32_t y1, uint8_t *out, size_t stride) {
  if (!d->started) {
    strcpy(d->message, "no header read");
    return -1;
  }
  if (setjmp(d->jump)) {
    jpeg_abort_decompress(&d->cinfo);
    d->started = 0;
    return -1;
  }
  struct jpeg_decompress_struct *c = &d->cinfo;
  c->out_color_space = (J_COLOR_SPACE)out_space;
  jpeg_start_decompress(c);
  uint32_t w = c->output_width, h = c->output_height, n = (uint32_t)c->output_components;
  if (x0 >= x1 || x1 > w || y0 >= y1 || y1 > h || stride < (size_t)w * n) {
    snprintf(d->message, sizeof d->message, "region %u..%u x %u..%u outside %ux%u", x0, x1,
             y0, y1, w, h);
    longjmp(d->jump, 1);
  }
  JDIMENSION left = 0, width = w;
  if (x0 > 0 || x1 < w) {
    /* One column of margin on the left (before snapping), two on the right. */
    JDIMENSION want_left = x0 > 0 ? x0 - 1 : 0;
    JDIMENSION want_right = x1 + 2 < w ? x1 + 2 : w;
    left = want_left;
    width = want_right - want_left;
    jpeg_crop_scanline(c, &left, &width);
  }
  if (y0 > 0)
    jpeg_skip_scanlines(c, y0);
  while (c->output_scanline < y1) {
    /* Up to 4 rows a call: a 4:2:0 image's two rows of a row group come out together. */
    JSAMPROW rows[4];
    uint32_t y = c->output_scanline, k, want = y1 - y < 4 ? y1 - y : 4;
    for (k = 0; k < want; k++)
      rows[k] = out + (size_t)(y + k - y0) * stride + (size_t)left * n;
    if (jpeg_read_scanlines(c, rows, want) == 0) {
      strcpy(d->message, "no scanline read");
      longjmp(d->jump, 1);
    }
  }
  jpeg_abort_decompress(c);
  d->started = 0;
  return 0;
}
