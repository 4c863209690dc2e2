//! Views of part of a [`Source`]: a subset by indices and a seeded stratified split (the
//! validation set held out of a training set).

use std::sync::Arc;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::error::{DataError, Result};
use crate::image::Image;
use crate::source::Source;

/// The samples `indices` of another source, in that order.
#[derive(Clone)]
pub struct Subset {
    inner: Arc<dyn Source>,
    indices: Vec<usize>,
}

impl Subset {
    /// A view of `indices` of `inner`; every index must be in range.
    pub fn new(inner: Arc<dyn Source>, indices: Vec<usize>) -> Result<Self> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= inner.len()) {
            return Err(DataError::Invalid(format!(
                "index {bad} is out of range for {} samples",
                inner.len()
            )));
        }
        Ok(Self { inner, indices })
    }

    /// The first `len` samples of `inner` (all of them if it has fewer).
    pub fn prefix(inner: Arc<dyn Source>, len: usize) -> Self {
        let indices = (0..len.min(inner.len())).collect();
        Self { inner, indices }
    }

    /// Which samples of the inner source this view shows.
    pub fn indices(&self) -> &[usize] {
        &self.indices
    }
}

impl Source for Subset {
    fn len(&self) -> usize {
        self.indices.len()
    }

    fn get(&self, index: usize) -> Result<(Image, usize)> {
        self.inner.get(self.inner_index(index)?)
    }

    fn label(&self, index: usize) -> Result<usize> {
        self.inner.label(self.inner_index(index)?)
    }
}

impl Subset {
    fn inner_index(&self, index: usize) -> Result<usize> {
        self.indices.get(index).copied().ok_or_else(|| {
            DataError::Invalid(format!(
                "index {index} is out of range for {} samples",
                self.indices.len()
            ))
        })
    }
}

/// The samples of some classes of another source, relabelled by their position in the list
/// given: a task made of part of a data set's classes (five of Fashion-MNIST's ten, say, to
/// pretrain on and five others to transfer to).
#[derive(Clone)]
pub struct ClassSubset {
    samples: Subset,
    new_label: Vec<Option<usize>>,
}

impl ClassSubset {
    /// The samples of `classes` (labels of `inner`, in the order that numbers them from 0) in
    /// their original order. `class_count` is the number of classes of `inner`: a class past
    /// it, a repeated class or an empty list is an error.
    pub fn new(inner: Arc<dyn Source>, classes: &[usize], class_count: usize) -> Result<Self> {
        let new_label = relabelling(classes, class_count)?;
        let mut indices = Vec::new();
        for i in 0..inner.len() {
            if new_label.get(inner.label(i)?).copied().flatten().is_some() {
                indices.push(i);
            }
        }
        Ok(Self {
            samples: Subset { inner, indices },
            new_label,
        })
    }

    fn relabel(&self, label: usize) -> Result<usize> {
        self.new_label
            .get(label)
            .copied()
            .flatten()
            .ok_or_else(|| DataError::Invalid(format!("label {label} is not one of the chosen classes")))
    }
}

/// `new_label[old]` for a choice of `classes` out of `class_count`, checked.
fn relabelling(classes: &[usize], class_count: usize) -> Result<Vec<Option<usize>>> {
    if classes.is_empty() {
        return Err(DataError::Invalid("choose at least one class".into()));
    }
    let mut new_label = vec![None; class_count];
    for (new, &old) in classes.iter().enumerate() {
        match new_label.get_mut(old) {
            None => {
                return Err(DataError::Invalid(format!(
                    "class {old} does not exist: the data set has classes 0 to {}",
                    class_count.saturating_sub(1)
                )));
            }
            Some(Some(_)) => return Err(DataError::Invalid(format!("class {old} is chosen twice"))),
            Some(slot) => *slot = Some(new),
        }
    }
    Ok(new_label)
}

impl Source for ClassSubset {
    fn len(&self) -> usize {
        self.samples.len()
    }

    fn get(&self, index: usize) -> Result<(Image, usize)> {
        let (img, label) = self.samples.get(index)?;
        Ok((img, self.relabel(label)?))
    }

    fn label(&self, index: usize) -> Result<usize> {
        self.relabel(self.samples.label(index)?)
    }
}

