//! Geometric transforms: mirroring, crops, padding, resizing and affine warps (rotation, shear,
//! scale, translation) with bilinear sampling. Coordinates are pixel centres at integers.

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::draw::{Aspect, random_window};
use crate::image::Image;

/// Mirror left–right.
pub fn flip_horizontal(img: &Image) -> Image {
    let (w, c) = (img.width, img.channels);
    let mut data = Vec::with_capacity(img.data.len());
    for row in img.data.chunks_exact(w * c) {
        for px in row.chunks_exact(c).rev() {
            data.extend_from_slice(px);
        }
    }
    Image { data, ..*img }
}

/// Mirror top–bottom.
pub fn flip_vertical(img: &Image) -> Image {
    let row = img.width * img.channels;
    let data = img.data.chunks_exact(row).rev().flatten().copied().collect();
    Image { data, ..*img }
}

/// Rows and columns swapped (`out[y][x] = in[x][y]`).
pub fn transpose(img: &Image) -> Image {
    let (w, h, c) = (img.width, img.height, img.channels);
    let mut data = vec![0; img.data.len()];
    for y in 0..h {
        for x in 0..w {
            let src = (y * w + x) * c;
            let dst = (x * h + y) * c;
            data[dst..dst + c].copy_from_slice(&img.data[src..src + c]);
        }
    }
    Image {
        width: h,
        height: w,
        channels: c,
        data,
    }
}

/// The `h × w` window whose top-left corner is at (`left`, `top`). The window must lie inside.
pub fn crop(img: &Image, top: usize, left: usize, h: usize, w: usize) -> Image {
    assert!(
        top + h <= img.height && left + w <= img.width,
        "crop window outside the image"
    );
    let c = img.channels;
    let mut data = Vec::with_capacity(h * w * c);
    for y in top..top + h {
        let start = (y * img.width + left) * c;
        data.extend_from_slice(&img.data[start..start + w * c]);
    }
    Image {
        width: w,
        height: h,
        channels: c,
        data,
    }
}

/// How padding fills the border.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PadMode {
    /// Zeros.
    #[default]
    Zero,
    /// Mirror without repeating the edge pixel (`dcb|abcd|cba`).
    Reflect,
    /// Repeat the edge pixel.
    Edge,
}

/// Pads `pad` pixels on every side.
pub fn pad(img: &Image, pad: usize, mode: PadMode) -> Image {
    if pad == 0 {
        return img.clone();
    }
    let (w, h, c) = (img.width, img.height, img.channels);
    let (ow, oh) = (w + 2 * pad, h + 2 * pad);
    let index = |i: isize, n: usize| -> Option<usize> {
        let n = n as isize;
        match mode {
            _ if (0..n).contains(&i) => Some(i as usize),
            PadMode::Zero => None,
            PadMode::Edge => Some(i.clamp(0, n - 1) as usize),
            PadMode::Reflect => {
                if n == 1 {
                    return Some(0);
                }
                let period = 2 * (n - 1);
                let m = i.rem_euclid(period);
                Some(if m < n { m } else { period - m } as usize)
            }
        }
    };
    let mut data = vec![0u8; ow * oh * c];
    for y in 0..oh {
        let sy = index(y as isize - pad as isize, h);
        for x in 0..ow {
            if let (Some(sy), Some(sx)) = (sy, index(x as isize - pad as isize, w)) {
                let src = (sy * w + sx) * c;
                let dst = (y * ow + x) * c;
                data[dst..dst + c].copy_from_slice(&img.data[src..src + c]);
            }
        }
    }
    Image {
        width: ow,
        height: oh,
        channels: c,
        data,
    }
}

/// Bilinear resize to `out_h × out_w`: see [`resize_window`].
pub fn resize(img: &Image, out_h: usize, out_w: usize) -> Image {
    resize_window(img, [0, 0, img.height, img.width], out_h, out_w)
}

thread_local! {
    /// fast_image_resize keeps its coefficient and row buffers between calls.
    static RESIZER: std::cell::RefCell<fast_image_resize::Resizer> =
        std::cell::RefCell::new(fast_image_resize::Resizer::new());
}

