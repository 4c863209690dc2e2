//! The `cnn` binary as a user runs it: clear one-line errors, never a panic.

use std::process::{Command, Output};

mod common;

use common::{assert_clean_failure, assert_success, cnn};

#[test]
fn a_backend_missing_from_the_build_is_a_one_line_error() {
    let missing: Vec<&str> = [
        ("flex", cfg!(feature = "flex")),
        ("ndarray", cfg!(feature = "ndarray")),
        ("wgpu", cfg!(feature = "wgpu")),
    ]
    .into_iter()
    .filter(|(_, compiled)| !compiled)
    .map(|(name, _)| name)
    .collect();
    if missing.is_empty() {
        eprintln!("every backend is compiled in: nothing to check here (resolve() has unit tests)");
    }
    for name in missing {
        let out = cnn(&["--device", name, "train", "--epochs", "1"]);
        let msg = assert_clean_failure(&out);
        assert!(msg.contains(&format!("--features {name}")), "{msg}");
        assert!(msg.contains("this build has:"), "{msg}");
    }
}

#[test]
fn unknown_device_model_and_bad_values_are_clear_errors() {
    let msg = assert_clean_failure(&cnn(&["--device", "tpu", "train"]));
    assert!(msg.contains("unknown device 'tpu'"), "{msg}");
    let msg = assert_clean_failure(&cnn(&["train", "--model", "lenet"]));
    assert!(msg.contains("did you mean 'lenet5'"), "{msg}");
    let msg = assert_clean_failure(&cnn(&["train", "--epochs", "0"]));
    assert!(msg.contains("--epochs"), "{msg}");
    let msg = assert_clean_failure(&cnn(&["train", "--dataset", "imagenet"]));
    assert!(msg.contains("unknown dataset 'imagenet'"), "{msg}");
}

