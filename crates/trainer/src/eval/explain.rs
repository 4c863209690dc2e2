//! Pictures of what a network looks at: Grad-CAM heat maps (`cnn explain`) and the test images
//! it gets most wrong (`cnn eval --worst`).
//!
//! Grad-CAM (Selvaraju et al. 2017): the maps `A` of the last convolutional stage are weighed,
//! channel by channel, by the mean gradient of the class's logit with respect to them, summed
//! and passed through a ReLU: `ReLU(Σₖ mean(∂y_c/∂Aₖ) · Aₖ)`. Where that is large, the maps
//! hold evidence for the class; upsampled to the image, it shows where.

use burn::module::{Module, ParamGroup};
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor};
use cnn_data_augment::{Batch, Image, Preprocess, Source};
use cnn_models::Model;
use cnn_models::Network;

use crate::error::{Result, TrainError};
use crate::report::plot::Tile;

/// A Grad-CAM heat map of one image.
#[derive(Clone, Debug)]
pub struct HeatMap {
    /// The class explained.
    pub class: usize,
    /// Its softmax probability.
    pub probability: f32,
    /// The class the network predicts.
    pub predicted: usize,
    /// The maps' height and width.
    pub size: (usize, usize),
    /// `height × width` values, row by row, scaled so that the largest is 1 (all 0 when no
    /// place holds evidence for the class).
    pub values: Vec<f32>,
}

/// The Grad-CAM heat map of `model` for `image` (fitted with `pre`, as in training) and `class`
/// (the predicted one when `None`), computed on `device` (its autodiff twin is used).
///
/// The network runs in inference mode (BatchNorm's running statistics, no dropout). A class out
/// of range, or a model without a convolutional stage, is an error.
pub fn grad_cam(
    model: &Model,
    image: &Image,
    pre: &Preprocess,
    class: Option<usize>,
    device: &Device,
) -> Result<HeatMap> {
    let autodiff = device.clone().autodiff();
    // Frozen: every layer behaves as in inference, and no weight asks for a gradient.
    let model = model.clone().fork(&autodiff).freeze_group(ParamGroup::all());
    let (images, _) = Batch::from_images(&[(pre.fit(image), 0)], pre)?.to_device(&autodiff);
    let no_maps = || TrainError::Unsupported {
        model: "the model".into(),
        reason: "it has no convolutional stage to explain".into(),
    };
    let maps = model.last_maps(images).ok_or_else(no_maps)?.detach().require_grad();
    let logits = model.logits_from_maps(maps.clone()).ok_or_else(no_maps)?;
    let classes = logits.dims()[1];
    let probs: Vec<f32> = to_vec(softmax(logits.clone().detach(), 1));
    let predicted = argmax(&probs);
    let class = class.unwrap_or(predicted);
    if class >= classes {
        return Err(TrainError::InvalidOption {
            option: "class",
            reason: format!(
                "{class} is out of range: the model has {classes} classes (0 to {})",
                classes - 1
            ),
        });
    }
    let grads = logits.narrow(1, class, 1).sum().backward();
    let gradient = maps
        .grad(&grads)
        .ok_or_else(|| TrainError::Backend("no gradient reached the maps".into()))?;
    let [_, channels, h, w] = gradient.dims();
    let weights = gradient.mean_dim(3).mean_dim(2).reshape([channels, 1]);
    let activations = maps.detach().inner().reshape([channels, h * w]);
    let cam = burn::tensor::activation::relu((activations * weights).sum_dim(0));
    let mut values = to_vec(cam.reshape([h * w]));
    let top = values.iter().copied().fold(0.0f32, f32::max);
    if top > 0.0 {
        values.iter_mut().for_each(|v| *v /= top);
    }
    Ok(HeatMap {
        class,
        probability: probs[class],
        predicted,
        size: (h, w),
        values,
    })
}

/// `image` as the network saw it (fitted with `pre`), enlarged to at least `min_side` pixels,
/// with `heat` laid over it in a blue-to-red colour scale at half opacity.
pub fn overlay(image: &Image, pre: &Preprocess, heat: &HeatMap, min_side: usize) -> Tile {
    let mut tile = as_seen(image, pre, min_side);
    let (width, height) = (tile.width as usize, tile.height as usize);
    let (h, w) = heat.size;
    for y in 0..height {
        for x in 0..width {
            // Bilinear sample of the maps at the pixel's centre.
            let fy = ((y as f32 + 0.5) / height as f32 * h as f32 - 0.5).clamp(0.0, (h - 1) as f32);
            let fx = ((x as f32 + 0.5) / width as f32 * w as f32 - 0.5).clamp(0.0, (w - 1) as f32);
            let (y0, x0) = (fy.floor() as usize, fx.floor() as usize);
            let (y1, x1) = ((y0 + 1).min(h - 1), (x0 + 1).min(w - 1));
            let (ty, tx) = (fy - y0 as f32, fx - x0 as f32);
            let at = |yy: usize, xx: usize| heat.values[yy * w + xx];
            let top = at(y0, x0) * (1.0 - tx) + at(y0, x1) * tx;
            let bottom = at(y1, x0) * (1.0 - tx) + at(y1, x1) * tx;
            let colour = jet(top * (1.0 - ty) + bottom * ty);
            let pixel = &mut tile.rgb[(y * width + x) * 3..][..3];
            for (p, c) in pixel.iter_mut().zip(colour) {
                *p = (0.5 * f32::from(*p) + 0.5 * c).round() as u8;
            }
        }
    }
    tile
}

