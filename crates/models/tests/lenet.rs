use burn::module::Module;
use burn::tensor::{Device, Tensor};
use cnn_models::{Activation, LeNet5, LeNet5Config};

#[test]
fn lenet5_has_61706_parameters() {
    let model = LeNet5::new(10, &Device::flex());
    assert_eq!(model.num_params(), 61_706);
}

#[test]
fn lenet5_maps_a_batch_to_logits() {
    let device = Device::flex();
    for activation in Activation::ALL {
        let model = LeNet5Config::new().with_activation(activation).init(&device);
        for batch in [1, 3] {
            let x = Tensor::<4>::random([batch, 1, 32, 32], burn::tensor::Distribution::Default, &device);
            let logits = model.forward(x);
            assert_eq!(logits.dims(), [batch, 10]);
            let values = logits.into_data().try_to_vec::<f32>().unwrap();
            assert!(values.iter().all(|v| v.is_finite()));
        }
    }
}

#[test]
fn lenet5_class_count_and_channels_are_configurable() {
    let device = Device::flex();
    let model = LeNet5Config::new()
        .with_num_classes(4)
        .with_in_channels(3)
        .init(&device);
    // Only conv1 (3·6·25 weights) and fc3 (84·4 + 4) change relative to the 10-class grayscale net.
    assert_eq!(model.num_params(), 61_706 - 156 + (3 * 6 * 25 + 6) - 850 + (84 * 4 + 4));
    let logits = model.forward(Tensor::<4>::zeros([2, 3, 32, 32], &device));
    assert_eq!(logits.dims(), [2, 4]);
}
