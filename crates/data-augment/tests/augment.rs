//! Properties of the augmentation ops and pipelines (beyond the unit tests beside each op).

use cnn_data_augment::augment::{self, Op, PcaFit, Pipeline, ShiftDistribution, Size, sample_rng};
use cnn_data_augment::{Image, embedded::mnist_5k};
use rand::Rng;

fn photo(name: &str) -> Image {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../datasets/photos")
        .join(name);
    Image::open(&path).unwrap()
}

fn noise(w: usize, h: usize, c: usize, seed: u64) -> Image {
    let mut rng = sample_rng(seed, 0, 0);
    Image::new(w, h, c, (0..w * h * c).map(|_| rng.random()).collect()).unwrap()
}

fn run(op: Op, img: &Image, index: u64) -> Image {
    Pipeline { ops: vec![op] }.apply(img, 5, 0, index).unwrap()
}

#[test]
fn real_photos_decode_as_rgb() {
    let cat = photo("chelsea.png");
    assert_eq!((cat.width, cat.height, cat.channels), (451, 300, 3));
    let rocket = photo("rocket.jpg");
    assert_eq!(rocket.channels, 3);
}

#[test]
fn identity_settings_leave_images_unchanged() {
    let img = photo("chelsea.png");
    let small = augment::geometry::resize(&img, 60, 90);
    for op in [
        Op::Rotate {
            degrees: [0.0, 0.0],
            fill: 0,
        },
        Op::Shear {
            x: [0.0, 0.0],
            y: [0.0, 0.0],
            fill: 0,
        },
        Op::Affine {
            degrees: [0.0, 0.0],
            translate: [0.0, 0.0],
            scale: [1.0, 1.0],
            shear: [0.0, 0.0],
            fill: 0,
        },
        Op::Elastic {
            alpha: 0.0,
            sigma: 4.0,
            p: 1.0,
            fill: 0,
        },
        Op::PcaColor {
            sigma: 0.0,
            eigenvalues: [0.2, 0.02, 0.004],
            eigenvectors: augment::PcaColor::imagenet().eigenvectors,
        },
        Op::ColorJitter {
            brightness: 0.0,
            contrast: 0.0,
            saturation: 0.0,
        },
        Op::HorizontalFlip { p: 0.0 },
        Op::RandomCrop {
            size: Size::Rect([60, 90]),
            padding: 0,
            padding_mode: Default::default(),
        },
    ] {
        assert_eq!(run(op.clone(), &small, 3), small, "{}", op.name());
    }
}

#[test]
fn output_sizes_follow_the_ops() {
    let img = photo("coffee.png");
    let rrc = Op::RandomResizedCrop {
        size: Size::Square(224),
        scale: [0.08, 1.0],
        ratio: [0.75, 4.0 / 3.0],
    };
    for index in 0..20 {
        let out = run(rrc.clone(), &img, index);
        assert_eq!((out.width, out.height), (224, 224));
    }
    let crop = run(
        Op::RandomCrop {
            size: Size::Square(32),
            padding: 4,
            padding_mode: Default::default(),
        },
        &noise(32, 32, 3, 1),
        0,
    );
    assert_eq!((crop.width, crop.height), (32, 32));
    let centre = run(
        Op::CenterCrop {
            size: Size::Rect([10, 20]),
        },
        &img,
        0,
    );
    assert_eq!((centre.width, centre.height), (20, 10));
    assert_eq!(
        Pipeline::preset("imagenet").unwrap().check_input(300, 451).unwrap(),
        (224, 224)
    );
}

#[test]
fn colour_shift_mean_matches_the_drawn_offsets() {
    let gray = Image::filled(16, 16, 3, 128);
    for (distribution, scale) in [
        (ShiftDistribution::Uniform, vec![30.0, 10.0, 50.0]),
        (ShiftDistribution::Normal, vec![20.0]),
    ] {
        let op = Op::ColorShift {
            distribution,
            scale: scale.clone(),
        };
        let out = run(op, &gray, 9);
        // Replay the sample's random stream to get the offsets the op drew.
        let mut rng = sample_rng(5, 0, 9);
        for c in 0..3 {
            let s = scale[c.min(scale.len() - 1)];
            let offset = match distribution {
                ShiftDistribution::Uniform => rng.random_range(-s..s),
                ShiftDistribution::Normal => s * augment::ops::standard_normal(&mut rng),
            };
            let mean = out.data.iter().skip(c).step_by(3).map(|&v| v as f64).sum::<f64>() / 256.0;
            assert!(
                (mean - (128.0 + offset).round().clamp(0.0, 255.0)).abs() < 1e-9,
                "channel {c}: {mean} vs {offset}"
            );
        }
    }
    let bright = Image::filled(4, 4, 3, 250);
    let out = run(
        Op::ColorShift {
            distribution: ShiftDistribution::Uniform,
            scale: vec![100.0],
        },
        &bright,
        0,
    );
    assert!(
        out.data.iter().all(|&v| v == 255 || v < 250),
        "values must clamp at 255"
    );
}

