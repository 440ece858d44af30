//! Data: the [`Dataset`] trait the loops read, the CIFAR-10 reader, normalisation, seeded
//! shuffling, mini-batches and augmentation.
mod augment;
mod batches;
mod cifar10;
mod dataset;
mod normalize;

pub use augment::{Augment, ResizedCrop, augment_key, shift_flip};
pub use batches::{Batch, Batches, epoch_permutation};
pub use cifar10::{CLASSES, Cifar10, IMAGE_BYTES, RECORD_BYTES, Split, read_batch_file};
pub use dataset::{Dataset, View};
pub use normalize::Normalize;
