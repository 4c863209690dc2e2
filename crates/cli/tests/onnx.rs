//! `cnn weights export --format onnx`: a trained run's file runs in a pure-Rust ONNX engine
//! (tract) with the run's logits, carries the run's preprocessing, and bad flags are one-line
//! errors.

mod common;

use common::{assert_clean_failure, assert_success, cnn};
use tract_onnx::prelude::*;

/// `(input, shape, logits)` of an `--io` file.
fn reference(path: &std::path::Path) -> (Vec<f32>, Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let floats = |name: &str| {
        let t = file.tensor(name).unwrap();
        let values = t
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect::<Vec<_>>();
        (values, t.shape().to_vec())
    };
    let ((input, shape), (logits, _)) = (floats("input"), floats("logits"));
    (input, shape, logits)
}

#[test]
fn a_runs_onnx_export_runs_in_tract_with_the_runs_logits_and_preprocessing() {
    let root = cnn_testkit::scratch("cli", "onnx");
    let run = root.join("run");
    assert_success(&cnn(&[
        "--device",
        "flex",
        "train",
        "--model",
        "lenet5",
        "--subset",
        "300",
        "--epochs",
        "1",
        "--out",
        run.to_str().unwrap(),
    ]));
    let run = run.to_str().unwrap();
    for (flags, images) in [(vec!["--dynamic-batch"], 2), (vec!["--batch", "3"], 3)] {
        let (onnx, io) = (root.join("lenet5.onnx"), root.join("lenet5.io.safetensors"));
        let mut args = vec![
            "weights",
            "export",
            "--run",
            run,
            "--out",
            onnx.to_str().unwrap(),
            "--io",
            io.to_str().unwrap(),
        ];
        args.extend(&flags);
        let stdout = assert_success(&cnn(&args));
        assert!(
            stdout.contains("ONNX opset 18") && stdout.contains("lenet5"),
            "{stdout}"
        );
        let (input, shape, logits) = reference(&io);
        assert_eq!(shape, [images, 1, 32, 32]);
        let model = tract_onnx::onnx()
            .model_for_path(&onnx)
            .unwrap()
            .with_input_fact(0, f32::fact(&shape).into())
            .unwrap()
            .into_runnable()
            .unwrap();
        let input = tract_ndarray::ArrayD::from_shape_vec(shape.clone(), input).unwrap();
        let out = model.run(tvec!(Tensor::from(input).into())).unwrap();
        let theirs: Vec<f32> = out[0].to_plain_array_view::<f32>().unwrap().iter().copied().collect();
        let scale = logits.iter().fold(0f32, |m, v| m.max(v.abs()));
        let gap = logits.iter().zip(&theirs).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            theirs.len() == logits.len() && gap <= 1e-4 * scale,
            "{flags:?}: gap {gap} of {scale}"
        );
    }
    let proto = tract_onnx::onnx()
        .proto_model_for_path(root.join("lenet5.onnx"))
        .unwrap();
    let meta = |key: &str| {
        proto
            .metadata_props
            .iter()
            .find(|p| p.key == key)
            .map(|p| p.value.clone())
            .unwrap_or_default()
    };
    assert_eq!(meta("model"), "lenet5");
    assert_eq!(meta("input_size"), "32");
    let classes: Vec<String> = serde_json::from_str(&meta("class_names")).unwrap();
    assert_eq!(classes.len(), 10);
    let mean: Vec<f32> = serde_json::from_str(&meta("mean")).unwrap();
    assert_eq!(mean.len(), 1);
    assert!(meta("preprocessing").contains("(x - mean) / std"));

    for (out, extra, needle) in [
        ("x.safetensors", &["--batch", "2"][..], "apply to ONNX exports only"),
        ("x.safetensors", &["--format", "onnx"], "does not match"),
        ("m.txt", &[], "cannot tell the format"),
        ("m.onnx", &["--batch", "0"], "at least 1"),
    ] {
        let out = root.join(out);
        let mut args = vec!["weights", "export", "--run", run, "--out", out.to_str().unwrap()];
        args.extend(extra);
        let msg = assert_clean_failure(&cnn(&args));
        assert!(msg.contains(needle), "{args:?}: {msg}");
    }
    std::fs::remove_dir_all(&root).unwrap();
}