/// The window `[top, left, height, width]` of `img` resized to `out_h × out_w` with bilinear
/// weights, antialiased when shrinking (the filter widens with the scale, as in PIL and
/// torchvision's `antialias=True`; within one 8-bit level of torchvision, tested), through
/// fast_image_resize's SIMD kernels (SSE4.1/AVX2, chosen at run time). The window must lie
/// inside the image.
pub fn resize_window(img: &Image, [top, left, h, w]: [usize; 4], out_h: usize, out_w: usize) -> Image {
    use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, images};

    assert!(
        top + h <= img.height && left + w <= img.width,
        "resize window outside the image"
    );
    if (h, w) == (out_h, out_w) {
        return crop(img, top, left, h, w);
    }
    if (h, w) != (img.height, img.width) {
        // Copied out first: fast_image_resize's own crop lets the filter reach pixels outside the
        // window, where torchvision's crop-then-resize clamps at the window's edges.
        return resize_window(&crop(img, top, left, h, w), [0, 0, h, w], out_h, out_w);
    }
    let pixel = match img.channels {
        1 => PixelType::U8,
        2 => PixelType::U8x2,
        3 => PixelType::U8x3,
        4 => PixelType::U8x4,
        c => unreachable!("images have 1 to 4 channels, not {c}"),
    };
    let src = images::ImageRef::new(img.width as u32, img.height as u32, &img.data, pixel)
        .expect("an image's buffer matches its size");
    let mut dst = images::Image::new(out_w as u32, out_h as u32, pixel);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    RESIZER
        .with(|r| r.borrow_mut().resize(&src, &mut dst, &options))
        .expect("same pixel type on both sides, a window inside the image");
    Image {
        width: out_w,
        height: out_h,
        channels: img.channels,
        data: dst.into_vec(),
    }
}

/// A 2-D affine map `(x, y) ↦ (m[0]·x + m[1]·y + m[2], m[3]·x + m[4]·y + m[5])`.
pub type Affine = [f64; 6];

/// The map from output to input pixel of a rotation by `degrees` (counter-clockwise as seen on
/// screen), shears `shear_x`/`shear_y` (degrees), isotropic `scale` and translation
/// (`tx`, `ty` pixels), all about the image centre — torchvision's `affine` parameters.
#[allow(clippy::too_many_arguments)] // torchvision's affine parameters, one by one
pub fn inverse_affine(
    width: usize,
    height: usize,
    degrees: f64,
    shear_x: f64,
    shear_y: f64,
    scale: f64,
    tx: f64,
    ty: f64,
) -> Affine {
    let (cx, cy) = ((width as f64 - 1.0) / 2.0, (height as f64 - 1.0) / 2.0);
    let (s, c) = degrees.to_radians().sin_cos();
    // Forward linear part: rotation · shear · scale (y axis points down, so CCW uses +sin here).
    let rot = [c, s, -s, c];
    let (kx, ky) = (shear_x.to_radians().tan(), shear_y.to_radians().tan());
    let shear = [1.0 + kx * ky, kx, ky, 1.0];
    let a = [
        scale * (rot[0] * shear[0] + rot[1] * shear[2]),
        scale * (rot[0] * shear[1] + rot[1] * shear[3]),
        scale * (rot[2] * shear[0] + rot[3] * shear[2]),
        scale * (rot[2] * shear[1] + rot[3] * shear[3]),
    ];
    let det = a[0] * a[3] - a[1] * a[2];
    let inv = [a[3] / det, -a[1] / det, -a[2] / det, a[0] / det];
    // p = A⁻¹ (p' − c − t) + c
    let (ox, oy) = (cx + tx, cy + ty);
    [
        inv[0],
        inv[1],
        cx - inv[0] * ox - inv[1] * oy,
        inv[2],
        inv[3],
        cy - inv[2] * ox - inv[3] * oy,
    ]
}

/// Samples `img` at `map(x, y)` for every output pixel, bilinearly; points outside get `fill`.
pub fn warp(img: &Image, map: &Affine, fill: u8) -> Image {
    remap(img, fill, |x, y| {
        (map[0] * x + map[1] * y + map[2], map[3] * x + map[4] * y + map[5])
    })
}

