//! An 8-bit image in HWC layout, the unit every augmentation works on.
//!
//! Decoding rule (files → [`Image`]): grayscale stays 1 channel; RGB stays 3; an alpha channel is
//! dropped (gray+alpha → gray, RGBA → RGB); 16-bit and float images are scaled to 8 bits.

use std::path::Path;

use image::{DynamicImage, GrayImage, RgbImage};

use crate::error::{DataError, Result};

/// Images larger than this many pixels are refused before decoding (decompression bombs).
pub const MAX_PIXELS: u64 = 100_000_000;

/// File extensions read as images.
pub const IMAGE_EXTENSIONS: [&str; 5] = ["png", "jpg", "jpeg", "bmp", "webp"];

/// Whether `path` has one of the [`IMAGE_EXTENSIONS`] (case-insensitive).
pub fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Reads only the header of `path`: is it a supported image of at most [`MAX_PIXELS`]? The error
/// is the reason, without the path.
pub fn probe(path: &Path) -> std::result::Result<(), String> {
    let reader = open_reader(path).map_err(|e| e.to_string())?;
    checked_decoder(reader).map(|_| ())
}

fn open_reader(path: &Path) -> std::io::Result<image::ImageReader<std::io::BufReader<std::fs::File>>> {
    image::ImageReader::open(path)?.with_guessed_format()
}

/// The decoder for a reader whose header names a known format and at most [`MAX_PIXELS`]
/// pixels; nothing but the header has been read yet.
fn checked_decoder<R: std::io::BufRead + std::io::Seek + 'static>(
    reader: image::ImageReader<R>,
) -> std::result::Result<impl image::ImageDecoder, String> {
    if reader.format().is_none() {
        return Err("not a recognised image format".into());
    }
    let decoder = reader
        .into_decoder()
        .map_err(|e| format!("not a readable image: {e}"))?;
    let (w, h) = image::ImageDecoder::dimensions(&decoder);
    if u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Err(format!("{w}x{h} pixels exceeds the limit of {MAX_PIXELS}"));
    }
    Ok(decoder)
}

/// Whether a JPEG's last scan is followed by an end-of-image marker. Scan data escapes every 0xFF
/// byte, so the first `FF D9` after the last start-of-scan (`FF DA`) can only be the real end;
/// an embedded thumbnail ends before the main image's scans, and data appended after the end
/// does not matter.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let last_scan = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]);
    last_scan.is_some_and(|at| bytes[at..].windows(2).any(|w| w == [0xFF, 0xD9]))
}

/// Other image formats that users' folders hold: reported as unsupported rather than ignored.
pub const UNSUPPORTED_IMAGE_EXTENSIONS: [&str; 11] = [
    "gif", "tif", "tiff", "heic", "heif", "avif", "jxl", "ico", "ppm", "pgm", "svg",
];

