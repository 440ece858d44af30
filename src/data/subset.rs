//! `Subset`: some classes of another data set, relabelled, optionally capped per class
//! (the transfer experiment trains on 5 of CIFAR-10's classes, or on 100 images of each).

use crate::data::{Batch, Dataset, Normalize, View};
use crate::error::{Error, Result};

/// The images of a source data set whose class is one of a chosen few, relabelled
/// `0..k` in the order the classes were chosen, read through the source.
pub struct Subset<'a> {
    source: &'a dyn Dataset,
    /// Source index of each image, in source order.
    indices: Vec<usize>,
    /// New label of each source label (`u32::MAX`: not kept).
    relabel: Vec<u32>,
    classes: Vec<String>,
    scratch: std::sync::Mutex<Vec<usize>>,
}

impl<'a> Subset<'a> {
    /// The images of `source` whose label (`labels[i]` is image `i`'s) is in `keep`, at
    /// most the first `per_class` of each class when given. An error for a label list of
    /// the wrong length, a class out of range or chosen twice, or a class with no image.
    pub fn of_classes(
        source: &'a dyn Dataset,
        labels: &[u32],
        keep: &[usize],
        per_class: Option<usize>,
    ) -> Result<Self> {
        let all = source.classes();
        if labels.len() != source.len() {
            return Err(Error::Invalid(format!(
                "Subset: {} labels for a data set of {} images",
                labels.len(),
                source.len()
            )));
        }
        let mut relabel = vec![u32::MAX; all.len()];
        for (new, &c) in keep.iter().enumerate() {
            if c >= all.len() || relabel[c] != u32::MAX {
                return Err(Error::Invalid(format!(
                    "Subset: class {c} is out of range (0..{}) or chosen twice",
                    all.len()
                )));
            }
            relabel[c] = new as u32;
        }
        let mut counts = vec![0usize; keep.len()];
        let cap = per_class.unwrap_or(usize::MAX);
        let mut indices = Vec::new();
        for (i, &l) in labels.iter().enumerate() {
            let Some(&new) = relabel.get(l as usize) else {
                return Err(Error::Invalid(format!("Subset: image {i} has label {l}")));
            };
            if new != u32::MAX && counts[new as usize] < cap {
                counts[new as usize] += 1;
                indices.push(i);
            }
        }
        if let Some(k) = counts.iter().position(|&n| n == 0) {
            return Err(Error::Invalid(format!(
                "Subset: no image of class {} ({})",
                keep[k], all[keep[k]]
            )));
        }
        Ok(Subset {
            source,
            indices,
            relabel,
            classes: keep.iter().map(|&c| all[c].clone()).collect(),
            scratch: Default::default(),
        })
    }
}

impl Dataset for Subset<'_> {
    fn len(&self) -> usize {
        self.indices.len()
    }

    fn in_memory(&self) -> bool {
        self.source.in_memory()
    }

    fn image_shape(&self) -> [usize; 3] {
        self.source.image_shape()
    }

    fn classes(&self) -> &[String] {
        &self.classes
    }

    fn normalization(&self) -> Normalize {
        self.source.normalization()
    }

    fn fill_batch(&self, indices: &[usize], view: View<'_>, batch: &mut Batch) -> Result<()> {
        let mut mapped = self
            .scratch
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default();
        mapped.clear();
        for &i in indices {
            let &src = self.indices.get(i).ok_or_else(|| {
                Error::Invalid(format!(
                    "Subset: image {i} requested from a set of {}",
                    self.len()
                ))
            })?;
            mapped.push(src);
        }
        let filled = self.source.fill_batch(&mapped, view, batch);
        if let Ok(mut v) = self.scratch.lock() {
            *v = mapped;
        }
        filled?;
        for l in &mut batch.labels {
            *l = self.relabel[*l as usize];
        }
        Ok(())
    }
}
