//! RandAugment, TrivialAugmentWide and random erasing against torchvision: the magnitude tables
//! and every op's pixels (from `scripts/make_autoaugment_reference.py`), the policies' draws,
//! and the erasing rectangle's distribution.

use cnn_data_augment::Image;
use cnn_data_augment::augment::auto::{AUTO_OPS, AutoOp, Policy};
use cnn_data_augment::augment::{EraseValue, Op, Pipeline, sample_rng};
use serde_json::Value;

fn reference() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/autoaugment_torchvision.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// torchvision's name of each op.
fn torch_name(op: AutoOp) -> String {
    format!("{op:?}")
}

fn bytes(v: &Value) -> Vec<u8> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u8)
        .collect()
}

#[test]
fn magnitude_tables_are_torchvisions() {
    let reference = reference();
    for (policy, key) in [
        (Policy::RandAugment, "rand_augment"),
        (Policy::TrivialAugmentWide, "trivial_augment_wide"),
    ] {
        let tables = &reference["tables"][key];
        assert_eq!(tables.as_object().unwrap().len(), AUTO_OPS.len());
        for op in AUTO_OPS {
            let entry = &tables[torch_name(op)];
            let values: Vec<f64> = entry["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            let signed = entry["signed"].as_bool().unwrap();
            if values.len() == 1 {
                assert_eq!(op.magnitude(policy, 0, 31, 28, 28), None, "{key} {op:?}");
                continue;
            }
            for (bin, want) in values.iter().enumerate() {
                let (got, got_signed) = op.magnitude(policy, bin, 31, 28, 28).unwrap();
                // torchvision's tables are f32 tensors from `torch.linspace`, whose vectorised steps
                // round a few bins one f32 step away from either of its scalar formulas.
                assert_eq!(got_signed, signed, "{key} {op:?}");
                assert!(
                    (got - want).abs() <= 1e-6 * want.abs().max(1.0),
                    "{key} {op:?} bin {bin}: {got} vs {want}"
                );
            }
        }
    }
}

#[test]
fn every_op_gives_torchvisions_pixels() {
    let reference = reference();
    let cases = reference["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 50);
    for case in cases {
        let name = case["op"].as_str().unwrap();
        let op = *AUTO_OPS.iter().find(|op| torch_name(**op) == name).unwrap();
        let dim = |k: &str| case[k].as_u64().unwrap() as usize;
        let img = Image::new(dim("width"), dim("height"), dim("channels"), bytes(&case["input"])).unwrap();
        let m = case["magnitude"].as_f64().unwrap();
        let got = op.apply(&img, m, 0);
        assert_eq!(
            got.data,
            bytes(&case["output"]),
            "{name} {m} on the {} image",
            case["image"]
        );
    }
}

fn gray(seed: u64) -> Image {
    use rand::Rng;
    let mut rng = sample_rng(seed, 0, 0);
    Image::new(28, 28, 1, (0..28 * 28).map(|_| rng.random()).collect()).unwrap()
}

#[test]
fn policies_draw_like_torchvision() {
    let img = gray(1);
    // RandAugment with no ops is the identity; TrivialAugmentWide picks each of the 14 ops equally
    // often and a bin uniformly, so on full-range gray noise the image stays as it was for
    // Identity, Color (gray) and AutoContrast (already 0..255), and for bin 0 of the nine signed
    // ops and of Posterize (8 bits): 3/14 + 10/(14·31) of the draws.
    let none = Pipeline {
        ops: vec![Op::RandAugment {
            num_ops: 0,
            magnitude: 9,
            num_magnitude_bins: 31,
            fill: 0,
        }],
    };
    assert_eq!(none.apply(&img, 3, 0, 0).unwrap(), img);
    let trivial = Pipeline::preset("trivialaugment").unwrap();
    let unchanged = (0..1400)
        .filter(|&i| trivial.apply(&img, 3, 0, i).unwrap() == img)
        .count();
    let expected = 1400.0 * (3.0 / 14.0 + 10.0 / 14.0 / 31.0);
    assert!(
        (unchanged as f64 - expected).abs() < 30.0,
        "{unchanged} unchanged, expected about {expected}"
    );
    let rand = Pipeline::preset("randaugment").unwrap();
    let changed = (0..200).filter(|&i| rand.apply(&img, 3, 0, i).unwrap() != img).count();
    // Two ops at bin 9: only two of those three ops leave noise unchanged, (3/14)² of the draws.
    assert!((180..=198).contains(&changed), "{changed}");
    // The same (seed, epoch, index) gives the same bytes; another index does not.
    assert_eq!(rand.apply(&img, 3, 1, 7).unwrap(), rand.apply(&img, 3, 1, 7).unwrap());
    assert_ne!(rand.apply(&img, 3, 1, 7).unwrap(), rand.apply(&img, 3, 1, 8).unwrap());
}

#[test]
fn erasing_draws_rectangles_within_torchvisions_ranges() {
    let img = Image::filled(28, 28, 1, 200);
    let erase = |p: f64, value: EraseValue| Pipeline {
        ops: vec![Op::RandomErasing {
            p,
            scale: [0.02, 0.33],
            ratio: [0.3, 3.3],
            value,
        }],
    };
    let half = erase(0.5, EraseValue::Fill(7));
    let mut erased = 0;
    for i in 0..1000 {
        let out = half.apply(&img, 1, 0, i).unwrap();
        let hit: Vec<(usize, usize)> = (0..28 * 28)
            .filter(|&k| out.data[k] == 7)
            .map(|k| (k / 28, k % 28))
            .collect();
        if hit.is_empty() {
            continue;
        }
        erased += 1;
        let (rows, cols) = (
            hit.iter().map(|h| h.0).max().unwrap() - hit[0].0 + 1,
            hit.iter().map(|h| h.1).max().unwrap() - hit.iter().map(|h| h.1).min().unwrap() + 1,
        );
        // One solid rectangle, every other pixel untouched.
        assert_eq!(rows * cols, hit.len(), "sample {i}");
        assert!(out.data.iter().all(|&v| v == 7 || v == 200));
        let area = hit.len() as f64 / 784.0;
        // Rounding the sides moves the area a little beyond the drawn fraction.
        assert!((0.01..=0.40).contains(&area), "sample {i}: area {area}");
        let ratio = rows as f64 / cols as f64;
        assert!((0.2..=5.0).contains(&ratio), "sample {i}: ratio {ratio}");
    }
    assert!((430..=570).contains(&erased), "{erased} of 1000 erased at p = 0.5");
    let never = erase(0.0, EraseValue::Fill(7));
    assert!((0..50).all(|i| never.apply(&img, 1, 0, i).unwrap() == img));
    let noise = Pipeline::from_toml("[[ops]]\nop = \"random_erasing\"\np = 1.0\nvalue = \"random\"\n").unwrap();
    let out = noise.apply(&img, 1, 0, 0).unwrap();
    let distinct: std::collections::BTreeSet<u8> = out.data.iter().copied().filter(|&v| v != 200).collect();
    assert!(distinct.len() > 5, "noise fills with many values: {distinct:?}");
}

#[test]
fn bad_values_name_the_op_and_field() {
    let cases = [
        ("[[ops]]\nop = \"rand_augment\"\nmagnitude = 31\n", "`magnitude`"),
        (
            "[[ops]]\nop = \"rand_augment\"\nnum_magnitude_bins = 1\n",
            "`num_magnitude_bins`",
        ),
        (
            "[[ops]]\nop = \"trivial_augment_wide\"\nnum_magnitude_bins = 0\n",
            "`num_magnitude_bins`",
        ),
        ("[[ops]]\nop = \"random_erasing\"\np = 1.5\n", "`p`"),
        ("[[ops]]\nop = \"random_erasing\"\nscale = [0.5, 0.1]\n", "`scale`"),
        ("[[ops]]\nop = \"random_erasing\"\nratio = [0.0, 2.0]\n", "`ratio`"),
    ];
    for (toml, field) in cases {
        let msg = Pipeline::from_toml(toml).unwrap_err().to_string();
        assert!(msg.contains(field) && !msg.contains('\n'), "{toml}: {msg}");
    }
    let word = Pipeline::from_toml("[[ops]]\nop = \"random_erasing\"\nvalue = \"noise\"\n").unwrap_err();
    assert!(
        word.to_string().contains("value") || word.to_string().contains("bad pipeline"),
        "{word}"
    );
}