#[test]
fn pca_fit_recovers_a_known_covariance() {
    // Pixels = mean + Q · diag(√λ) · z, z ~ N(0, I): covariance Q diag(λ) Qᵀ.
    let q = [
        [2.0 / 3.0, 2.0 / 3.0, 1.0 / 3.0],
        [-2.0 / 3.0, 1.0 / 3.0, 2.0 / 3.0],
        [1.0 / 3.0, -2.0 / 3.0, 2.0 / 3.0],
    ];
    let lambda: [f64; 3] = [0.04, 0.01, 0.0025];
    let mut rng = sample_rng(1, 2, 3);
    let mut fit = PcaFit::default();
    for _ in 0..200_000 {
        let z: Vec<f64> = (0..3).map(|_| augment::ops::standard_normal(&mut rng)).collect();
        let mut p = [0.5, 0.4, 0.3];
        for k in 0..3 {
            for (i, v) in p.iter_mut().enumerate() {
                *v += q[k][i] * lambda[k].sqrt() * z[k];
            }
        }
        fit.add_pixel(p);
    }
    let pca = fit.finish();
    for k in 0..3 {
        assert!(
            (pca.eigenvalues[k] / lambda[k] - 1.0).abs() < 0.03,
            "eigenvalue {k}: {:?}",
            pca.eigenvalues
        );
        let dot: f64 = (0..3).map(|i| pca.eigenvectors[k][i] * q[k][i]).sum();
        assert!(dot.abs() > 0.999, "eigenvector {k}: {:?}", pca.eigenvectors[k]);
    }
}

#[test]
fn same_seed_epoch_index_gives_the_same_bytes() {
    let img = photo("chelsea.png");
    let p = Pipeline::preset("imagenet").unwrap();
    let a = p.apply(&img, 11, 2, 7).unwrap();
    assert_eq!(a, p.apply(&img, 11, 2, 7).unwrap());
    assert_ne!(a, p.apply(&img, 11, 2, 8).unwrap());
    assert_ne!(a, p.apply(&img, 11, 3, 7).unwrap());
    assert_ne!(a, p.apply(&img, 12, 2, 7).unwrap());
}

#[test]
fn results_do_not_depend_on_the_number_of_workers() {
    let (train, _) = mnist_5k().unwrap();
    let digits: Vec<Image> = (0..40)
        .map(|i| Image::new(28, 28, 1, train.image(i).to_vec()).unwrap())
        .collect();
    let mnist = Pipeline::preset("mnist").unwrap();
    let one = mnist.apply_all(&digits, 3, 1, 100, 1).unwrap();
    assert_eq!(one, mnist.apply_all(&digits, 3, 1, 100, 4).unwrap());
    assert_ne!(one[0], digits[0]);
    let colour: Vec<Image> = (0..13).map(|i| noise(32, 32, 3, i)).collect();
    let cifar = Pipeline::preset("cifar").unwrap();
    assert_eq!(
        cifar.apply_all(&colour, 9, 0, 0, 1).unwrap(),
        cifar.apply_all(&colour, 9, 0, 0, 4).unwrap()
    );
}

#[test]
fn presets_round_trip_through_toml_and_json() {
    for name in augment::PRESETS {
        let p = Pipeline::preset(name).unwrap();
        assert_eq!(Pipeline::from_toml(&p.to_toml()).unwrap(), p, "{name}");
        assert_eq!(Pipeline::from_json(&p.to_json()).unwrap(), p, "{name}");
    }
}