/// torchvision's affine warp of a uint8 image with nearest sampling, to the bit: `theta` maps
/// an output point to its source in pixel coordinates centred on the image (torchvision's
/// `_get_inverse_affine_matrix`), evaluated in f32 as `_gen_affine_grid` and
/// `grid_sample(mode="nearest", align_corners=False)` do (halves round to even). Points outside
/// the image get `fill`.
pub fn affine_nearest(img: &Image, theta: [f64; 6], fill: u8) -> Image {
    let (w, h, c) = (img.width, img.height, img.channels);
    let (half_w, half_h) = (0.5 * w as f32, 0.5 * h as f32);
    let theta = theta.map(|v| v as f32);
    // theta transposed and divided by (w/2, h/2): output grid in [-1, 1] coordinates.
    let gx = [theta[0] / half_w, theta[1] / half_w, theta[2] / half_w];
    let gy = [theta[3] / half_h, theta[4] / half_h, theta[5] / half_h];
    let mut data = vec![fill; w * h * c];
    for y in 0..h {
        let by = linspace_f32(-half_h + 0.5, half_h - 0.5, h, y);
        for x in 0..w {
            let bx = linspace_f32(-half_w + 0.5, half_w - 0.5, w, x);
            let nx = bx * gx[0] + by * gx[1] + gx[2];
            let ny = bx * gy[0] + by * gy[1] + gy[2];
            let u = ((nx + 1.0) * half_w - 0.5).round_ties_even();
            let v = ((ny + 1.0) * half_h - 0.5).round_ties_even();
            if u >= 0.0 && v >= 0.0 && u < w as f32 && v < h as f32 {
                let (src, dst) = (((v as usize) * w + u as usize) * c, (y * w + x) * c);
                data[dst..dst + c].copy_from_slice(&img.data[src..src + c]);
            }
        }
    }
    Image { data, ..*img }
}

/// `torch.linspace(start, end, steps)[i]` in f32, with PyTorch's two-sided stepping.
pub fn linspace_f32(start: f32, end: f32, steps: usize, i: usize) -> f32 {
    if steps < 2 {
        return start;
    }
    let step = (end - start) / (steps - 1) as f32;
    if i < steps / 2 {
        start + step * i as f32
    } else {
        end - step * (steps - 1 - i) as f32
    }
}

/// Samples `img` at `source(x, y)` for every output pixel (same size), bilinearly.
pub fn remap(img: &Image, fill: u8, source: impl Fn(f64, f64) -> (f64, f64)) -> Image {
    let (w, h, c) = (img.width, img.height, img.channels);
    let mut data = vec![fill; w * h * c];
    for y in 0..h {
        for x in 0..w {
            let (u, v) = source(x as f64, y as f64);
            let dst = (y * w + x) * c;
            sample(img, u, v, fill, &mut data[dst..dst + c]);
        }
    }
    Image { data, ..*img }
}

/// Bilinear sample at (`u`, `v`); taps outside the image read `fill`.
#[inline]
fn sample(img: &Image, u: f64, v: f64, fill: u8, out: &mut [u8]) {
    const EPS: f64 = 1e-6;
    if u < -1.0 || v < -1.0 || u > img.width as f64 || v > img.height as f64 {
        return; // entirely outside: keep fill
    }
    // Snap near-integer coordinates so identities and 90° turns reproduce pixels exactly.
    let snap = |t: f64| if (t - t.round()).abs() < EPS { t.round() } else { t };
    let (u, v) = (snap(u), snap(v));
    let (x0, y0) = (u.floor(), v.floor());
    let (fx, fy) = (u - x0, v - y0);
    let (x0, y0) = (x0 as isize, y0 as isize);
    let (w, h, c) = (img.width as isize, img.height as isize, img.channels);
    if x0 >= 0 && y0 >= 0 && x0 + 1 < w && y0 + 1 < h {
        // Interior: all four taps exist; read them straight from the rows (same arithmetic as
        // below, without per-tap bounds checks).
        let row = img.width * c;
        let i00 = y0 as usize * row + x0 as usize * c;
        let (top_row, bottom_row) = (&img.data[i00..i00 + 2 * c], &img.data[i00 + row..i00 + row + 2 * c]);
        for (ch, o) in out.iter_mut().enumerate() {
            let top = top_row[ch] as f64 * (1.0 - fx) + top_row[c + ch] as f64 * fx;
            let bottom = bottom_row[ch] as f64 * (1.0 - fx) + bottom_row[c + ch] as f64 * fx;
            *o = (top * (1.0 - fy) + bottom * fy).round().clamp(0.0, 255.0) as u8;
        }
        return;
    }
    let at = |x: isize, y: isize, ch: usize| -> f64 {
        if x < 0 || y < 0 || x >= img.width as isize || y >= img.height as isize {
            fill as f64
        } else {
            img.get(x as usize, y as usize, ch) as f64
        }
    };
    for (ch, o) in out.iter_mut().enumerate() {
        let top = at(x0, y0, ch) * (1.0 - fx) + if fx > 0.0 { at(x0 + 1, y0, ch) * fx } else { 0.0 };
        let value = if fy > 0.0 {
            let bottom = at(x0, y0 + 1, ch) * (1.0 - fx) + if fx > 0.0 { at(x0 + 1, y0 + 1, ch) * fx } else { 0.0 };
            top * (1.0 - fy) + bottom * fy
        } else {
            top
        };
        *o = value.round().clamp(0.0, 255.0) as u8;
    }
}

