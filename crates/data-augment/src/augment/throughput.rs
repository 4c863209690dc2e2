//! Images per second of a pipeline on one core: what `cnn augment bench` prints and what the
//! comparison with torchvision (`scripts/bench_torchvision_augment.py`) measures.

use std::path::Path;
use std::time::Instant;

use super::pipeline::Pipeline;
use crate::error::{DataError, Result};
use crate::image::{Image, image_files};

/// Rates of several timed rounds over the same images.
#[derive(Clone, Debug, PartialEq)]
pub struct Throughput {
    /// Median images per second over the rounds.
    pub median: f64,
    /// Slowest round's images per second.
    pub min: f64,
    /// Fastest round's images per second.
    pub max: f64,
    /// Timed rounds (a warm-up round comes first and is not counted).
    pub rounds: usize,
}

/// The images of `dir` (every image file below it), each resized to `size`×`size` first when
/// given (as a loader's decode step would), checked against what `pipeline` accepts.
pub fn load_inputs(pipeline: &Pipeline, dir: &Path, size: Option<usize>) -> Result<Vec<Image>> {
    let mut inputs = Vec::new();
    for file in image_files(dir)? {
        let img = Image::open(&file)?;
        let img = match size {
            Some(s) => super::geometry::resize(&img, s, s),
            None => img,
        };
        pipeline.check_input(img.height, img.width).map_err(|e| DataError::Format {
            path: file.clone(),
            reason: e.to_string(),
        })?;
        inputs.push(img);
    }
    if inputs.is_empty() {
        return Err(DataError::Invalid(format!("no images under {}", dir.display())));
    }
    Ok(inputs)
}

/// Applies `pipeline` to `n` images (cycling through `inputs`, a new seed per image and round)
/// in one warm-up round and `rounds` timed ones, on the calling thread.
pub fn throughput(pipeline: &Pipeline, inputs: &[Image], n: usize, rounds: usize) -> Result<Throughput> {
    if inputs.is_empty() || n == 0 {
        return Err(DataError::Invalid("a throughput needs at least one image".into()));
    }
    let rounds = rounds.max(1);
    let mut rates = Vec::with_capacity(rounds);
    for round in 0..=rounds {
        let started = Instant::now();
        for i in 0..n {
            std::hint::black_box(pipeline.apply(&inputs[i % inputs.len()], 1, round as u64, i as u64)?);
        }
        if round > 0 {
            rates.push(n as f64 / started.elapsed().as_secs_f64());
        }
    }
    rates.sort_by(f64::total_cmp);
    Ok(Throughput {
        median: rates[rates.len() / 2],
        min: rates[0],
        max: rates[rates.len() - 1],
        rounds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_ordered_and_empty_inputs_are_refused() {
        let pipeline = Pipeline::preset("flip").unwrap();
        let img = Image::new(8, 8, 3, vec![7; 8 * 8 * 3]).unwrap();
        let t = throughput(&pipeline, &[img], 20, 3).unwrap();
        assert_eq!(t.rounds, 3);
        assert!(t.min > 0.0 && t.min <= t.median && t.median <= t.max, "{t:?}");
        assert!(throughput(&pipeline, &[], 20, 3).is_err());
        let dir = tempfile::tempdir().unwrap();
        let err = load_inputs(&pipeline, dir.path(), None).unwrap_err().to_string();
        assert!(err.contains("no images"), "{err}");
    }
}
