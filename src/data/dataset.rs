//! The `Dataset` trait: what the training and evaluation loops read, whatever the source
//! (the CIFAR-10 binary files, a folder of images, …).

use crate::data::{Augment, Batch, Normalize};
use crate::error::Result;

/// How the images of a batch are presented.
#[derive(Clone, Copy)]
pub enum View<'a> {
    /// As stored, after the source's evaluation preprocessing.
    Plain,
    /// Mirrored left-right (test-time augmentation).
    Mirrored,
    /// Augmented for training: the image at position `k` of the batch draws its crop and
    /// flip from the generator key `key(k)` alone (see [`crate::data::augment_key`]), so
    /// any thread may prepare it and a resumed run draws the same.
    Augmented {
        /// What to apply.
        augment: &'a Augment,
        /// The generator key of each position in the batch.
        key: &'a (dyn Fn(usize) -> u64 + Sync),
    },
}

/// A labelled set of images of one shape, read by index.
///
/// Implementations: [`crate::data::Cifar10`] (the binary files, in memory) and, with the
/// `image` feature, `ImageFolder` (a folder of photos, decoded as needed).
pub trait Dataset: Sync {
    /// Number of images.
    fn len(&self) -> usize;

    /// True when there are no images.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when a batch is assembled from memory at table-look-up cost (the loops then
    /// fill un-augmented batches inline); false (the default) when images are decoded
    /// from files, so the loops prepare every batch on a loader thread, ahead of training.
    fn in_memory(&self) -> bool {
        false
    }

    /// True when, right now, an un-augmented batch is assembled from memory at copy cost,
    /// so the loops fill it inline rather than on a loader thread (a hand-off per batch
    /// costs more than the copy at small batches). Defaults to [`Dataset::in_memory`]; a
    /// file-backed source whose cache has come to hold every image says so here.
    fn fills_from_memory(&self) -> bool {
        self.in_memory()
    }

    /// Shape of one image as the model sees it, `[C, H, W]`.
    fn image_shape(&self) -> [usize; 3];

    /// The class names; a label is an index into them.
    fn classes(&self) -> &[String];

    /// How the source's bytes become the model's floats (saved with a trained model, so
    /// that prediction prepares images the same way).
    fn normalization(&self) -> Normalize;

    /// A hint that images `indices` come next: a source in memory may start pulling their
    /// bytes into cache while the current step computes (the default does nothing).
    /// Indices out of range are ignored; [`Dataset::fill_batch`] reports them.
    fn prefetch(&self, indices: &[usize]) {
        let _ = indices;
    }

    /// Writes images `indices` into `batch.images` as `[n, C, H, W]` normalised floats and
    /// their labels into `batch.labels`, presented as `view` says. An index out of range,
    /// or an image that can no longer be read, is an error naming it.
    fn fill_batch(&self, indices: &[usize], view: View<'_>, batch: &mut Batch) -> Result<()>;
}
