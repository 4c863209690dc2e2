//! ONNX export: every family of the zoo written by burn-onnx's exporter, run by tract (a
//! pure-Rust ONNX engine), gives our logits; the metadata and the errors.

use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor};
use cnn_models::{ImageClassifier, Model};
use cnn_transfer::{OPSET, OnnxBatch, TransferError, model_onnx, onnx_bytes};
use tract_onnx::prelude::*;

mod common;
use common::trained_model;

/// The ONNX file's logits for `input` (`[n, c, h, w]`), run by tract.
fn tract_logits(onnx: &[u8], input: &[f32], shape: [usize; 4]) -> TractResult<Vec<f32>> {
    let model = tract_onnx::onnx()
        .model_for_read(&mut &onnx[..])?
        .with_input_fact(0, f32::fact(shape).into())?
        .into_optimized()?
        .into_runnable()?;
    let input = tract_ndarray::ArrayD::from_shape_vec(shape.to_vec(), input.to_vec())?;
    let outputs = model.run(tvec!(tract_onnx::prelude::Tensor::from(input).into()))?;
    Ok(outputs[0].to_plain_array_view::<f32>()?.iter().copied().collect())
}

/// Exports `model` for `[channels, size, size]` inputs, runs `images` random images through
/// the file and through the model, and returns the largest difference relative to the largest
/// logit.
fn relative_gap(name: &str, model: &Model, channels: usize, size: usize, batch: OnnxBatch, images: usize) -> f32 {
    let onnx = model_onnx(model, [channels, size, size], batch, &[]).unwrap_or_else(|e| panic!("{name}: {e}"));
    let device = Device::flex();
    device.seed(11);
    let shape = [images, channels, size, size];
    let input = burn::tensor::Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
    let values = input.to_data().convert::<f32>().try_to_vec::<f32>().unwrap();
    let ours = model
        .logits(input)
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap();
    let theirs = tract_logits(&onnx, &values, shape).unwrap_or_else(|e| panic!("{name}: tract: {e:?}"));
    assert_eq!(ours.len(), theirs.len());
    let scale = ours.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    let gap = ours.iter().zip(&theirs).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    gap / scale
}

/// The six models at their default input size (what their runs use), any batch: the
/// file runs at batch 3 after being captured at 1 and 2.
#[test]
fn the_named_models_export_and_tract_gives_our_logits() {
    for (name, size) in [
        ("lenet5", 32),
        ("resnet20", 32),
        ("resnet18", 224),
        ("vgg16_bn", 224),
        ("googlenet", 224),
        ("alexnet_paper", 224),
    ] {
        let channels = cnn_models::registry::lookup(name).unwrap().default_input.channels;
        let model = trained_model(name, 10, size.min(64));
        let gap = relative_gap(name, &model, channels, size, OnnxBatch::Dynamic, 3);
        assert!(gap <= 1e-4, "{name}: relative gap {gap:e}");
    }
}

/// One model of every other family (and sub-path: no batch norm, bottlenecks, plain nets,
/// option-B shortcuts, ResNet-9's global maximum, AlexNet's LRN, VGG's adaptive pooling up
/// from 1×1, the Inception modules) at a small input and a fixed batch of 4, which also takes
/// the batched small-map convolution where a model has one.
#[test]
fn every_family_exports_and_tract_gives_our_logits() {
    for (name, size) in [
        ("lenet5_relu", 32),
        ("lenet5_sigmoid", 32),
        ("alexnet", 63),
        ("alexnet_lrn", 63),
        ("vgg11", 32),
        ("resnet50", 64),
        ("plain18", 64),
        ("plain20", 32),
        ("resnet20b", 32),
        ("resnet9_w16", 28),
        ("inception_module", 28),
        ("inception_naive", 28),
        ("conv1x1_example", 28),
    ] {
        let channels = cnn_models::registry::lookup(name).unwrap().default_input.channels;
        let model = trained_model(name, 10, size);
        let gap = relative_gap(name, &model, channels, size, OnnxBatch::Fixed(4), 4);
        assert!(gap <= 1e-4, "{name}: relative gap {gap:e}");
    }
}

#[test]
fn metadata_and_opset_are_in_the_file() {
    let model = cnn_models::lenet5(10, &Device::flex());
    let metadata = vec![
        ("mean".to_string(), "[0.2860]".to_string()),
        ("class_names".to_string(), "[\"a\",\"b\"]".to_string()),
    ];
    let onnx = model_onnx(&model, [1, 32, 32], OnnxBatch::Fixed(2), &metadata).unwrap();
    let proto = tract_onnx::onnx().proto_model_for_read(&mut &onnx[..]).unwrap();
    let props: Vec<(String, String)> = proto
        .metadata_props
        .iter()
        .map(|p| (p.key.clone(), p.value.clone()))
        .collect();
    assert_eq!(props, metadata);
    assert_eq!(proto.opset_import.iter().map(|o| o.version).max(), Some(OPSET));
    let input = &proto.graph.as_ref().unwrap().input[0];
    let dims = format!("{:?}", input.r#type);
    assert!(dims.contains("DimValue(2)"), "{dims}");
}

/// A module whose forward pass uses an operation burn-onnx cannot lower.
#[derive(Module, Debug)]
struct RowMaximum;

#[test]
fn an_operation_without_an_onnx_form_is_a_one_line_error_naming_it() {
    let error = onnx_bytes(&RowMaximum, [1, 4, 4], OnnxBatch::Fixed(1), &[], |_, x: Tensor<4>| {
        let [b, c, h, w] = x.dims();
        x.reshape([b, c * h, w]).max_dim(2).reshape([b, c * h])
    })
    .unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, TransferError::Onnx(_)), "{message}");
    assert!(
        message.contains("MaxDim") && !message.contains('\n') && message.len() < 200,
        "{message}"
    );
    let zero = model_onnx(
        &cnn_models::lenet5(10, &Device::flex()),
        [1, 32, 32],
        OnnxBatch::Fixed(0),
        &[],
    )
    .unwrap_err();
    assert!(zero.to_string().contains("at least 1"), "{zero}");
}

/// GoogLeNet's auxiliary classifiers only train: their weights are not in the file.
#[test]
fn googlenets_auxiliary_classifiers_are_left_out() {
    let model = cnn_models::googlenet(10, &Device::flex());
    let onnx = model_onnx(&model, [3, 64, 64], OnnxBatch::Fixed(1), &[]).unwrap();
    let proto = tract_onnx::onnx().proto_model_for_read(&mut &onnx[..]).unwrap();
    let names: Vec<&str> = proto.graph.as_ref().unwrap().initializer.iter().map(|t| t.name.as_str()).collect();
    assert!(names.iter().any(|n| n.contains("inception5b")), "{names:?}");
    assert!(!names.iter().any(|n| n.contains("aux")), "{names:?}");
}
