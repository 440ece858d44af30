//! Data: the [`Dataset`] trait the loops read, the CIFAR-10 reader, normalisation, seeded
//! shuffling, mini-batches and augmentation; with the `image` feature, [`ImageFolder`]
//! (a folder of JPEG and PNG photos).
mod augment;
mod batches;
mod cifar10;
mod dataset;
#[cfg(feature = "image")]
mod image_folder;
#[cfg(feature = "image")]
mod image_io;
#[cfg(feature = "image")]
mod image_scan;
mod normalize;
mod subset;

pub use augment::{
    Augment, ResizedCrop, alternating_flip, augment_key, reflect_index, shift_flip,
    shift_flip_reflect,
};
pub use batches::{Batch, Batches, epoch_permutation};
pub use cifar10::{CLASSES, Cifar10, IMAGE_BYTES, RECORD_BYTES, Split, read_batch_file};
pub use dataset::{Dataset, View};
#[cfg(feature = "image")]
pub use image_folder::{ImageFolder, ImageFolderOptions, ImageSplits, load_eval_image};
#[cfg(feature = "image")]
pub use image_io::{DecodeLimits, Rgb8, decode_image, eval_image};
pub use normalize::Normalize;
pub use subset::Subset;