#[test]
fn models_and_devices_are_listed() {
    let out = cnn(&["models"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("lenet5"));
    let out = cnn(&["devices"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("flex") && text.contains("wgpu"), "{text}");
}

#[test]
fn presets_are_listed_and_settings_are_named_by_their_flags() {
    let text = assert_success(&cnn(&["train", "--preset", "list"]));
    for name in ["lenet5-mnist5k", "lenet5-fashion", "resnet20-fashion", "resnet20-fashion-long"] {
        assert!(text.contains(name), "{name} missing:\n{text}");
    }
    let msg = assert_clean_failure(&cnn(&["train", "--valid-split", "1.5"]));
    assert!(msg.contains("--valid-split must be in [0, 0.9), got 1.5"), "{msg}");
    let msg = assert_clean_failure(&cnn(&["train", "--warmup", "12"]));
    assert!(msg.contains("--warmup 12 must be shorter than --epochs 10"), "{msg}");
    let dir = cnn_testkit::scratch("cli", "preset-file");
    let file = dir.join("mine.toml");
    std::fs::write(&file, "description = \"x\"\n[settings]\nepochz = 2\n").unwrap();
    let msg = assert_clean_failure(&cnn(&["train", "--preset", file.to_str().unwrap()]));
    assert!(msg.contains("epochz"), "{msg}");
}

#[test]
fn kernels_lists_every_switch_and_says_which_are_off_and_why() {
    let text = assert_success(&cnn(&["kernels"]));
    for var in ["CNN_FAST_CONV", "CNN_WINOGRAD", "CNN_TAPWISE", "CNN_FUSED_BN", "CNN_FAST_LINEAR", "CNN_FUSED_SGD"] {
        assert!(text.contains(var), "{var} missing:\n{text}");
    }
    let off = Command::new(env!("CARGO_BIN_EXE_cnn"))
        .arg("kernels")
        .env("CNN_FAST_CONV", "0")
        .output()
        .unwrap();
    let text = assert_success(&off);
    let line = |var: &str| text.lines().find(|l| l.trim_start().starts_with(var)).unwrap().to_string();
    assert!(line("CNN_FAST_CONV").contains("off (CNN_FAST_CONV=0)"), "{text}");
    // A path of the convolution is off with it.
    assert!(line("CNN_WINOGRAD").contains("off (CNN_FAST_CONV=0)"), "{text}");
    assert!(line("CNN_FUSED_BN").contains(" on "), "{text}");
}

/// The main job with its defaults (what `cargo xtask train` runs): LeNet-5 on the embedded
/// digits must reach 0.95 test accuracy and end with the promised line.
#[cfg(feature = "flex")]
#[test]
fn default_training_reaches_95_percent_and_writes_a_run_folder() {
    let dir = cnn_testkit::scratch("cli", "cli-test");
    let _ = std::fs::remove_dir_all(&dir);
    let out = cnn(&["--device", "flex", "train", "--out", dir.to_str().unwrap()]);
    let stdout = assert_success(&out);
    assert!(
        stdout.contains("epoch   1/10  train loss"),
        "no per-epoch progress: {stdout}"
    );
    assert!(stdout.contains(" data wait "), "no starvation figure: {stdout}");
    let last = stdout.trim_end().lines().last().unwrap();
    assert!(
        last.starts_with("test accuracy 0.") && last.ends_with(" on 1000 images"),
        "{last}"
    );
    let accuracy: f64 = last.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert!(accuracy >= 0.95, "test accuracy {accuracy} < 0.95\n{stdout}");
    for file in [
        "config.json",
        "metrics.csv",
        "model.bpk",
        "summary.json",
        "curves.png",
        "best.bpk",
    ] {
        assert!(dir.join(file).is_file(), "{file} missing");
    }
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 11, "{csv}");
    assert!(csv.starts_with("epoch,lr,train_loss,train_accuracy,train_top5,valid_loss,valid_accuracy,valid_top5,"));
    let config = std::fs::read_to_string(dir.join("config.json")).unwrap();
    assert!(config.contains("\"model\": \"lenet5\""), "{config}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// With wgpu compiled in but no driver visible (Vulkan ICDs and EGL vendors hidden), the error
/// is clear and nothing panics.
#[cfg(feature = "wgpu")]
#[test]
fn wgpu_without_a_driver_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_cnn"))
        .args(["--device", "wgpu", "train", "--epochs", "1"])
        .env("VK_ICD_FILENAMES", "/nonexistent/icd.json")
        .env("VK_DRIVER_FILES", "/nonexistent/icd.json")
        .env("__EGL_VENDOR_LIBRARY_FILENAMES", "/nonexistent/egl.json")
        .output()
        .unwrap();
    let msg = assert_clean_failure(&out);
    assert!(msg.contains("no usable GPU adapter"), "{msg}");
}

/// `cnn` with the software Vulkan driver's runtime folder set (Mesa prints a warning without it).
#[cfg(feature = "wgpu")]
fn cnn_gpu(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cnn"))
        .args(args)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .output()
        .expect("run cnn")
}

/// Training on the GPU backend end to end (software Vulkan in CI): LeNet-5, one short epoch on
/// 500 embedded digits; then data-parallel over the CPU and the GPU.
#[cfg(feature = "wgpu")]
#[test]
fn train_runs_on_wgpu_and_data_parallel_over_flex_and_wgpu() {
    let root = cnn_testkit::scratch("cli", "cli-wgpu");
    let _ = std::fs::remove_dir_all(&root);
    let common = ["--epochs", "1", "--subset", "500", "--batch-size", "50"];
    let out_dir = root.join("gpu");
    let mut args = vec!["--device", "wgpu", "train", "--out", out_dir.to_str().unwrap()];
    args.extend(common);
    let stdout = assert_success(&cnn_gpu(&args));
    assert!(stdout.contains("on wgpu"), "{stdout}");
    assert!(stdout.contains("epoch   1/1"), "{stdout}");
    assert!(out_dir.join("model.bpk").is_file());
    let accuracy: f64 = stdout
        .trim_end()
        .lines()
        .last()
        .unwrap()
        .split_whitespace()
        .nth(2)
        .unwrap()
        .parse()
        .unwrap();
    assert!(accuracy > 0.3, "one epoch on the GPU learned nothing: {stdout}");

    let out_dir = root.join("both");
    let mut args = vec!["train", "--devices", "flex,wgpu", "--out", out_dir.to_str().unwrap()];
    args.extend(common);
    let stdout = assert_success(&cnn_gpu(&args));
    assert!(stdout.contains("on flex + wgpu (data-parallel)"), "{stdout}");
    assert!(out_dir.join("model.bpk").is_file());

    for (devices, wanted) in [
        ("flex:1", "only wgpu takes an index"),
        ("flex,tpu", "unknown device 'tpu'"),
        ("wgpu:x", "expected wgpu:N"),
    ] {
        let msg = assert_clean_failure(&cnn_gpu(&["train", "--devices", devices, "--epochs", "1"]));
        assert!(msg.contains(wanted), "{devices}: {msg}");
    }
    let msg = assert_clean_failure(&cnn_gpu(&["--device", "flex", "train", "--devices", "flex,flex"]));
    assert!(msg.contains("either --device or --devices"), "{msg}");

    // AlexNet's 151 MB fully connected layer is more than software Vulkan can bind: one line.
    let out_dir = root.join("alexnet");
    let out = Command::new(env!("CARGO_BIN_EXE_cnn"))
        .args([
            "--device", "wgpu", "train", "--model", "alexnet", "--subset", "100", "--epochs", "1",
        ])
        .args(["--out", out_dir.to_str().unwrap()])
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    let msg = assert_clean_failure(&out);
    assert!(msg.contains("buffer limits") && out.status.code() == Some(101), "{msg}");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn summary_prints_torchvision_totals() {
    for (model, params, macs) in [
        ("resnet18", "11689512", "1814073344"),
        ("vgg16", "138357544", "15470264320"),
        ("resnet50", "25557032", "4089184256"),
    ] {
        let out = cnn(&["summary", "--model", model, "--input", "3x224x224"]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{model}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains(&format!("total params: {params}\n")), "{model}: {text}");
        assert!(text.contains(&format!("total mult-adds: {macs}")), "{model}: {text}");
    }
    let out = cnn(&["summary", "--model", "inception_module"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("2,408,448") && text.contains("10,035,200"), "{text}");
}

#[test]
fn summary_rejects_inputs_that_vanish() {
    let msg = assert_clean_failure(&cnn(&["summary", "--model", "alexnet", "--input", "3x32x32"]));
    assert!(msg.contains("does not fit layer features."), "{msg}");
    assert!(msg.contains("the smallest size from 32 px up that fits is 63 px"), "{msg}");
    // LeNet-5's fc1 takes 16·5·5 features: 36 px gives 16·6·6.
    let msg = assert_clean_failure(&cnn(&["summary", "--model", "lenet5", "--input", "1x36x36"]));
    assert!(msg.contains("layer fc1") && msg.contains("largest size below 36 px that fits is 35 px"), "{msg}");
    let msg = assert_clean_failure(&cnn(&["summary", "--model", "resnet18", "--input", "3x224"]));
    assert!(msg.contains("expected 3"), "{msg}");
}

#[test]
fn cost_conv_prints_the_course_numbers() {
    let out = cnn(&[
        "cost",
        "conv",
        "--input",
        "28x28x192",
        "--kernel",
        "5",
        "--filters",
        "32",
        "--bottleneck",
        "16",
    ]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success());
    assert!(text.contains("120,422,400 multiplications"), "{text}");
    assert!(
        text.contains("2,408,448 + 10,035,200 = 12,443,648 multiplications"),
        "{text}"
    );
    assert!(text.contains("ratio: 9.68x"), "{text}");
}

#[test]
fn models_lists_every_registered_name_with_its_parameters() {
    let out = cnn(&["models"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    for (name, params) in [
        ("alexnet", "61,100,840"),
        ("vgg19", "143,667,240"),
        ("googlenet", "13,004,888"),
        ("resnet20", "269,722"),
        ("plain56", "853,018"),
    ] {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} missing: {text}"));
        assert!(line.contains(params), "{line}");
    }
    assert_eq!(text.lines().count(), cnn_models::registry::MODELS.len() + 1);
}

fn repo_path(rel: &str) -> String {
    format!("{}/../../{rel}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn augment_preview_writes_a_grid_png_of_a_real_photo() {
    let out_dir = cnn_testkit::scratch("cli", "preview");
    let out = out_dir.join("preview.png");
    let run = cnn(&[
        "augment",
        "preview",
        "--image",
        &repo_path("datasets/photos/chelsea.png"),
        "--augment",
        "imagenet",
        "--n",
        "8",
        "--seed",
        "3",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let grid = cnn_data_augment::Image::open(&out).unwrap();
    // 9 tiles in 3 columns; the original is scaled to 256 px high (451x300 -> 385x256).
    assert_eq!((grid.width, grid.height), (3 * (385 + 6), 3 * (256 + 6)));
    std::fs::remove_file(out).unwrap();
}

#[test]
fn augment_preview_shows_the_automatic_policies_and_random_erasing() {
    let out_dir = cnn_testkit::scratch("cli", "preview-auto");
    let erasing = out_dir.join("erase.toml");
    std::fs::write(&erasing, "[[ops]]\nop = \"random_erasing\"\np = 1.0\nvalue = 128\n").unwrap();
    let photo = repo_path("datasets/photos/chelsea.png");
    for augment in ["randaugment", "trivialaugment", erasing.to_str().unwrap()] {
        let out = out_dir.join("preview.png");
        let run = cnn(&[
            "augment",
            "preview",
            "--image",
            &photo,
            "--augment",
            augment,
            "--n",
            "3",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(
            run.status.success(),
            "{augment}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        let grid = cnn_data_augment::Image::open(&out).unwrap();
        // 4 tiles in 2 columns, each the photo scaled to 256 px high (385x256) in a 3 px frame.
        assert_eq!((grid.width, grid.height), (2 * (385 + 6), 2 * (256 + 6)), "{augment}");
        // The three augmented tiles differ from the original tile.
        let tile = |col: usize, row: usize| -> Vec<u8> {
            let (x0, y0) = (col * 391 + 3, row * 262 + 3);
            let row = |y: usize| (x0..x0 + 385).flat_map(move |x| (0..3).map(move |c| (x, y, c)));
            (y0..y0 + 256)
                .flat_map(row)
                .map(|(x, y, c)| grid.get(x, y, c))
                .collect()
        };
        for (col, row) in [(1, 0), (0, 1), (1, 1)] {
            assert_ne!(
                tile(col, row),
                tile(0, 0),
                "{augment}: tile {col},{row} is the original"
            );
        }
        std::fs::remove_file(out).unwrap();
    }
    let msg = assert_clean_failure(&cnn(&[
        "augment",
        "preview",
        "--image",
        &photo,
        "--augment",
        "randaugmnt",
        "--out",
        "/tmp/x.png",
    ]));
    assert!(msg.contains("randaugment"), "{msg}");
}

#[test]
fn augment_fit_pca_on_digits_and_on_photos() {
    let out_dir = cnn_testkit::scratch("cli", "pca");
    let out = out_dir.join("pca.json");
    for dataset in ["mnist-5k".to_string(), repo_path("datasets/photos")] {
        let run = cnn(&[
            "augment",
            "fit-pca",
            "--dataset",
            &dataset,
            "--out",
            out.to_str().unwrap(),
        ]);
        let text = String::from_utf8_lossy(&run.stdout).to_string();
        assert!(
            run.status.success(),
            "{dataset}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        assert!(text.contains("eigenvalue 1 ="), "{text}");
        let pca: cnn_data_augment::augment::PcaColor =
            serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        assert!(
            pca.eigenvalues[0] > 0.0
                && pca.eigenvalues[0] >= pca.eigenvalues[1]
                && pca.eigenvalues[1] >= pca.eigenvalues[2]
        );
        if dataset == "mnist-5k" {
            // Gray digits: R = G = B, so all variance lies along (1, 1, 1)/√3.
            assert!(
                pca.eigenvalues[1] < 1e-9 && (pca.eigenvectors[0][0] - 1.0 / 3f64.sqrt()).abs() < 1e-6,
                "{pca:?}"
            );
        } else {
            assert!(pca.eigenvalues[1] > 1e-5, "photos have colour: {pca:?}");
        }
    }
    std::fs::remove_file(out).unwrap();
}

#[test]
fn augment_errors_are_clear() {
    let bad_dir = cnn_testkit::scratch("cli", "bad");
    let bad = bad_dir.join("bad.toml");
    std::fs::write(&bad, "[[ops]]\nop = \"horizontal_flip\"\np = 2\n").unwrap();
    let msg = assert_clean_failure(&cnn(&[
        "augment",
        "preview",
        "--image",
        &repo_path("datasets/photos/rocket.jpg"),
        "--augment",
        bad.to_str().unwrap(),
        "--out",
        "/tmp/x.png",
    ]));
    assert!(msg.contains("horizontal_flip") && msg.contains("`p`"), "{msg}");
    std::fs::remove_file(bad).unwrap();
    let msg = assert_clean_failure(&cnn(&[
        "augment",
        "preview",
        "--image",
        "/nonexistent.png",
        "--augment",
        "cifar",
        "--out",
        "/tmp/x.png",
    ]));
    assert!(msg.contains("/nonexistent.png"), "{msg}");
    let tiny_dir = cnn_testkit::scratch("cli", "tiny");
    let tiny = tiny_dir.join("tiny.png");
    cnn_data_augment::Image::filled(20, 20, 3, 9).save_png(&tiny).unwrap();
    // cifar crops 32x32 after padding by 4: a 20x20 image is too small.
    let msg = assert_clean_failure(&cnn(&[
        "augment",
        "preview",
        "--image",
        tiny.to_str().unwrap(),
        "--augment",
        "cifar",
        "--out",
        "/tmp/x.png",
    ]));
    assert!(msg.contains("random_crop") && msg.contains("larger than"), "{msg}");
    std::fs::remove_file(tiny).unwrap();
}

#[test]
fn bench_compares_with_each_reference_and_the_fastest_one() {
    let dir = cnn_testkit::scratch("cli", "bench-compare");
    std::fs::create_dir_all(&dir).unwrap();
    let reference = |backend: &str, img_s: f64| {
        let path = dir.join(format!("{backend}.json"));
        let case = r#"{"model": "lenet5", "size": 32, "batch": 64, "num_classes": 10, "phase": "infer", "part": "whole"}"#;
        let doc = format!(r#"{{"backend": "{backend}", "results": [{{"case": {case}, "median_img_s": {img_s}}}]}}"#);
        std::fs::write(&path, doc).unwrap();
        path.to_str().unwrap().to_string()
    };
    let (eager, ort) = (reference("pytorch-cpu", 1000.0), reference("onnxruntime-cpu", 2000.0));
    let args = ["bench", "--model", "lenet5", "--batch", "64", "--phase", "infer", "--warmup", "0", "--reps", "1"];
    let out = cnn(&[&args[..], &["--compare", &eager, "--compare", &ort]].concat());
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("vs pytorch-cpu:") && text.contains("vs onnxruntime-cpu:"), "{text}");
    assert!(text.contains("vs the fastest reference per case:"), "{text}");
    assert!(text.contains("img/s vs 2000.0 img/s (onnxruntime-cpu) = "), "{text}");
    let bad = cnn(&[&args[..], &["--compare", &eager, "--compare", "/nonexistent.json"]].concat());
    assert!(assert_clean_failure(&bad).contains("/nonexistent.json"));
}

#[test]
fn bench_loader_times_the_pipeline_four_ways() {
    let out = cnn(&["bench-loader", "--augment", "mnist", "--workers", "1", "--limit", "256"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for line in [
        "loading only, 1 thread",
        "loading only, 1 workers",
        "compute only",
        "training, 0 workers",
        "training, 1 workers",
    ] {
        assert!(text.contains(line), "{line} missing: {text}");
    }
    assert!(text.contains("on 256 images of mnist-5k"), "{text}");
}

#[test]
fn train_takes_an_image_folder_and_warns_about_bad_files() {
    let root = cnn_testkit::scratch("cli", "train-folder");
    let _ = std::fs::remove_dir_all(&root);
    for (class, rgb) in [("blue", [20u8, 40, 220]), ("red", [230, 30, 20])] {
        std::fs::create_dir_all(root.join(class)).unwrap();
        for i in 0..10u8 {
            let mut img = cnn_data_augment::Image::filled(40, 30, 3, 0);
            for (k, v) in img.data.iter_mut().enumerate() {
                *v = rgb[k % 3].saturating_add(i * 2);
            }
            img.save_png(&root.join(format!("{class}/{i}.png"))).unwrap();
        }
    }
    std::fs::write(root.join("red/broken.png"), b"not a png").unwrap();
    let out_dir = root.join("run");
    let out = cnn(&[
        "train",
        "--dataset",
        root.to_str().unwrap(),
        "--epochs",
        "3",
        "--batch-size",
        "4",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("warning: skipped 1 unreadable image file(s)") && stderr.contains("broken.png"),
        "{stderr}"
    );
    let last = stdout.trim_end().lines().last().unwrap();
    assert!(
        last.starts_with("test accuracy ") && last.ends_with(" on 4 images"),
        "{last}"
    );
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn bench_loader_takes_an_image_folder_and_a_prefetch_bound() {
    let root = cnn_testkit::scratch("cli", "bench-folder");
    let _ = std::fs::remove_dir_all(&root);
    for class in ["cat", "coffee"] {
        std::fs::create_dir_all(root.join(class)).unwrap();
        let photo = repo_path(&format!(
            "datasets/photos/{}.png",
            if class == "cat" { "chelsea" } else { "coffee" }
        ));
        for i in 0..5 {
            std::fs::copy(&photo, root.join(format!("{class}/{i}.png"))).unwrap();
        }
    }
    let out = cnn(&[
        "bench-loader",
        "--model",
        "resnet20",
        "--dataset",
        root.to_str().unwrap(),
        "--augment",
        "imagenet",
        "--workers",
        "1",
        "--prefetch",
        "1",
        "--batch-size",
        "4",
    ]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("on 8 images of") && text.contains("prefetch 1"), "{text}");
    assert!(text.contains("training, 1 workers"), "{text}");
    let msg = assert_clean_failure(&cnn(&["train", "--prefetch", "0"]));
    assert!(msg.contains("--prefetch"), "{msg}");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn download_imports_debians_fashion_mnist_and_rejects_unknown_names() {
    let data = cnn_testkit::scratch("cli", "download-cli");
    let _ = std::fs::remove_dir_all(&data);
    let out = cnn(&[
        "download",
        "fashion-mnist",
        "--from",
        "/usr/share/datasets/fashion-mnist",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    let stdout = assert_success(&out);
    assert_eq!(stdout.matches("sha256 of the contents").count(), 4, "{stdout}");
    assert!(
        stdout.contains("fashion-mnist is ready: cnn train --dataset fashion-mnist --data-dir"),
        "{stdout}"
    );
    for name in ["train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"] {
        assert!(data.join("fashion-mnist").join(name).is_file(), "{name}");
    }
    let msg = assert_clean_failure(&cnn(&["download", "imagenet"]));
    assert!(msg.contains("unknown dataset 'imagenet'"), "{msg}");
    let msg = assert_clean_failure(&cnn(&["download", "mnist", "--from", data.to_str().unwrap()]));
    assert!(msg.contains("train-images-idx3-ubyte.gz is missing"), "{msg}");
    std::fs::remove_dir_all(&data).unwrap();
}

/// Every float of a run's final model, for exact comparisons.
fn run_weights(dir: &std::path::Path) -> Vec<Vec<f32>> {
    let run = cnn_trainer::RunFolder::open(dir).unwrap();
    cnn_trainer::run::checkpoint::parameter_values(&run.load_model(&burn::tensor::Device::flex()).unwrap())
}

#[cfg(feature = "flex")]
#[test]
fn a_killed_run_resumes_to_the_same_weights_then_evaluates_and_predicts() {
    let root = cnn_testkit::scratch("cli", "cli-resume");
    let _ = std::fs::remove_dir_all(&root);
    let (straight, killed) = (root.join("straight"), root.join("killed"));
    let common = [
        "--device",
        "flex",
        "train",
        "--epochs",
        "3",
        "--optimizer",
        "sgd",
        "--lr",
        "0.05",
    ];
    let mut args: Vec<&str> = common.to_vec();
    args.extend([
        "--schedule",
        "cosine",
        "--warmup",
        "1",
        "--weight-decay",
        "0.0005",
        "--out",
    ]);

    let mut child = Command::new(env!("CARGO_BIN_EXE_cnn"))
        .args(&args)
        .arg(&killed)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it (SIGKILL) as soon as the first checkpoint exists: in the middle of epoch 2.
    let started = std::time::Instant::now();
    while !killed.join("checkpoint.json").exists() {
        assert!(started.elapsed().as_secs() < 300, "no checkpoint after 5 minutes");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let info = cnn_trainer::run::checkpoint::info(&killed).unwrap();
    assert_eq!(info.epoch, 1, "killed too late to test a resume");
    assert!(!killed.join("model.bpk").exists());

    let msg = assert_clean_failure(&cnn(&["train", "--resume", killed.to_str().unwrap(), "--lr", "0.1"]));
    assert!(msg.contains("changes --lr 0.1 (the run's: 0.05)"), "{msg}");
    let out = cnn(&["--device", "flex", "train", "--resume", killed.to_str().unwrap()]);
    let stdout = assert_success(&out);
    assert!(
        stdout.starts_with("resuming lenet5") && stdout.contains("epoch   2/3") && !stdout.contains("epoch   1/3"),
        "{stdout}"
    );

    let mut args: Vec<&str> = common.to_vec();
    args.extend([
        "--schedule",
        "cosine",
        "--warmup",
        "1",
        "--weight-decay",
        "0.0005",
        "--out",
        straight.to_str().unwrap(),
    ]);
    assert!(cnn(&args).status.success());
    assert_eq!(run_weights(&straight), run_weights(&killed), "resumed weights differ");

    // cnn eval: overall, per-class, the printed matrix and confusion.png.
    let out = cnn(&["eval", "--run", killed.to_str().unwrap()]);
    let stdout = assert_success(&out);
    assert!(
        stdout.contains("on the 1000 test images of mnist-5k: accuracy 0.") && stdout.contains("top-5"),
        "{stdout}"
    );
    assert!(
        stdout.contains("per class:") && stdout.contains("confusion matrix"),
        "{stdout}"
    );
    let row_sums: Vec<usize> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("confusion matrix"))
        .skip(1)
        .take(10)
        .map(|l| l.split_whitespace().skip(1).map(|c| c.parse::<usize>().unwrap()).sum())
        .collect();
    assert_eq!(row_sums, vec![100; 10], "{stdout}");
    let png = image::open(killed.join("confusion.png")).unwrap();
    assert!(png.width() > 500 && png.height() > 500);

    // cnn predict on a real digit written as PNG, with and without ten-crop averaging.
    let (test, _) = (cnn_data_augment::embedded::mnist_5k().unwrap().1, ());
    let (img, label) = cnn_data_augment::Source::get(&test, 0).unwrap();
    let digit = root.join("digit.png");
    img.save_png(&digit).unwrap();
    for tta in [false, true] {
        let mut args = vec![
            "predict",
            "--run",
            killed.to_str().unwrap(),
            "--top-k",
            "3",
            digit.to_str().unwrap(),
        ];
        if tta {
            args.push("--tta");
        }
        let out = cnn(&args);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), 4, "{stdout}");
        assert_eq!(lines[0].contains("10-crop"), tta);
        let probs: Vec<f64> = lines[1..]
            .iter()
            .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
            .collect();
        assert!(
            probs.windows(2).all(|w| w[0] >= w[1]) && probs.iter().sum::<f64>() <= 1.0 + 1e-3,
            "{stdout}"
        );
        if !tta {
            assert_eq!(
                lines[1].split_whitespace().nth(1).unwrap(),
                label.to_string(),
                "{stdout}"
            );
        }
    }
    let msg = assert_clean_failure(&cnn(&["eval", "--run", root.to_str().unwrap()]));
    assert!(msg.contains("config.json"), "{msg}");
    std::fs::remove_dir_all(&root).unwrap();
}

/// `cnn experiment ensemble` trains and reuses its members; `cnn eval` with several runs and
/// `--tta` prints each member, the ensemble and ten crops; `cnn predict` averages runs; members
/// that disagree on the classes are refused; `cnn weights export` writes a file that
/// `cnn weights verify` reads back with the run's own logits.
#[cfg(feature = "flex")]
#[test]
fn ensembles_ten_crops_and_export_from_the_command_line() {
    let root = cnn_testkit::scratch("cli", "cli-ensemble");
    let _ = std::fs::remove_dir_all(&root);
    let out = root.join("ensemble");
    let args = [
        "--device", "flex", "experiment", "ensemble", "--preset", "lenet5-mnist5k", "--members", "2",
        "--epochs", "1", "--subset", "200", "--out", out.to_str().unwrap(),
    ];
    let stdout = assert_success(&cnn(&args));
    assert!(stdout.contains("| member-1 |") && stdout.contains("| ensemble of 2 |"), "{stdout}");
    assert!(std::fs::read_to_string(out.join("ensemble.md")).unwrap().contains("10-crop top-1"));
    // Repeated: the finished members are reused, not retrained.
    let again = cnn(&args);
    assert_success(&again);
    assert!(String::from_utf8_lossy(&again.stderr).contains("is finished: reusing it"));

    let (a, b) = (out.join("member-1"), out.join("member-2"));
    let plot = root.join("ensemble.png");
    let stdout = assert_success(&cnn(&[
        "eval", "--run", a.to_str().unwrap(), "--run", b.to_str().unwrap(), "--tta", "--plot", plot.to_str().unwrap(),
    ]));
    assert!(stdout.starts_with("ensemble of 2 (lenet5, lenet5) on the 1000 test images of mnist-5k"), "{stdout}");
    assert!(stdout.contains("10-crop top-1"), "{stdout}");
    let row = stdout.lines().map(str::trim_start).find(|l| l.starts_with("ensemble of 2 ") && !l.contains("test images"));
    assert_eq!(row.map(|r| r.split_whitespace().count()), Some(7), "{stdout}");
    assert!(image::open(&plot).is_ok());
    // One run with --tta: single crop and ten crops side by side.
    let stdout = assert_success(&cnn(&["eval", "--run", a.to_str().unwrap(), "--tta"]));
    let row = stdout.lines().find(|l| l.trim_start().starts_with(a.to_str().unwrap())).unwrap_or_default();
    assert_eq!(row.split_whitespace().count(), 5, "{stdout}");

    let (test, _) = (cnn_data_augment::embedded::mnist_5k().unwrap().1, ());
    let (img, _) = cnn_data_augment::Source::get(&test, 0).unwrap();
    let digit = root.join("digit.png");
    img.save_png(&digit).unwrap();
    let stdout = assert_success(&cnn(&[
        "predict", "--run", a.to_str().unwrap(), "--run", b.to_str().unwrap(), digit.to_str().unwrap(),
    ]));
    assert!(stdout.lines().next().unwrap().ends_with("(average of 2 runs)"), "{stdout}");
    // The same top class with bf16 convolutions.
    let bf16 = assert_success(&cnn(&[
        "predict", "--run", a.to_str().unwrap(), "--run", b.to_str().unwrap(), digit.to_str().unwrap(), "--precision",
        "bf16",
    ]));
    let top_class = |text: &str| text.lines().nth(1).and_then(|l| l.split_whitespace().last()).map(str::to_string);
    assert!(top_class(&stdout).is_some(), "{stdout}");
    assert_eq!(top_class(&bf16), top_class(&stdout), "{stdout}\n{bf16}");

    let other = root.join("other");
    std::fs::create_dir_all(&other).unwrap();
    for entry in std::fs::read_dir(&b).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), other.join(entry.file_name())).unwrap();
        }
    }
    let letters: Vec<String> = "abcdefghij".chars().map(String::from).collect();
    std::fs::write(other.join("classes.json"), serde_json::to_string(&letters).unwrap()).unwrap();
    let msg = assert_clean_failure(&cnn(&["eval", "--run", a.to_str().unwrap(), "--run", other.to_str().unwrap()]));
    assert!(msg.contains("must agree on the classes"), "{msg}");

    for ext in ["pth", "safetensors"] {
        let file = root.join(format!("lenet5.{ext}"));
        let io = root.join("lenet5.io.safetensors");
        let stdout = assert_success(&cnn(&[
            "weights", "export", "--run", a.to_str().unwrap(), "--out", file.to_str().unwrap(), "--io", io.to_str().unwrap(),
        ]));
        assert!(stdout.contains("10 tensors of lenet5 under torchvision's keys"), "{stdout}");
        let stdout = assert_success(&cnn(&[
            "--device", "flex", "weights", "verify", "--model", "lenet5", "--weights", file.to_str().unwrap(), "--io", io.to_str().unwrap(),
        ]));
        assert!(stdout.contains("max abs diff 0e0"), "{ext}: {stdout}");
    }
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_run_with_a_moving_average_prints_it_and_evaluates_the_weights_its_test_chose() {
    let out = cnn_testkit::scratch("cli", "ema");
    let run = out.join("run");
    let stdout = assert_success(&cnn(&[
        "--device", "flex", "train", "--model", "lenet5", "--subset", "300", "--epochs", "2", "--ema", "0.9",
        "--label-smoothing", "0.1", "--mixup", "0.2", "--out", run.to_str().unwrap(),
    ]));
    assert!(stdout.contains("average of the weights (--ema): valid loss"), "{stdout}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    let chosen = summary["final_weights"].as_str().unwrap().to_string();
    assert!(chosen == "model.bpk" || chosen == "model-ema.bpk", "{chosen}");
    // `cnn eval` tests the same weights as the run's own test: the same accuracy.
    let eval = assert_success(&cnn(&["--device", "flex", "eval", "--run", run.to_str().unwrap()]));
    let accuracy = format!("{:.4}", summary["test_accuracy"].as_f64().unwrap());
    assert!(eval.contains(&accuracy), "{chosen}, {accuracy}: {eval}");
    // In bf16 (or f32 with a notice where the CPU lacks it) the same accuracy within a point.
    let bf16 = assert_success(&cnn(&["eval", "--run", run.to_str().unwrap(), "--precision", "bf16"]));
    let printed = |text: &str| -> f64 { text.split("accuracy ").nth(1).unwrap()[..6].parse().unwrap() };
    assert!((printed(&bf16) - printed(&eval)).abs() <= 0.01, "{eval}\n{bf16}");
}

/// `cnn train --precision bf16`: the run says so, records it in config.json, and notes where
/// the CPU multiplies bf16 in software; an unknown precision is a one-line error.
#[test]
fn a_run_in_bf16_says_so_and_records_it() {
    let out = cnn_testkit::scratch("cli", "bf16-train");
    let run = out.join("run");
    let result = cnn(&[
        "--device", "flex", "train", "--model", "resnet20", "--subset", "64", "--epochs", "1", "--batch-size", "16",
        "--precision", "bf16", "--out", run.to_str().unwrap(),
    ]);
    let stdout = assert_success(&result);
    assert!(stdout.contains("precision: bf16 products with f32 sums"), "{stdout}");
    let stderr = String::from_utf8_lossy(&result.stderr);
    let fast = cnn_models::precision::Precision::Bf16.fast_here();
    assert_eq!(stderr.contains("the bf16 products run in software"), !fast, "{stderr}");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["precision"], "bf16");
    // `cnn eval --run` takes the run's precision by default, so it repeats the run's own test
    // (where the CPU runs bf16 at speed; elsewhere it says that it runs f32).
    let eval = cnn(&["--device", "flex", "eval", "--run", run.to_str().unwrap()]);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    let accuracy = format!("accuracy {:.4}", summary["test_accuracy"].as_f64().unwrap());
    if fast {
        assert!(assert_success(&eval).contains(&accuracy), "{accuracy}");
    } else {
        assert!(String::from_utf8_lossy(&eval.stderr).contains("no AVX512-BF16; running f32"));
    }
    let msg = assert_clean_failure(&cnn(&["train", "--precision", "fp16"]));
    assert!(msg.contains("f32 or bf16"), "{msg}");
}

#[test]
fn lr_find_writes_the_sweep_and_suggests_a_rate() {
    let out = cnn_testkit::scratch("cli", "lr-find");
    let stdout = assert_success(&cnn(&[
        "--device", "flex", "lr-find", "--model", "lenet5", "--subset", "500", "--optimizer", "sgd", "--steps", "40",
        "--start", "1e-4", "--end", "1", "--out", out.to_str().unwrap(),
    ]));
    assert!(stdout.contains("suggested peak rate: ") || stdout.contains("no suggestion"), "{stdout}");
    assert!(out.join("lr-find.csv").is_file() && out.join("lr-find.png").is_file(), "{stdout}");
    let msg = assert_clean_failure(&cnn(&["lr-find", "--steps", "3"]));
    assert!(msg.contains("--steps must be at least 10"), "{msg}");
}

#[test]
fn bad_training_settings_are_clear_errors() {
    for (args, needle) in [
        (vec!["train", "--schedule", "linear"], "constant, step, cosine or onecycle"),
        (vec!["train", "--optimizer", "rmsprop"], "sgd, adam or adamw"),
        (vec!["train", "--epochs", "2", "--warmup", "2"], "--warmup"),
        (vec!["train", "--valid-split", "1.5"], "--valid-split"),
        (vec!["train", "--weight-decay=-1"], "--weight-decay"),
        (vec!["train", "--early-stop", "0"], "--early-stop"),
        (vec!["train", "--label-smoothing=-0.1"], "--label-smoothing must be in [0, 1), got -0.1"),
        (vec!["train", "--mixup", "0"], "--mixup α must be in (0, 100], got 0"),
        (vec!["train", "--cutmix=-1"], "--cutmix α must be in (0, 100], got -1"),
        (vec!["train", "--accumulate", "0"], "--accumulate must be at least 1 batch"),
        (vec!["train", "--ema", "1.5"], "--ema decay must be in (0, 1), got 1.5"),
        (vec!["train", "--mix-switch", "2"], "--mix-switch must be in [0, 1], got 2"),
        (vec!["train", "--nesterov"], "--nesterov needs --optimizer sgd with a --momentum above 0"),
        (vec!["train", "--decay-weights-only"], "--decay-weights-only says where --weight-decay applies, but it is 0"),
        (vec!["train", "--resume", "/nonexistent/run"], "config.json"),
    ] {
        let msg = assert_clean_failure(&cnn(&args));
        assert!(msg.contains(needle), "{args:?}: {msg}");
    }
}

#[test]
fn degradation_experiment_runs_end_to_end_and_reuses_finished_runs() {
    let out = cnn_testkit::scratch("cli", "degradation");
    let _ = std::fs::remove_dir_all(&out);
    let args = [
        "experiment",
        "degradation",
        "--dataset",
        "mnist-5k",
        "--subset",
        "80",
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--nets",
        "plain20,resnet20",
        "--out",
        out.to_str().unwrap(),
    ];
    let run = cnn(&args);
    let stdout = assert_success(&run);
    assert!(
        stdout.contains("plain20   epoch  2/2") && stdout.contains("resnet20  epoch  2/2"),
        "{stdout}"
    );
    let csv = std::fs::read_to_string(out.join("degradation.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 2 * 2, "{csv}");
    assert!(csv.lines().nth(1).unwrap().starts_with("plain20,1,"), "{csv}");
    let png = image::open(out.join("degradation.png")).unwrap();
    assert_eq!((png.width(), png.height()), (900, 560));
    // The subset and split are as asked: 80 images, 72 for training.
    let metrics = std::fs::read_to_string(out.join("resnet20/config.json")).unwrap();
    assert!(metrics.contains("\"subset\": 80"), "{metrics}");

    let again = cnn(&args);
    let stderr = String::from_utf8_lossy(&again.stderr).to_string();
    assert!(again.status.success(), "{stderr}");
    assert_eq!(stderr.matches("is finished: reusing it").count(), 2, "{stderr}");
    assert_eq!(std::fs::read_to_string(out.join("degradation.csv")).unwrap(), csv);
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn presets_fill_in_the_recipe_and_flags_override_it() {
    let msg = assert_clean_failure(&cnn(&["train", "--preset", "nope"]));
    assert!(msg.contains("lenet5-fashion"), "{msg}");
    // The preset names a data set that is not in this data dir: the error shows the preset took effect.
    let empty = cnn_testkit::scratch("cli", "empty-data");
    let msg = assert_clean_failure(&cnn(&[
        "train",
        "--preset",
        "resnet20-fashion",
        "--data-dir",
        empty.to_str().unwrap(),
    ]));
    assert!(
        msg.contains("training resnet20 on fashion-mnist") && msg.contains("fashion-mnist"),
        "{msg}"
    );
}

/// `name` in the torchvision fixtures folder, as a flag value.
fn fixture(dir: &std::path::Path, name: &str) -> String {
    dir.join(name).to_str().unwrap().to_string()
}

#[test]
fn weights_verify_prints_the_parity_and_import_writes_burnpack() {
    let Some(fx) = cnn_testkit::torchvision_fixtures() else {
        return;
    };
    for (model, file) in [("resnet18", "resnet18"), ("googlenet", "googlenet")] {
        let out = cnn(&[
            "weights",
            "verify",
            "--model",
            model,
            "--weights",
            &fixture(&fx, &format!("{file}.pth")),
            "--io",
            &fixture(&fx, &format!("{file}.io.safetensors")),
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let diff: f32 = stdout
            .lines()
            .find_map(|l| l.strip_prefix("max abs diff "))
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("{stdout}"))
            .parse()
            .unwrap();
        assert!(diff <= 1e-4, "{model}: {stdout}");
        assert!(stdout.contains("0 missing, 0 unused"), "{stdout}");
    }
    let bpk_dir = cnn_testkit::scratch("cli", "import");
    let bpk = bpk_dir.join("import.bpk");
    let out = cnn(&[
        "weights",
        "import",
        "--model",
        "resnet18",
        "--from",
        &fixture(&fx, "resnet18.pth"),
        "--out",
        bpk.to_str().unwrap(),
        "--num-classes",
        "7",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("100 tensors applied, 2 missing") && stdout.contains("missing: fc.bias, fc.weight"),
        "{stdout}"
    );
    assert!(std::fs::metadata(&bpk).unwrap().len() > 40_000_000);
    std::fs::remove_file(&bpk).unwrap();
    let msg = assert_clean_failure(&cnn(&[
        "weights",
        "verify",
        "--model",
        "vgg11",
        "--weights",
        &fixture(&fx, "resnet18.pth"),
        "--io",
        &fixture(&fx, "resnet18.io.safetensors"),
    ]));
    assert!(
        msg.contains("has no tensor 'classifier.0.bias'") && msg.contains("right model"),
        "{msg}"
    );
}

#[test]
fn bench_head_compares_the_backbone_epoch_with_the_cached_one() {
    let out = cnn(&[
        "bench-head",
        "--model",
        "lenet5",
        "--subset",
        "200",
        "--batch-size",
        "20",
    ]);
    let stdout = assert_success(&out);
    assert!(
        stdout.contains("through the frozen backbone") && stdout.contains("from cached features"),
        "{stdout}"
    );
    let speedup: f64 = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("speed-up of the epoch: "))
        .and_then(|v| v.trim_end_matches('x').parse().ok())
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(speedup > 1.0, "{stdout}");
    let msg = assert_clean_failure(&cnn(&["train", "--cache-features"]));
    assert!(msg.contains("--freeze all"), "{msg}");
}

#[test]
fn transfer_experiment_runs_every_method_over_seeds_and_writes_its_table() {
    let root = tempfile::tempdir().unwrap();
    // A "pretrained" backbone: two epochs of LeNet-5 on 300 digits.
    let pre = root.path().join("pre");
    let out = cnn(&[
        "train",
        "--model",
        "lenet5_relu",
        "--epochs",
        "2",
        "--subset",
        "300",
        "--out",
        pre.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let exp = root.path().join("exp");
    let weights = pre.join("model.bpk");
    let args = [
        "experiment",
        "transfer",
        "--pretrained",
        weights.to_str().unwrap(),
        "--per-class",
        "5",
        "--seeds",
        "2",
        "--epochs",
        "2",
        "--out",
        exp.to_str().unwrap(),
    ];
    let out = cnn(&args);
    let stdout = assert_success(&out);
    assert!(
        stdout.contains("8 tensors applied, 2 missing"),
        "the head must be new: {stdout}"
    );
    // 5 labelled digits per class: 4 train, 1 validates.
    assert!(stdout.contains("train features (40 x 84): computed into"), "{stdout}");
    assert!(stdout.contains("freeze: 3 of 4 stages frozen (up to fc1)"), "{stdout}");
    assert!(
        stdout.contains("learning rates (peak): head 1.0e-3, fc2 3.0e-4, fc1 3.0e-4, conv2 3.0e-4, conv1 3.0e-4"),
        "{stdout}"
    );
    assert!(
        stdout.contains("learning rates (peak): head 1.0e-3, fc2 3.0e-4, fc1 1.5e-4, conv2 7.5e-5, conv1 "),
        "{stdout}"
    );
    let table = std::fs::read_to_string(exp.join("transfer.md")).unwrap();
    assert!(
        table.contains("| from scratch | frozen backbone + new softmax (cached) | fine-tune the last stage |")
            && table.contains("\n| 5 | ")
            && table.contains(" ± "),
        "{table}"
    );
    let csv = std::fs::read_to_string(exp.join("transfer.csv")).unwrap();
    assert_eq!(csv.lines().next(), Some("per_class,method,seed,test_accuracy,train_seconds"));
    assert_eq!(csv.lines().count(), 1 + 5 * 2, "{csv}");
    assert!(csv.contains("\n5,discriminative,43,"), "{csv}");
    assert!(exp.join("transfer.png").is_file());
    // The labelled images of each cell, for the PyTorch twin: 4 to train, 1 to validate per class.
    let subsets = std::fs::read_to_string(exp.join("subsets.json")).unwrap();
    assert!(subsets.contains(r#"{"per_class":5,"seed":43,"train":["#), "{subsets}");
    assert_eq!(subsets.matches(r#""valid":["#).count(), 2, "{subsets}");
    // A second call reuses every finished run.
    let again = cnn(&args);
    assert_success(&again);
    let warnings = String::from_utf8_lossy(&again.stderr);
    assert_eq!(warnings.matches("is finished: reusing it").count(), 10, "{warnings}");
    // One with other settings is trained again.
    let mut other = args.to_vec();
    other.extend(["--methods", "scratch", "--scratch-lr", "0.002"]);
    let again = cnn(&other);
    assert_success(&again);
    let warnings = String::from_utf8_lossy(&again.stderr);
    let retrained = "was trained with other settings (--lr 0.002 (the run's: 0.003)): training it again";
    assert_eq!(warnings.matches(retrained).count(), 2, "{warnings}");
    // `--freeze auto` with few labels: nothing frozen, the backbone at 0.3 × the head's rate.
    let auto = root.path().join("auto");
    let stdout = assert_success(&cnn(&[
        "train", "--model", "lenet5_relu", "--weights", weights.to_str().unwrap(), "--new-head", "--freeze", "auto",
        "--subset", "100", "--epochs", "1", "--out", auto.to_str().unwrap(),
    ]));
    assert!(stdout.contains("freeze: --freeze auto: 9 labelled images per class (≤ 1000): nothing frozen, the top stage at 0.3 × the head's rate"), "{stdout}");
    assert!(stdout.contains("learning rates (peak): head 1.0e-3, fc2 3.0e-4, fc1 1.5e-4, conv2 7.5e-5"), "{stdout}");
    let msg = assert_clean_failure(&cnn(&[
        "experiment",
        "transfer",
        "--pretrained",
        weights.to_str().unwrap(),
        "--methods",
        "scratch,bogus",
    ]));
    assert!(msg.contains("unknown transfer method 'bogus'"), "{msg}");
}

#[test]
fn weights_download_checks_the_sha256_prefix_of_a_local_copy() {
    let dir = cnn_testkit::scratch("cli", "weights-dl");
    let _ = std::fs::remove_dir_all(&dir);
    // Any file other than torchvision's published one (here a small LeNet-5) is refused (after
    // a progress line naming the source).
    let out = cnn(&[
        "weights",
        "download",
        "resnet18",
        "--from",
        concat!(env!("CARGO_MANIFEST_DIR"), "/../transfer/tests/data/lenet5_legacy.pth"),
        "--dir",
        dir.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success() && !stderr.contains("panicked"), "{stderr}");
    let msg = stderr.trim_end().lines().last().unwrap().to_string();
    assert!(msg.starts_with("error: "), "{stderr}");
    assert!(
        msg.contains("checksum mismatch") && msg.contains("sha256 starting f37072fd"),
        "{msg}"
    );
    assert!(!dir.join("weights/resnet18-f37072fd.pth").exists());
    let msg = assert_clean_failure(&cnn(&["weights", "download", "lenet5"]));
    assert!(msg.contains("publishes no weights for lenet5"), "{msg}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `-v` shows the libraries' `tracing` events (the run, each epoch, the end) on stderr; without
/// it there are none (what a command reports it prints itself).
#[test]
fn verbose_shows_the_libraries_log() {
    let root = cnn_testkit::scratch("cli", "verbose");
    let _ = std::fs::remove_dir_all(&root);
    let train = |flags: &[&str], dir: &str| {
        let out = root.join(dir);
        let mut args = flags.to_vec();
        args.extend(["--device", "flex", "train", "--epochs", "1", "--subset", "200", "--out"]);
        args.push(out.to_str().unwrap());
        let output = cnn(&args);
        assert_success(&output);
        String::from_utf8_lossy(&output.stderr).to_string()
    };
    let verbose = train(&["-v"], "verbose");
    for event in ["training run", "epoch finished", "valid_accuracy=", "run finished"] {
        assert!(verbose.contains(event), "no '{event}' in: {verbose}");
    }
    let plain = train(&[], "plain");
    assert!(!plain.contains("epoch finished"), "{plain}");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn explain_draws_heat_maps_and_eval_draws_the_worst_images() {
    let root = tempfile::tempdir().unwrap();
    let run = root.path().join("run");
    let out = cnn(&[
        "train", "--model", "lenet5_relu", "--epochs", "2", "--subset", "400", "--out", run.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // A 28×28 digit-like image: a bright vertical bar on black.
    let digit = root.path().join("one.png");
    let bar = image::GrayImage::from_fn(28, 28, |x, _| image::Luma([if (12..16).contains(&x) { 255 } else { 0 }]));
    bar.save(&digit).unwrap();
    let maps = root.path().join("maps");
    let args = ["explain", "--run", run.to_str().unwrap(), digit.to_str().unwrap(), "--out", maps.to_str().unwrap()];
    let stdout = assert_success(&cnn(&args));
    assert!(stdout.contains("one.png: ") && stdout.contains("(p = "), "{stdout}");
    let written: Vec<_> = std::fs::read_dir(&maps).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(written.len(), 1, "{written:?}");
    let name = written[0].to_string_lossy().to_string();
    assert!(name.starts_with("one-") && name.ends_with(".png") && name.contains("-p0."), "{name}");
    let png = image::open(maps.join(&name)).unwrap();
    assert!(png.width() >= 224 && png.height() >= 224);
    let stdout = assert_success(&cnn(&[
        "explain", "--run", run.to_str().unwrap(), digit.to_str().unwrap(), "--class", "7", "--out", maps.to_str().unwrap(),
    ]));
    assert!(stdout.contains(": 7 (p = "), "{stdout}");
    // Several images: also one picture of them all.
    let stdout = assert_success(&cnn(&[
        "explain", "--run", run.to_str().unwrap(), digit.to_str().unwrap(), digit.to_str().unwrap(), "--out", maps.to_str().unwrap(),
    ]));
    assert!(stdout.contains("all 2 -> "), "{stdout}");
    assert!(image::open(maps.join("explain.png")).unwrap().width() >= 2 * 224);
    // Bad input: one line each.
    let missing = root.path().join("nowhere");
    let msg = assert_clean_failure(&cnn(&["explain", "--run", missing.to_str().unwrap(), digit.to_str().unwrap()]));
    assert!(msg.contains("config.json"), "{msg}");
    let text = root.path().join("notes.png");
    std::fs::write(&text, "not an image").unwrap();
    let msg = assert_clean_failure(&cnn(&["explain", "--run", run.to_str().unwrap(), text.to_str().unwrap()]));
    assert!(msg.contains("notes.png"), "{msg}");
    let msg = assert_clean_failure(&cnn(&[
        "explain", "--run", run.to_str().unwrap(), digit.to_str().unwrap(), "--class", "10",
    ]));
    assert!(msg.contains("--class 10 is out of range: the model has 10 classes (0 to 9)"), "{msg}");

    let stdout = assert_success(&cnn(&["eval", "--run", run.to_str().unwrap(), "--worst", "12"]));
    assert!(stdout.contains("most confused (true → predicted: images):"), "{stdout}");
    assert!(stdout.contains("worst.png (12 images, losses "), "{stdout}");
    let grid = image::open(run.join("worst.png")).unwrap();
    // Six columns of 240 px, two rows.
    assert_eq!(grid.width(), 6 * 240 + 10);
    let msg = assert_clean_failure(&cnn(&["eval", "--run", run.to_str().unwrap(), "--worst", "0"]));
    assert!(msg.contains("--worst needs at least 1"), "{msg}");
}

/// `--precision bf16`: inference and training run and say so (bf16 where the CPU has
/// AVX512-BF16, else f32 with a notice), the JSON names the backend `flex-bf16` when it ran
/// bf16; an unknown precision is a one-line error.
#[test]
fn bench_in_bf16_measures_inference_and_training() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bf16.json");
    let args = ["bench", "--model", "resnet20", "--batch", "8", "--warmup", "0", "--reps", "1"];
    let out = cnn(&[&args[..], &["--phase", "infer", "--precision", "bf16", "--json", json.to_str().unwrap()]].concat());
    let (text, err) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{err}");
    let report = std::fs::read_to_string(&json).unwrap();
    if cnn_models::precision::Precision::Bf16.fast_here() {
        assert!(text.contains("(flex, bf16,") && report.contains("\"flex-bf16\""), "{text}");
    } else {
        assert!(err.contains("no AVX512-BF16; running f32") && text.contains("(flex, f32,"), "{err}");
    }
    let train = assert_success(&cnn(&[&args[..], &["--phase", "train", "--precision", "bf16"]].concat()));
    let ran = if cnn_models::precision::Precision::Bf16.fast_here() { "bf16" } else { "f32" };
    assert!(train.contains(&format!("(flex, {ran},")) && train.contains("train"), "{train}");
    let bad = cnn(&[&args[..], &["--phase", "infer", "--precision", "fp16"]].concat());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("f32 or bf16"));
}