/// torchvision's RandomResizedCrop window: 10 tries at a random area and log-uniform aspect
/// ratio, then a centre crop with the ratio clamped into range. Returns `(top, left, h, w)`.
pub fn resized_crop_window(
    height: usize,
    width: usize,
    scale: [f64; 2],
    ratio: [f64; 2],
    rng: &mut impl Rng,
) -> (usize, usize, usize, usize) {
    let fits = |h: usize, w: usize| (1..=width).contains(&w) && (1..=height).contains(&h);
    let draw = (scale, ratio, Aspect::WidthOverHeight);
    if let Some(window) = random_window((height, width), draw, rng, fits) {
        return window;
    }
    let in_ratio = width as f64 / height as f64;
    let (w, h) = if in_ratio < ratio[0] {
        (width, ((width as f64 / ratio[0]).round() as usize).clamp(1, height))
    } else if in_ratio > ratio[1] {
        (((height as f64 * ratio[1]).round() as usize).clamp(1, width), height)
    } else {
        (width, height)
    };
    ((height - h) / 2, (width - w) / 2, h, w)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(w: usize, h: usize, c: usize) -> Image {
        Image::new(w, h, c, (0..w * h * c).map(|i| (i * 7 % 251) as u8).collect()).unwrap()
    }

    #[test]
    fn mirroring_twice_is_the_identity() {
        for img in [ramp(5, 3, 1), ramp(4, 4, 3)] {
            assert_eq!(flip_horizontal(&flip_horizontal(&img)), img);
            assert_eq!(flip_vertical(&flip_vertical(&img)), img);
            assert_ne!(flip_horizontal(&img), img);
        }
    }

    #[test]
    fn crop_pad_and_resize_sizes() {
        let img = ramp(10, 6, 3);
        let c = crop(&img, 1, 2, 4, 5);
        assert_eq!((c.width, c.height), (5, 4));
        assert_eq!(c.get(0, 0, 1), img.get(2, 1, 1));
        let p = pad(&img, 4, PadMode::Reflect);
        assert_eq!((p.width, p.height), (18, 14));
        assert_eq!(p.get(3, 4, 0), img.get(1, 0, 0)); // reflect: index -1 -> 1
        assert_eq!(pad(&img, 2, PadMode::Edge).get(0, 0, 2), img.get(0, 0, 2));
        assert_eq!(pad(&img, 2, PadMode::Zero).get(0, 0, 2), 0);
        let r = resize(&img, 13, 7);
        assert_eq!((r.width, r.height, r.data.len()), (7, 13, 7 * 13 * 3));
        assert_eq!(resize(&Image::filled(9, 9, 1, 77), 4, 5), Image::filled(5, 4, 1, 77));
    }

    #[test]
    fn zero_rotation_and_zero_shear_are_the_identity() {
        let img = ramp(7, 5, 3);
        assert_eq!(warp(&img, &inverse_affine(7, 5, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0), 0), img);
    }

    #[test]
    fn rotating_90_degrees_equals_transpose_then_flip() {
        let img = ramp(6, 6, 3);
        let rotated = warp(&img, &inverse_affine(6, 6, 90.0, 0.0, 0.0, 1.0, 0.0, 0.0), 0);
        assert_eq!(rotated, flip_vertical(&transpose(&img)));
        let back = warp(&img, &inverse_affine(6, 6, -90.0, 0.0, 0.0, 1.0, 0.0, 0.0), 0);
        assert_eq!(back, flip_horizontal(&transpose(&img)));
    }

    #[test]
    fn translation_moves_pixels_and_fills() {
        let img = ramp(5, 5, 1);
        let moved = warp(&img, &inverse_affine(5, 5, 0.0, 0.0, 0.0, 1.0, 2.0, 0.0), 9);
        assert_eq!(moved.get(2, 3, 0), img.get(0, 3, 0));
        assert_eq!(moved.get(1, 3, 0), 9);
    }
}
