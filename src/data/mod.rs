//! Data: the CIFAR-10 reader, normalisation, seeded shuffling and mini-batches.
mod augment;
mod batches;
mod cifar10;

pub use augment::{Augment, augment_key, shift_flip};
pub use batches::{Batch, Batches, epoch_permutation};
pub use cifar10::{CLASSES, Cifar10, IMAGE_BYTES, RECORD_BYTES, Split, read_batch_file};
