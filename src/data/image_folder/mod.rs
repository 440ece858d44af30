//! [`ImageFolder`]: a folder of the user's own JPEG and PNG photos as a [`Dataset`], laid
//! out as torchvision's `ImageFolder` (`root/<class>/<image>`; see `image_scan.rs` for the
//! exact rules) and prepared at a square size `S` as torchvision's standard recipes:
//!
//! - every image is decoded ([`decode_image`]) and resized so its shorter side is
//!   `B = round(S / eval_resize_ratio)`: its *base*;
//! - [`View::Plain`] takes the centre `S×S` of the base (`Resize(B)` + `CenterCrop(S)`),
//!   [`View::Mirrored`] the same mirrored;
//! - [`View::Augmented`] with a [`ResizedCrop`](crate::data::ResizedCrop) takes a random
//!   box of the base (torchvision's `RandomResizedCrop` draw), resizes it to `S×S`, then
//!   applies the rest of the [`Augment`] (flip, pad-and-crop) keyed by the next draw;
//!   without one, the centre crop goes through [`Augment::apply`] with the position's key,
//!   exactly as [`crate::data::Cifar10`] does, so a 32×32 folder augments the same.
//!
//! Unlike torchvision, random crops come from the base, not the full-size photo, which
//! is what lets the cache hold small bases; at `B = S` a crop of 8 % of the area is
//! upscaled from about `0.28·S` pixels a side.
//!
//! **Cache**: bases are kept in memory while their bytes fit `cache_bytes` (shared by the
//! training and validation sets); the rest is decoded from disk every time. The result
//! never depends on what was cached, nor on the number of decode threads.
//!
//! **Bad files** are reported, never fatal: a file that fails to decode is dropped from its
//! batch, recorded with its reason in [`ImageFolder::skipped`] and not tried again; with
//! `strict` the first one is returned as the error instead. A batch left with no image is
//! an error.

use super::image_io;
use super::image_io::{
    CropBox, base_side, centre_box, check_size, resize, resize_shorter, resized_crop_box, to_planar,
};
use super::image_scan::{Listing, class_folders, holdout, list, split_folders};
use super::normalize::apply_tables;
use super::{Augment, Batch, Dataset, DecodeLimits, Normalize, Rgb8, View, decode_image};
use crate::error::{Error, Result};
use fast_image_resize::Resizer;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{Rng, SeedableRng};
use std::borrow::Cow;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use work::{Budget, Skipped};

mod work;

/// How to open and prepare an image folder.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageFolderOptions {
    /// Side `S` of the square images the model sees (1–4096).
    pub size: usize,
    /// Fraction of each class held out for validation when the root has no
    /// `train/` + `val/` (or `test/`) folders; in `[0, 1)`.
    pub val_fraction: f32,
    /// Seed of the holdout and of the normalisation sample.
    pub seed: u64,
    /// Bytes of decoded bases kept in memory (0 disables the cache).
    pub cache_bytes: usize,
    /// Per-channel normalisation; `None` computes it from the training images (see
    /// [`ImageFolderOptions::stats_sample`]). [`Normalize::imagenet`] for pretrained weights.
    pub normalize: Option<Normalize>,
    /// Images the computed mean and deviation are taken over: a seeded sample of the
    /// training images, each seen as [`View::Plain`] does.
    pub stats_sample: usize,
    /// Stop at the first unreadable file instead of skipping it.
    pub strict: bool,
    /// Limits on each file.
    pub limits: DecodeLimits,
    /// Evaluation resizes the shorter side to `round(S / eval_resize_ratio)` then
    /// centre-crops `S`: 1 crops nothing of a square photo, 0.875 is torchvision's
    /// ImageNet recipe (256 → 224). In `(0, 1]`.
    pub eval_resize_ratio: f32,
    /// Decoding threads within one batch (0: the number of cores).
    pub threads: usize,
}

impl Default for ImageFolderOptions {
    /// 224 pixels, 10 % held out, seed 0, a 1 GiB cache, normalisation computed over up
    /// to 2,000 images, lenient, default limits, ratio 1, one thread per core.
    fn default() -> Self {
        ImageFolderOptions {
            size: 224,
            val_fraction: 0.1,
            seed: 0,
            cache_bytes: 1 << 30,
            normalize: None,
            stats_sample: 2000,
            strict: false,
            limits: DecodeLimits::default(),
            eval_resize_ratio: 1.0,
            threads: 0,
        }
    }
}

/// The two halves of an opened folder.
pub struct ImageSplits {
    /// The training images.
    pub train: ImageFolder,
    /// The validation images (possibly none, with `val_fraction` 0).
    pub val: ImageFolder,
}