/// Splits `source` class by class with a seeded shuffle: `fraction` of every class (rounded)
/// goes to the second part, the rest, in the original order, to the first.
pub fn stratified_split(source: Arc<dyn Source>, fraction: f64, seed: u64) -> Result<(Subset, Subset)> {
    let labels = (0..source.len()).map(|i| source.label(i)).collect::<Result<Vec<_>>>()?;
    let classes = labels.iter().max().map_or(0, |m| m + 1);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut held_out = Vec::new();
    for class in 0..classes {
        let mut mine: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        mine.shuffle(&mut rng);
        let n = ((mine.len() as f64 * fraction).round() as usize).min(mine.len());
        held_out.extend_from_slice(&mine[..n]);
    }
    held_out.sort_unstable();
    let mut is_held = vec![false; labels.len()];
    for &i in &held_out {
        is_held[i] = true;
    }
    let kept = (0..labels.len()).filter(|&i| !is_held[i]).collect();
    Ok((
        Subset {
            inner: source.clone(),
            indices: kept,
        },
        Subset {
            inner: source,
            indices: held_out,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ImageDataset;

    fn toy(labels: &[u16]) -> Arc<dyn Source> {
        let n = labels.len();
        Arc::new(
            ImageDataset::new(
                1,
                1,
                1,
                (0..n).map(|i| i as u8).collect(),
                labels.to_vec(),
                vec!["a".into(), "b".into()],
            )
            .unwrap(),
        )
    }

    #[test]
    fn stratified_split_keeps_class_shares_and_is_seeded() {
        let labels: Vec<u16> = (0..100).map(|i| u16::from(i % 4 == 0)).collect(); // 25 of class 1
        let (train, valid) = stratified_split(toy(&labels), 0.2, 7).unwrap();
        assert_eq!((train.len(), valid.len()), (80, 20));
        let ones = (0..valid.len()).filter(|&i| valid.label(i).unwrap() == 1).count();
        assert_eq!(ones, 5);
        let mut all: Vec<usize> = train.indices().iter().chain(valid.indices()).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        let (_, again) = stratified_split(toy(&labels), 0.2, 7).unwrap();
        assert_eq!(again.indices(), valid.indices());
        let (_, other) = stratified_split(toy(&labels), 0.2, 8).unwrap();
        assert_ne!(other.indices(), valid.indices());
        // Samples come from the right place.
        let k = valid.indices()[3];
        assert_eq!(valid.get(3).unwrap().0.data[0], k as u8);
    }

    #[test]
    fn out_of_range_indices_are_errors() {
        assert!(Subset::new(toy(&[0, 1]), vec![0, 2]).is_err());
        let s = Subset::prefix(toy(&[0, 1, 0]), 2);
        assert_eq!(s.len(), 2);
        assert!(s.get(2).is_err());
    }

    #[test]
    fn a_class_subset_keeps_the_chosen_classes_relabelled_in_the_given_order() {
        let labels: Vec<u16> = (0..12).map(|i| (i % 3) as u16).collect();
        let inner: Arc<dyn Source> = Arc::new(
            ImageDataset::new(1, 1, 1, (0..12).map(|i| i as u8).collect(), labels, ["a", "b", "c"].map(String::from).to_vec())
                .unwrap(),
        );
        let picked = ClassSubset::new(inner.clone(), &[2, 0], 3).unwrap();
        assert_eq!(picked.len(), 8);
        // Original order kept; class 2 is now 0 and class 0 is now 1.
        let got: Vec<(u8, usize)> = (0..8).map(|i| picked.get(i).map(|(img, l)| (img.data[0], l)).unwrap()).collect();
        assert_eq!(got, vec![(0, 1), (2, 0), (3, 1), (5, 0), (6, 1), (8, 0), (9, 1), (11, 0)]);
        assert_eq!(picked.label(1).unwrap(), 0);
        for (bad, why) in [(vec![3], "does not exist"), (vec![1, 1], "twice"), (vec![], "at least one")] {
            let err = ClassSubset::new(inner.clone(), &bad, 3).err().unwrap().to_string();
            assert!(err.contains(why), "{err}");
        }
    }
}