/// Whether `path` has one of the [`UNSUPPORTED_IMAGE_EXTENSIONS`] (case-insensitive).
pub fn has_unsupported_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| UNSUPPORTED_IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Every image file under `dir` (recursively, by extension), sorted by path.
pub fn image_files(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|source| DataError::Io {
            path: d.clone(),
            source,
        })?;
        for entry in entries {
            let path = entry
                .map_err(|source| DataError::Io {
                    path: d.clone(),
                    source,
                })?
                .path();
            if path.is_dir() {
                stack.push(path);
            } else if has_image_extension(&path) {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// An 8-bit image, `height × width × channels`, row-major HWC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// 1 (gray) or 3 (RGB).
    pub channels: usize,
    /// `height · width · channels` bytes.
    pub data: Vec<u8>,
}

impl Image {
    /// Wraps `data`, checking its length.
    pub fn new(width: usize, height: usize, channels: usize, data: Vec<u8>) -> Result<Self> {
        if width == 0 || height == 0 || !(channels == 1 || channels == 3) {
            return Err(DataError::Invalid(format!(
                "bad image geometry {width}x{height}x{channels}"
            )));
        }
        if data.len() != width * height * channels {
            return Err(DataError::Invalid(format!(
                "{} bytes do not hold a {width}x{height}x{channels} image",
                data.len()
            )));
        }
        Ok(Self {
            width,
            height,
            channels,
            data,
        })
    }

    /// An image filled with `value`.
    pub fn filled(width: usize, height: usize, channels: usize, value: u8) -> Self {
        Self {
            width,
            height,
            channels,
            data: vec![value; width * height * channels],
        }
    }

    /// The value at column `x`, row `y`, channel `c`.
    #[inline]
    pub fn get(&self, x: usize, y: usize, c: usize) -> u8 {
        self.data[(y * self.width + x) * self.channels + c]
    }

    /// Converts from the `image` crate by the decoding rule above.
    pub fn from_dynamic(img: &DynamicImage) -> Self {
        let gray = matches!(
            img,
            DynamicImage::ImageLuma8(_)
                | DynamicImage::ImageLumaA8(_)
                | DynamicImage::ImageLuma16(_)
                | DynamicImage::ImageLumaA16(_)
        );
        if gray {
            let g = img.to_luma8();
            Self {
                width: g.width() as usize,
                height: g.height() as usize,
                channels: 1,
                data: g.into_raw(),
            }
        } else {
            let rgb = img.to_rgb8();
            Self {
                width: rgb.width() as usize,
                height: rgb.height() as usize,
                channels: 3,
                data: rgb.into_raw(),
            }
        }
    }

    /// Converts to the `image` crate (gray or RGB).
    ///
    /// # Panics
    /// If the public fields were changed so that `data` no longer holds
    /// `width · height · channels` bytes ([`Image::new`] checks this).
    pub fn to_dynamic(&self) -> DynamicImage {
        let (w, h) = (self.width as u32, self.height as u32);
        match self.channels {
            1 => DynamicImage::ImageLuma8(GrayImage::from_raw(w, h, self.data.clone()).expect("size checked")),
            _ => DynamicImage::ImageRgb8(RgbImage::from_raw(w, h, self.data.clone()).expect("size checked")),
        }
    }

    /// Reads and decodes an image file (PNG, JPEG, BMP, WebP), refusing absurd sizes before
    /// decoding. The file is opened and read once.
    pub fn open(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| DataError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if image::guess_format(&bytes).ok() == Some(image::ImageFormat::Jpeg) && !jpeg_is_complete(&bytes) {
            // The JPEG decoder fills a cut-off scan with grey instead of failing.
            return Err(DataError::format(
                path,
                "truncated JPEG: no end-of-image marker after its last scan",
            ));
        }
        let reader = image::ImageReader::new(std::io::Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|source| DataError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        let decoder = checked_decoder(reader).map_err(|reason| DataError::format(path, reason))?;
        let img = DynamicImage::from_decoder(decoder)
            .map_err(|e| DataError::format(path, format!("cannot decode image: {e}")))?;
        Ok(Self::from_dynamic(&img))
    }

    /// Writes the image as PNG.
    pub fn save_png(&self, path: &Path) -> Result<()> {
        self.to_dynamic()
            .save_with_format(path, image::ImageFormat::Png)
            .map_err(|e| DataError::format(path, format!("cannot write PNG: {e}")))
    }

    /// The same picture with `channels` channels (gray repeated to RGB, RGB to BT.601 luma).
    pub fn with_channels(&self, channels: usize) -> Self {
        match (self.channels, channels) {
            (a, b) if a == b => self.clone(),
            (1, 3) => Self {
                channels: 3,
                data: self.data.iter().flat_map(|&v| [v, v, v]).collect(),
                ..*self
            },
            _ => Self {
                channels: 1,
                data: self
                    .data
                    .chunks_exact(3)
                    .map(|p| (0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32).round() as u8)
                    .collect(),
                ..*self
            },
        }
    }
}