/// `image` as the network saw it (fitted with `pre`, in RGB), enlarged by a whole factor
/// (nearest neighbour) to at least `min_side` pixels, without a caption.
fn as_seen(image: &Image, pre: &Preprocess, min_side: usize) -> Tile {
    let seen = pre.fit(image).with_channels(3);
    let scale = min_side.div_ceil(seen.width.max(seen.height)).max(1);
    let (width, height) = (seen.width * scale, seen.height * scale);
    let rgb = (0..height)
        .flat_map(|y| (0..width).flat_map(move |x| (0..3).map(move |c| (x, y, c))))
        .map(|(x, y, c)| seen.get(x / scale, y / scale, c))
        .collect();
    Tile {
        width: width as u32,
        height: height as u32,
        rgb,
        caption: String::new(),
    }
}

/// The Grad-CAM of `run`'s `model` for the image file `path` ([`grad_cam`]), drawn over the
/// image ([`overlay`], at least 224 px) and captioned with the file, the class and its
/// probability, and the layer explained. Files the model cannot read name themselves.
pub fn explain_file(
    run: &crate::run::RunFolder,
    model: &Model,
    path: &std::path::Path,
    class: Option<usize>,
    device: &Device,
) -> Result<(HeatMap, Tile)> {
    let image = Image::open(path)?;
    let pre = crate::eval::for_image(&run.preprocess, &image);
    let heat = grad_cam(model, &image, &pre, class, device)?;
    let mut tile = overlay(&image, &pre, &heat, 224);
    let name = |c: usize| run.class_names.get(c).map_or("?", String::as_str).to_string();
    let file = path
        .file_name()
        .map_or(String::new(), |f| f.to_string_lossy().into_owned());
    tile.caption = format!("{file}: {} p={:.3}", name(heat.class), heat.probability);
    if heat.class != heat.predicted {
        tile.caption.push_str(&format!(" (predicted {})", name(heat.predicted)));
    }
    Ok((heat, tile))
}

/// The blue (0) – cyan – yellow – red (1) colour scale.
fn jet(v: f32) -> [f32; 3] {
    let channel = |centre: f32| (1.5 - (4.0 * v - centre).abs()).clamp(0.0, 1.0) * 255.0;
    [channel(3.0), channel(2.0), channel(1.0)]
}

/// One test image the model gets wrong or barely right, by its loss.
#[derive(Clone, Debug, PartialEq)]
pub struct Mistake {
    /// Index in the test split.
    pub index: usize,
    /// The true class.
    pub label: usize,
    /// The predicted class.
    pub predicted: usize,
    /// The predicted class's probability.
    pub probability: f32,
    /// Cross-entropy of the true class (−ln p).
    pub loss: f32,
}

/// The `n` images with the highest loss under `probs` (one row of class probabilities per
/// image, e.g. [`crate::eval::ensemble::EnsembleEvaluation::probabilities`]) and their `labels`, worst first.
pub fn worst(probs: &crate::eval::ensemble::Probabilities, labels: &[usize], n: usize) -> Vec<Mistake> {
    let mut all: Vec<Mistake> = probs
        .rows
        .chunks(probs.classes.max(1))
        .zip(labels)
        .enumerate()
        .map(|(index, (row, &label))| {
            let predicted = argmax(row);
            let p_true = row.get(label).copied().unwrap_or(0.0);
            Mistake {
                index,
                label,
                predicted,
                probability: row[predicted],
                loss: -p_true.max(f32::MIN_POSITIVE).ln(),
            }
        })
        .collect();
    all.sort_by(|a, b| b.loss.total_cmp(&a.loss).then(a.index.cmp(&b.index)));
    all.truncate(n);
    all
}