#[test]
fn bad_pipelines_are_rejected_with_the_op_and_field() {
    let unknown = Pipeline::from_toml("[[ops]]\nop = \"blur\"\n").unwrap_err().to_string();
    assert!(unknown.contains("blur"), "{unknown}");
    let negative =
        Pipeline::from_toml("[[ops]]\nop = \"horizontal_flip\"\n\n[[ops]]\nop = \"vertical_flip\"\np = -0.5\n")
            .unwrap_err()
            .to_string();
    assert!(
        negative.contains("#2 `vertical_flip`") && negative.contains("`p`"),
        "{negative}"
    );
    let typo = Pipeline::from_json(r#"{"ops": [{"op": "rotate", "degree": [0, 5]}]}"#)
        .unwrap_err()
        .to_string();
    assert!(typo.contains("degree"), "{typo}");
    let range = Pipeline::from_json(r#"{"ops": [{"op": "rotate", "degrees": [10, -10]}]}"#)
        .unwrap_err()
        .to_string();
    assert!(range.contains("`degrees`"), "{range}");
    let crop = Pipeline::from_toml("[[ops]]\nop = \"random_crop\"\nsize = 40\n").unwrap();
    let msg = crop.check_input(32, 32).unwrap_err().to_string();
    assert!(msg.contains("random_crop") && msg.contains("larger than"), "{msg}");
    assert!(crop.apply(&noise(32, 32, 1, 0), 0, 0, 0).is_err());
    let dir_dir = cnn_testkit::scratch("augment", "aug");
    let dir = dir_dir.join("aug.toml");
    std::fs::write(&dir, "[[ops]]\nop = \"elastic\"\nalpha = 3\nsigma = -1\n").unwrap();
    let msg = Pipeline::from_arg(dir.to_str().unwrap()).unwrap_err().to_string();
    assert!(msg.contains(dir.to_str().unwrap()) && msg.contains("`sigma`"), "{msg}");
    std::fs::remove_file(dir).unwrap();
    assert!(
        Pipeline::from_arg("imagenett")
            .unwrap_err()
            .to_string()
            .contains("neither an augmentation preset")
    );
}

/// The `imagenet` preset's colour jitter + PCA colour run fused in one pass: the same bytes as
/// applying its ops one by one with the same draws.
#[test]
fn fused_colour_ops_give_the_bytes_of_the_ops_one_by_one() {
    let img = photo("chelsea.png");
    let preset = Pipeline::from_arg("imagenet").unwrap();
    for index in 0..20 {
        let mut rng = sample_rng(3, 1, index);
        let mut by_one = img.clone();
        for op in &preset.ops {
            by_one = op.apply(&by_one, &mut rng).unwrap();
        }
        assert_eq!(preset.apply(&img, 3, 1, index).unwrap(), by_one, "sample {index}");
    }
}

/// `tests/data/resize_torchvision.json` (from `scripts/make_resize_reference.py`): torchvision's
/// bilinear resize with `antialias=True` of windows of `chelsea.png`, shrinking and enlarging;
/// ours is within one 8-bit level everywhere.
#[test]
fn resize_is_within_one_level_of_torchvisions_antialiased_bilinear() {
    let img = photo("chelsea.png");
    let json: serde_json::Value = serde_json::from_str(include_str!("data/resize_torchvision.json")).unwrap();
    let cases = json["cases"].as_array().unwrap();
    assert!(cases.len() >= 3);
    for case in cases {
        let field = |k: &str| case[k].as_u64().unwrap() as usize;
        let window = [field("top"), field("left"), field("height"), field("width")];
        let (oh, ow) = (field("out_height"), field("out_width"));
        let ours = augment::geometry::resize_window(&img, window, oh, ow);
        let theirs: Vec<u8> = case["hwc"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u8)
            .collect();
        assert_eq!(ours.data.len(), theirs.len());
        let worst = ours
            .data
            .iter()
            .zip(&theirs)
            .map(|(&a, &b)| a.abs_diff(b))
            .max()
            .unwrap();
        assert!(worst <= 1, "{window:?} -> {oh}x{ow}: max difference {worst}");
    }
}

#[test]
fn alternating_flip_mirrors_each_image_the_other_way_every_epoch() {
    let img = noise(9, 7, 1, 3);
    let mirrored = augment::geometry::flip_horizontal(&img);
    let p = Pipeline::from_toml("[[ops]]\nop = \"alternating_flip\"\n").unwrap();
    let mut first_epoch_flips = 0;
    for index in 0..400 {
        let seen: Vec<Image> = (0..4).map(|epoch| p.apply(&img, 11, epoch, index).unwrap()).collect();
        assert!(seen[0] == img || seen[0] == mirrored);
        // Consecutive epochs show both sides; every other epoch repeats.
        assert_ne!(seen[0], seen[1], "sample {index}");
        assert_eq!((&seen[0], &seen[1]), (&seen[2], &seen[3]), "sample {index}");
        assert_eq!(seen[0] == mirrored, augment::alternating_flip(11, 0, index));
        first_epoch_flips += usize::from(seen[0] == mirrored);
    }
    // The first epoch's coins are fair (400 tosses: 200 ± 40 is over 4 standard deviations).
    assert!((160..=240).contains(&first_epoch_flips), "{first_epoch_flips}");
    let other_seed = (0..400).filter(|&i| augment::alternating_flip(12, 0, i) != augment::alternating_flip(11, 0, i));
    assert!(other_seed.count() > 100, "another seed draws other coins");
    // In a pipeline it does not draw from the sample's generator: the crop after it is the crop
    // the pipeline without it makes.
    let crop = Op::RandomCrop { size: Size::Square(7), padding: 2, padding_mode: Default::default() };
    let with = Pipeline { ops: vec![Op::AlternatingFlip, crop.clone()] };
    let flipped_first = if augment::alternating_flip(5, 1, 8) { mirrored.clone() } else { img.clone() };
    assert_eq!(with.apply(&img, 5, 1, 8).unwrap(), Pipeline { ops: vec![crop] }.apply(&flipped_first, 5, 1, 8).unwrap());
}