/// One split of an image folder (see the module documentation).
pub struct ImageFolder {
    root: PathBuf,
    classes: Vec<String>,
    files: Vec<PathBuf>,
    labels: Vec<u32>,
    size: usize,
    base: usize,
    limits: DecodeLimits,
    strict: bool,
    threads: usize,
    normalize: Normalize,
    cache: Vec<OnceLock<Rgb8>>,
    /// How many entries of `cache` are set.
    cached_images: AtomicUsize,
    budget: Arc<Budget>,
    skipped: Mutex<Skipped>,
}

impl ImageFolder {
    /// Opens `root` (see the module documentation for the layout): lists the files, splits
    /// them, and, without a given normalisation, computes it from the training images
    /// (which also fills the cache with them). A missing root, a root without class
    /// folders or a class folder without images is an error naming the folder; with
    /// `strict`, so is any unreadable entry.
    pub fn open(root: &Path, opts: &ImageFolderOptions) -> Result<ImageSplits> {
        check_size(opts.size, opts.eval_resize_ratio)?;
        if !(0.0..1.0).contains(&opts.val_fraction) {
            return Err(Error::Invalid(format!(
                "val_fraction {}: expected a value in [0, 1)",
                opts.val_fraction
            )));
        }
        if let Some(n) = &opts.normalize
            && n.channels() != 3
        {
            return Err(Error::Invalid(format!(
                "ImageFolder: a normalisation of {} channels for RGB images",
                n.channels()
            )));
        }
        std::fs::metadata(root).map_err(|source| Error::Io {
            path: root.to_path_buf(),
            what: "cannot open image folder",
            source,
        })?;
        let (train_dir, val_dir) = split_folders(root);
        let classes: Vec<String> = class_folders(&train_dir)?
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        let (train, val) = match &val_dir {
            Some(dir) => (list(&train_dir, &classes)?, list(dir, &classes)?),
            None => holdout(list(&train_dir, &classes)?, opts.val_fraction, opts.seed),
        };
        if opts.strict
            && let Some((path, why)) = train.skipped.iter().chain(&val.skipped).next()
        {
            return Err(Error::Format {
                path: path.clone(),
                detail: why.clone(),
            });
        }
        let budget = Arc::new(Budget {
            limit: opts.cache_bytes,
            used: AtomicUsize::new(0),
        });
        let mut train = ImageFolder::new(train_dir.clone(), &classes, train, opts, &budget);
        if let Some(n) = &opts.normalize {
            train.normalize = n.clone();
        } else {
            train.normalize = train.compute_normalize(opts.stats_sample, opts.seed)?;
        }
        let mut val = ImageFolder::new(val_dir.unwrap_or(train_dir), &classes, val, opts, &budget);
        val.normalize = train.normalize.clone();
        Ok(ImageSplits { train, val })
    }

    fn new(
        root: PathBuf,
        classes: &[String],
        listing: Listing,
        opts: &ImageFolderOptions,
        budget: &Arc<Budget>,
    ) -> Self {
        let threads = match opts.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            t => t,
        };
        ImageFolder {
            root,
            classes: classes.to_vec(),
            cache: (0..listing.files.len()).map(|_| OnceLock::new()).collect(),
            cached_images: AtomicUsize::new(0),
            files: listing.files,
            labels: listing.labels,
            size: opts.size,
            base: base_side(opts.size, opts.eval_resize_ratio),
            limits: opts.limits,
            strict: opts.strict,
            threads,
            normalize: Normalize::half(),
            budget: Arc::clone(budget),
            skipped: Mutex::new(Skipped {
                list: listing.skipped,
                bad: HashSet::new(),
            }),
        }
    }

    /// The folder this split was listed from.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The image files, in index order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The label of each file.
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// Files skipped so far and why: unreadable entries met while listing, and files that
    /// failed to decode in a batch or in the normalisation pass.
    pub fn skipped(&self) -> Vec<(PathBuf, String)> {
        self.lock_skipped().list.clone()
    }

    /// Bytes the cache holds, both splits together.
    pub fn cached_bytes(&self) -> usize {
        self.budget.used.load(Ordering::Acquire)
    }

    fn lock_skipped(&self) -> std::sync::MutexGuard<'_, Skipped> {
        // A panic elsewhere while holding the lock leaves the list intact.
        self.skipped.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Image `i` at shorter side `B`, from the cache or decoded (and cached if it fits).
    fn base(&self, i: usize, resizer: &mut Resizer) -> Result<Cow<'_, Rgb8>> {
        if let Some(b) = self.cache[i].get() {
            return Ok(Cow::Borrowed(b));
        }
        let path = &self.files[i];
        let image = decode_image(path, &self.limits)?;
        let base = resize_shorter(&image, self.base, &self.limits, resizer).map_err(|e| {
            Error::Format {
                path: path.clone(),
                detail: e.to_string(),
            }
        })?;
        drop(image);
        let bytes = base.bytes();
        if !self.budget.reserve(bytes) {
            return Ok(Cow::Owned(base));
        }
        match self.cache[i].set(base) {
            Ok(()) => {
                self.cached_images.fetch_add(1, Ordering::AcqRel);
                Ok(Cow::Borrowed(self.cache[i].get().unwrap_or_else(|| {
                    unreachable!("a OnceLock just set holds its value")
                })))
            }
            Err(base) => {
                self.budget.used.fetch_sub(bytes, Ordering::AcqRel);
                Ok(Cow::Owned(base))
            }
        }
    }

    /// Writes image `i`, as `view` presents position `pos` of a batch, into `dst`
    /// (`[3, S, S]` bytes); `scratch` is as large.
    fn prepare(
        &self,
        (pos, i): (usize, usize),
        view: View<'_>,
        resizer: &mut Resizer,
        dst: &mut [u8],
        scratch: &mut [u8],
    ) -> Result<()> {
        let base = self.base(i, resizer)?;
        let s = self.size as u32;
        let centre = centre_box(base.width(), base.height(), s);
        match view {
            View::Plain => to_planar(&base, centre, false, dst),
            View::Mirrored => to_planar(&base, centre, true, dst),
            View::Augmented { augment, key } => {
                let key = key(pos);
                let rest = Augment {
                    resized_crop: None,
                    ..*augment
                };
                let rest_key = match &augment.resized_crop {
                    None => {
                        to_planar(&base, centre, false, scratch);
                        key
                    }
                    Some(rc) => {
                        let mut rng = Xoshiro256PlusPlus::seed_from_u64(key);
                        let crop = resized_crop_box(base.width(), base.height(), rc, &mut rng);
                        let out =
                            resize(&base, crop, s, s, resizer).map_err(|e| Error::Format {
                                path: self.files[i].clone(),
                                detail: e.to_string(),
                            })?;
                        to_planar(
                            &out,
                            CropBox {
                                x: 0,
                                y: 0,
                                w: s,
                                h: s,
                            },
                            false,
                            scratch,
                        );
                        rng.next_u64()
                    }
                };
                if rest.is_identity() {
                    dst.copy_from_slice(scratch);
                } else {
                    rest.apply(scratch, dst, self.size, rest_key);
                }
            }
        }
        Ok(())
    }
}

