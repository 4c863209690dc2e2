//! Image folders: real photos, odd formats converted, bad files skipped with a reason, lazy
//! decoding through the loader.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cnn_data_augment::folder::ImageFolder;
use cnn_data_augment::{Image, Loader, LoaderConfig, Pipeline, Preprocess, Source};

fn photos() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/photos")
}

/// A PNG whose header claims `w × h` pixels with almost no image data (a decompression bomb).
fn png_header(w: u32, h: u32) -> Vec<u8> {
    let chunk = |kind: &[u8], data: &[u8]| {
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        let mut crc = flate2::Crc::new();
        crc.update(&body);
        let mut out = (data.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc.sum().to_be_bytes());
        out
    };
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend(chunk(b"IHDR", &ihdr));
    out.extend(chunk(b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]));
    out.extend(chunk(b"IEND", &[]));
    out
}

fn make_folder(tag: &str) -> cnn_testkit::Scratch {
    let root = cnn_testkit::scratch("folder", tag);
    let _ = std::fs::remove_dir_all(&root);
    for class in ["cats", "coffee", "rockets"] {
        std::fs::create_dir_all(root.join(class)).unwrap();
    }
    std::fs::copy(photos().join("chelsea.png"), root.join("cats/chelsea.png")).unwrap();
    std::fs::copy(photos().join("coffee.png"), root.join("coffee/coffee.png")).unwrap();
    std::fs::copy(photos().join("rocket.jpg"), root.join("rockets/rocket.jpg")).unwrap();
    // Converted, not rejected: 16-bit gray and RGBA PNGs.
    let gray16 = image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_fn(8, 6, |x, _| image::Luma([x as u16 * 8000]));
    image::DynamicImage::ImageLuma16(gray16)
        .save(root.join("cats/gray16.png"))
        .unwrap();
    let rgba = image::RgbaImage::from_pixel(5, 5, image::Rgba([200, 100, 50, 10]));
    image::DynamicImage::ImageRgba8(rgba)
        .save(root.join("coffee/rgba.png"))
        .unwrap();
    // Skipped with a reason: empty, text named .png, a 30000x30000 header, a file that is not an image.
    std::fs::write(root.join("cats/empty.png"), b"").unwrap();
    std::fs::write(root.join("cats/notes.png"), b"this is not a picture").unwrap();
    std::fs::write(root.join("rockets/bomb.png"), png_header(30_000, 30_000)).unwrap();
    std::fs::write(root.join("rockets/readme.txt"), b"ignored: not an image extension").unwrap();
    std::fs::write(root.join("rockets/anim.gif"), b"GIF89a").unwrap();
    root
}

