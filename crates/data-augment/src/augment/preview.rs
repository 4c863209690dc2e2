//! A labelled grid of images, for looking at what a pipeline does.
//!
//! Tiles are laid out row by row on a dark background; the first tile (the original) gets a green
//! frame and the label `0`, augmented tiles a gray frame and their number.

use super::Pipeline;
use crate::error::{DataError, Result};
use crate::image::Image;

/// Tallest tile of a [`sheet`]: larger photos are scaled down to it.
const SHEET_TILE_HEIGHT: usize = 256;

/// What `pipeline` does to `image`: the original and `n` (1–256) augmented versions (seeds
/// `seed`, sample 0…n−1), each at most 256 px high, in a near-square [`grid`].
pub fn sheet(image: &Image, pipeline: &Pipeline, n: usize, seed: u64) -> Result<Image> {
    if n == 0 || n > 256 {
        return Err(DataError::Invalid(format!("a preview shows 1 to 256 augmented images, not {n}")));
    }
    pipeline.check_input(image.height, image.width)?;
    let mut tiles = vec![image.clone()];
    tiles.extend(pipeline.apply_all(&vec![image.clone(); n], seed, 0, 0, 1)?);
    let tiles: Vec<Image> = tiles
        .iter()
        .map(|t| {
            if t.height > SHEET_TILE_HEIGHT {
                let width = (t.width * SHEET_TILE_HEIGHT).div_ceil(t.height);
                super::geometry::resize(t, SHEET_TILE_HEIGHT, width)
            } else {
                t.clone()
            }
        })
        .collect();
    let columns = ((n + 1) as f64).sqrt().ceil() as usize;
    Ok(grid(&tiles, columns))
}

/// 3×5 bitmaps of the digits 0–9, one row of 3 bits per line, top to bottom.
const DIGITS: [[u8; 5]; 10] = [
    [0b111, 0b101, 0b101, 0b101, 0b111],
    [0b010, 0b110, 0b010, 0b010, 0b111],
    [0b111, 0b001, 0b111, 0b100, 0b111],
    [0b111, 0b001, 0b111, 0b001, 0b111],
    [0b101, 0b101, 0b111, 0b001, 0b001],
    [0b111, 0b100, 0b111, 0b001, 0b111],
    [0b111, 0b100, 0b111, 0b101, 0b111],
    [0b111, 0b001, 0b010, 0b010, 0b010],
    [0b111, 0b101, 0b111, 0b101, 0b111],
    [0b111, 0b101, 0b111, 0b001, 0b111],
];

/// Lays `tiles` (any sizes, gray or RGB) out in a grid of `columns`, each cell as large as the
/// largest tile plus a frame, and draws its index in the corner.
pub fn grid(tiles: &[Image], columns: usize) -> Image {
    let columns = columns.max(1);
    let frame = 3;
    let cell_w = tiles.iter().map(|t| t.width).max().unwrap_or(1) + 2 * frame;
    let cell_h = tiles.iter().map(|t| t.height).max().unwrap_or(1) + 2 * frame;
    let rows = tiles.len().div_ceil(columns).max(1);
    let (w, h) = (columns * cell_w, rows * cell_h);
    let mut out = Image::filled(w, h, 3, 24);
    let mut put = |x: usize, y: usize, rgb: [u8; 3], out: &mut Image| {
        if x < w && y < h {
            let i = (y * w + x) * 3;
            out.data[i..i + 3].copy_from_slice(&rgb);
        }
    };
    for (n, tile) in tiles.iter().enumerate() {
        let (cx, cy) = ((n % columns) * cell_w, (n / columns) * cell_h);
        let colour = if n == 0 { [40, 200, 80] } else { [140, 140, 140] };
        for y in 0..cell_h {
            for x in 0..cell_w {
                if x < frame || y < frame || x >= cell_w - frame || y >= cell_h - frame {
                    put(cx + x, cy + y, colour, &mut out);
                }
            }
        }
        let rgb = tile.with_channels(3);
        for y in 0..rgb.height {
            for x in 0..rgb.width {
                let i = (y * rgb.width + x) * 3;
                put(
                    cx + frame + x,
                    cy + frame + y,
                    [rgb.data[i], rgb.data[i + 1], rgb.data[i + 2]],
                    &mut out,
                );
            }
        }
        draw_number(&mut out, n, cx + frame + 2, cy + frame + 2, &mut put);
    }
    out
}

/// Draws `n` in yellow, 2× scaled, on a black box at (`x`, `y`).
fn draw_number(out: &mut Image, n: usize, x: usize, y: usize, put: &mut impl FnMut(usize, usize, [u8; 3], &mut Image)) {
    let digits: Vec<usize> = n.to_string().bytes().map(|b| (b - b'0') as usize).collect();
    let scale = 2;
    let box_w = digits.len() * 4 * scale + scale;
    for dy in 0..7 * scale {
        for dx in 0..box_w {
            put(x + dx, y + dy, [0, 0, 0], out);
        }
    }
    for (k, &d) in digits.iter().enumerate() {
        for (row, bits) in DIGITS[d].iter().enumerate() {
            for col in 0..3 {
                if bits & (0b100 >> col) != 0 {
                    for sy in 0..scale {
                        for sx in 0..scale {
                            put(
                                x + scale + (k * 4 + col) * scale + sx,
                                y + scale + row * scale + sy,
                                [255, 220, 0],
                                out,
                            );
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_size_and_frames() {
        let tiles = vec![Image::filled(10, 8, 1, 200); 5];
        let g = grid(&tiles, 3);
        assert_eq!((g.width, g.height, g.channels), (3 * 16, 2 * 14, 3));
        assert_eq!(&g.data[0..3], &[40, 200, 80]); // the original's green frame
        let second = 16 * 3;
        assert_eq!(&g.data[second..second + 3], &[140, 140, 140]);
    }

    #[test]
    fn a_sheet_shows_the_original_and_n_versions_and_refuses_zero() {
        let photo = Image::filled(600, 300, 3, 90);
        let flip = Pipeline::preset("flip").unwrap();
        // 4 tiles, 2 columns, scaled to 256 px high (512 wide) plus 3 px frames.
        let shown = sheet(&photo, &flip, 3, 1).unwrap();
        assert_eq!((shown.width, shown.height), (2 * (512 + 6), 2 * (256 + 6)));
        assert!(sheet(&photo, &flip, 0, 1).unwrap_err().to_string().contains("1 to 256"));
    }
}