/// Each mistake's image from `data` as the network saw it (fitted with `pre`, enlarged to at
/// least 112 px), captioned `true → predicted p`.
pub fn mistake_tiles(
    data: &dyn Source,
    mistakes: &[Mistake],
    pre: &Preprocess,
    class_names: &[String],
) -> Result<Vec<Tile>> {
    let name = |c: usize| class_names.get(c).map_or("?", String::as_str);
    mistakes
        .iter()
        .map(|m| {
            let (image, _) = data.get(m.index)?;
            Ok(Tile {
                caption: format!("{} → {} {:.2}", name(m.label), name(m.predicted), m.probability),
                ..as_seen(&image, pre, 112)
            })
        })
        .collect()
}

/// The `k` most frequent confusions of a confusion matrix (rows: true class, columns:
/// predicted), as `(true, predicted, count)`, most frequent first, without zero counts.
pub fn most_confused(confusion: &[Vec<usize>], k: usize) -> Vec<(usize, usize, usize)> {
    let mut pairs: Vec<(usize, usize, usize)> = confusion
        .iter()
        .enumerate()
        .flat_map(|(t, row)| row.iter().enumerate().map(move |(p, &c)| (t, p, c)))
        .filter(|&(t, p, c)| t != p && c > 0)
        .collect();
    pairs.sort_by(|a, b| b.2.cmp(&a.2).then((a.0, a.1).cmp(&(b.0, b.1))));
    pairs.truncate(k);
    pairs
}

fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap_or_default()
}

fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cnn_data_augment::ImageDataset;

    /// LeNet-5 (ReLU) whose only evidence is the brightness that reaches `conv2`'s channel 0:
    /// `conv1` and `conv2` pass the image's centre tap through one channel, `fc1`–`fc2` add that
    /// channel up, and `fc3` makes it evidence *for* class 0 and *against* class 1. Every other
    /// weight and every bias is zero.
    fn crafted(device: &Device) -> Model {
        use burn::module::Param;
        use burn::tensor::TensorData;
        let Model::LeNet5(mut net) =
            cnn_models::build("lenet5_relu", cnn_models::BuildOptions::classes(2), device).unwrap()
        else {
            unreachable!()
        };
        let tensor = |shape: Vec<usize>, set: &[(usize, f32)]| {
            let mut values = vec![0f32; shape.iter().product()];
            for &(i, v) in set {
                values[i] = v;
            }
            TensorData::new(values, shape)
        };
        // [out, in, 5, 5]: the centre tap (2, 2) of output 0 from input 0.
        net.conv1.weight = Param::from_tensor(Tensor::from_data(tensor(vec![6, 1, 5, 5], &[(12, 1.0)]), device));
        net.conv2.weight = Param::from_tensor(Tensor::from_data(tensor(vec![16, 6, 5, 5], &[(12, 1.0)]), device));
        // [inputs, outputs]: fc1's unit 0 sums channel 0's 25 pooled cells (inputs 0..25).
        let all: Vec<(usize, f32)> = (0..25).map(|i| (i * 120, 1.0)).collect();
        net.fc1.weight = Param::from_tensor(Tensor::from_data(tensor(vec![400, 120], &all), device));
        net.fc2.weight = Param::from_tensor(Tensor::from_data(tensor(vec![120, 84], &[(0, 1.0)]), device));
        net.fc3.weight = Param::from_tensor(Tensor::from_data(tensor(vec![84, 2], &[(0, 1.0), (1, -1.0)]), device));
        for conv in [&mut net.conv1, &mut net.conv2] {
            let n = conv.weight.dims()[0];
            conv.bias = Some(Param::from_tensor(Tensor::from_data(tensor(vec![n], &[]), device)));
        }
        for fc in [&mut net.fc1, &mut net.fc2, &mut net.fc3] {
            let n = fc.weight.dims()[1];
            fc.bias = Some(Param::from_tensor(Tensor::from_data(tensor(vec![n], &[]), device)));
        }
        Model::LeNet5(net)
    }

    /// A 28×28 black digit with a white 6×6 blob at rows and columns `at..at + 6`.
    fn blob(at: usize) -> Image {
        let data = (0..28 * 28)
            .map(|i| {
                if (at..at + 6).contains(&(i / 28)) && (at..at + 6).contains(&(i % 28)) {
                    255
                } else {
                    0
                }
            })
            .collect();
        Image::new(28, 28, 1, data).unwrap()
    }

    /// The known answer: the evidence for class 0 is the blob, so the heat map is the blob's
    /// place in `conv2`'s 10×10 maps and zero elsewhere, wherever the blob is; class 1's
    /// evidence is all negative, so its heat map is zero everywhere (Grad-CAM's ReLU).
    #[test]
    fn grad_cam_lights_up_exactly_where_the_evidence_is() {
        let device = Device::flex();
        let model = crafted(&device);
        let pre = Preprocess::mnist(32);
        // The blob at `at` of 28 px is at `at + 2` of the padded 32, `at` after conv1's 5×5, about
        // `at / 2` after pooling and `at / 2 − 2` after conv2.
        for (at, rows) in [(4, 0..3), (16, 6..9)] {
            let heat = grad_cam(&model, &blob(at), &pre, Some(0), &device).unwrap();
            assert_eq!((heat.class, heat.predicted, heat.size), (0, 0, (10, 10)));
            assert!(heat.probability > 0.99, "{}", heat.probability);
            for (i, &v) in heat.values.iter().enumerate() {
                let (y, x) = (i / 10, i % 10);
                if !(rows.contains(&y) && rows.contains(&x)) {
                    assert_eq!(v, 0.0, "blob at {at}: heat {v} at ({y}, {x}): {:?}", heat.values);
                }
            }
            assert_eq!(heat.values.iter().copied().fold(0.0, f32::max), 1.0);
            // Drawn over the image: red where the blob is, blue far from it.
            let tile = overlay(&blob(at), &pre, &heat, 224);
            assert_eq!((tile.width, tile.height, tile.rgb.len()), (224, 224, 224 * 224 * 3));
            let pixel = |y: usize, x: usize| &tile.rgb[(y * 224 + x) * 3..][..3];
            let top = heat.values.iter().position(|&v| v == 1.0).unwrap();
            let centre = |cell: usize| (cell * 224 + 112) / 10;
            let (y, x) = (centre(top / 10), centre(top % 10));
            let (hot, far) = (pixel(y, x), pixel(223 - y, 223 - x));
            assert!(hot[0] > hot[2] && far[2] > far[0], "hot {hot:?}, far {far:?}");
        }
        let against = grad_cam(&model, &blob(4), &pre, Some(1), &device).unwrap();
        assert!(against.values.iter().all(|&v| v == 0.0), "{:?}", against.values);
        assert!(against.probability < 0.01);
        let err = grad_cam(&model, &blob(4), &pre, Some(2), &device)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`class` 2 is out of range: the model has 2 classes (0 to 1)"),
            "{err}"
        );
    }

    /// Every family the course names explains an image at its last convolutional stage
    /// (untrained weights: only the mechanics are checked here).
    #[test]
    fn grad_cam_runs_on_every_family() {
        let device = Device::flex();
        let photo = Image::new(40, 40, 3, (0..40 * 40 * 3).map(|i| (i * 7 % 251) as u8).collect()).unwrap();
        for (name, size, maps) in [
            ("resnet20", 32, (8, 8)),
            ("resnet18", 64, (2, 2)),
            ("vgg16", 64, (4, 4)),
            ("googlenet", 64, (2, 2)),
            ("alexnet", 64, (3, 3)),
        ] {
            device.seed(2);
            let model = cnn_models::build(name, cnn_models::BuildOptions::classes(4), &device).unwrap();
            let info = cnn_models::registry::lookup(name).unwrap();
            let pre = crate::run::preprocess_for(info.default_input, true, size);
            let heat = grad_cam(&model, &photo, &pre, Some(3), &device).unwrap();
            assert_eq!((heat.class, heat.size), (3, maps), "{name}");
            assert!(
                heat.values.iter().all(|v| (0.0..=1.0).contains(v)),
                "{name}: {:?}",
                heat.values
            );
            assert!((0.0..=1.0).contains(&heat.probability), "{name}");
        }
    }

    #[test]
    fn the_worst_images_come_by_loss_and_confusions_by_count() {
        let probs = crate::eval::ensemble::Probabilities {
            classes: 2,
            rows: vec![0.9, 0.1, 0.2, 0.8, 0.6, 0.4, 0.01, 0.99],
        };
        let worst = worst(&probs, &[0, 1, 1, 0], 3);
        let picked: Vec<(usize, usize, usize)> = worst.iter().map(|m| (m.index, m.label, m.predicted)).collect();
        assert_eq!(picked, [(3, 0, 1), (2, 1, 0), (1, 1, 1)]);
        assert!((worst[0].loss - -(0.01f32.ln())).abs() < 1e-6 && worst[0].probability == 0.99);
        let images = ImageDataset::new(
            28,
            28,
            1,
            (0..4).flat_map(|i| blob(4 * i).data).collect(),
            vec![0, 1, 1, 0],
            vec!["a".into(), "b".into()],
        )
        .unwrap();
        let names = ["a".to_string(), "b".to_string()];
        let pre = Preprocess::mnist(32);
        let tiles = mistake_tiles(&images, &worst, &pre, &names).unwrap();
        assert_eq!(tiles[0].caption, "a → b 0.99");
        assert_eq!((tiles[0].width, tiles[0].rgb.len()), (128, 128 * 128 * 3));
        assert_eq!(
            most_confused(&[vec![5, 1, 0], vec![3, 4, 0], vec![0, 3, 9]], 2),
            [(1, 0, 3), (2, 1, 3)]
        );
    }
}