#[test]
fn folders_give_labels_convert_odd_images_and_skip_bad_files() {
    let root = make_folder("labels");
    let folder = ImageFolder::open(&root).unwrap();
    assert_eq!(folder.classes, ["cats", "coffee", "rockets"]);
    assert_eq!(folder.len(), 5);
    let skipped: Vec<String> = folder
        .skipped
        .iter()
        .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(skipped, ["empty.png", "notes.png", "anim.gif", "bomb.png"]);
    assert!(
        folder.skipped[2].1.contains("unsupported image format"),
        "{:?}",
        folder.skipped[2]
    );
    let bomb = &folder.skipped[3].1;
    assert!(bomb.contains("exceeds the limit"), "{bomb}");
    let labels: Vec<usize> = (0..folder.len()).map(|i| folder.get(i).unwrap().1).collect();
    assert_eq!(labels, [0, 0, 1, 1, 2]);
    let (gray, _) = folder.get(1).unwrap(); // cats/gray16.png
    assert_eq!(gray.channels, 1);
    assert!(
        (gray.get(7, 0, 0) as f64 - 56_000.0 / 257.0).abs() <= 1.0,
        "16-bit values scale to 8 bits"
    );
    let (rgba, _) = folder.get(3).unwrap(); // coffee/rgba.png
    assert_eq!((rgba.channels, rgba.get(0, 0, 0), rgba.get(0, 0, 2)), (3, 200, 50));

    // A class folder without a readable image is an error naming it.
    std::fs::create_dir_all(root.join("empty")).unwrap();
    std::fs::write(root.join("empty/broken.png"), b"").unwrap();
    let err = ImageFolder::open(&root).unwrap_err().to_string();
    assert!(err.contains("class folder 'empty' holds no readable image"), "{err}");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn folders_stream_through_the_loader_and_corrupt_bodies_name_the_file() {
    let root = make_folder("loader");
    let folder = Arc::new(ImageFolder::open(&root).unwrap());
    let pre = Preprocess {
        channels: 3,
        size: 64,
        mean: vec![0.5; 3],
        std: vec![0.25; 3],
        resize: false,
        center_crop: false,
    };
    let resize = Pipeline::from_toml("[[ops]]\nop = \"resize\"\nsize = 64\n").unwrap();
    let config = LoaderConfig {
        batch_size: 2,
        workers: 2,
        prefetch: 2,
        shuffle: false,
        seed: 0,
    };
    let loader = Loader::new(folder.clone(), resize.clone(), pre.clone(), config.clone()).unwrap();
    let batches: Vec<_> = loader.epoch(0).collect::<Result<_, _>>().unwrap();
    assert_eq!(batches.iter().map(|b| b.len()).collect::<Vec<_>>(), [2, 2, 1]);
    assert_eq!(batches[0].shape, [2, 3, 64, 64]);

    // Truncate a PNG body after its header: opening still works, decoding names the file.
    let png = root.join("coffee/coffee.png");
    let bytes = std::fs::read(&png).unwrap();
    std::fs::write(&png, &bytes[..5000]).unwrap();
    let folder = Arc::new(ImageFolder::open(&root).unwrap());
    let loader = Loader::new(folder, resize, pre, config).unwrap();
    let err = loader
        .epoch(0)
        .find_map(Result::err)
        .expect("the truncated JPEG fails")
        .to_string();
    assert!(err.contains("coffee.png"), "{err}");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn stratified_split_keeps_every_class() {
    let root = cnn_testkit::scratch("folder", "split");
    let _ = std::fs::remove_dir_all(&root);
    for (class, n) in [("a", 10), ("b", 20)] {
        std::fs::create_dir_all(root.join(class)).unwrap();
        for i in 0..n {
            Image::filled(4, 4, 1, i as u8)
                .save_png(&root.join(format!("{class}/{i}.png")))
                .unwrap();
        }
    }
    let folder = ImageFolder::open(&root).unwrap();
    let (train, val) = folder.stratified_split(0.2, 1);
    let count = |f: &ImageFolder, l: usize| f.samples.iter().filter(|(_, x)| *x == l).count();
    assert_eq!(
        (count(&train, 0), count(&val, 0), count(&train, 1), count(&val, 1)),
        (8, 2, 16, 4)
    );
    let (again, _) = folder.stratified_split(0.2, 1);
    assert_eq!(again.samples, train.samples);
    std::fs::remove_dir_all(&root).unwrap();
}

/// A JPEG cut off inside its scan data is an error naming the file (the decoder alone would fill
/// the rest with grey); a complete JPEG with bytes appended after its end still opens.
#[test]
fn truncated_jpegs_are_refused_and_trailers_tolerated() {
    let dir = cnn_testkit::scratch("folder", "jpeg");
    std::fs::create_dir_all(&dir).unwrap();
    let bytes = std::fs::read(photos().join("rocket.jpg")).unwrap();
    let cut = dir.join("cut.jpg");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let err = Image::open(&cut).unwrap_err().to_string();
    assert!(err.contains("cut.jpg") && err.contains("truncated JPEG"), "{err}");
    let trailer = dir.join("trailer.jpg");
    let mut long = bytes.clone();
    long.extend_from_slice(b"camera maker's trailer \xff\xd8 data");
    std::fs::write(&trailer, &long).unwrap();
    assert_eq!(
        Image::open(&trailer).unwrap(),
        Image::open(&photos().join("rocket.jpg")).unwrap()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