impl Dataset for ImageFolder {
    fn len(&self) -> usize {
        self.files.len()
    }

    fn image_shape(&self) -> [usize; 3] {
        [3, self.size, self.size]
    }

    fn classes(&self) -> &[String] {
        &self.classes
    }

    fn normalization(&self) -> Normalize {
        self.normalize.clone()
    }

    /// True once the cache holds every image (from the second epoch on, when the budget
    /// allows): batches are then copies and normalisation, cheaper than a thread hand-off.
    fn fills_from_memory(&self) -> bool {
        self.cached_images.load(Ordering::Acquire) == self.files.len()
    }

    /// Decodes (or takes from the cache) and prepares the batch's images on up to
    /// `threads` threads. A file that fails is left out of the batch (so the batch may
    /// be shorter than `indices`) and recorded in [`ImageFolder::skipped`]; with `strict`
    /// it is the error. A batch left empty is an error.
    fn fill_batch(&self, indices: &[usize], view: View<'_>, batch: &mut Batch) -> Result<()> {
        if let Some(&i) = indices.iter().find(|&&i| i >= self.len()) {
            return Err(Error::Invalid(format!(
                "ImageFolder {}: image {i} requested from a set of {}",
                self.root.display(),
                self.len()
            )));
        }
        let item = 3 * self.size * self.size;
        let mut bytes = vec![0u8; indices.len() * item];
        let outcomes = self.run(indices, item, &mut bytes, &|at, resizer, out| {
            let mut scratch = vec![0u8; item];
            self.prepare(at, view, resizer, out, &mut scratch)
        });
        let done = self.settle(indices, outcomes)?;
        if done.is_empty() && !indices.is_empty() {
            return Err(Error::Format {
                path: self.files[indices[0]].clone(),
                detail: format!(
                    "none of the batch's {} images could be decoded; see the skipped files",
                    indices.len()
                ),
            });
        }
        batch
            .images
            .reshape_to(&[done.len(), 3, self.size, self.size]);
        batch.labels.clear();
        let tables = self.normalize.tables();
        for (dst, &pos) in batch.images.data_mut().chunks_exact_mut(item).zip(&done) {
            apply_tables(&tables, &bytes[pos * item..(pos + 1) * item], dst);
            batch.labels.push(self.labels[indices[pos]]);
        }
        Ok(())
    }
}

/// Decodes `path` and prepares it for evaluation at `size` (see
/// [`crate::data::eval_image`]): planar bytes `[3, size, size]`.
pub fn load_eval_image(
    path: &Path,
    size: usize,
    eval_resize_ratio: f32,
    limits: &DecodeLimits,
) -> Result<Vec<u8>> {
    let image = decode_image(path, limits)?;
    image_io::eval_image(&image, size, eval_resize_ratio).map_err(|e| Error::Format {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })
}
