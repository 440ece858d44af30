//! The CIFAR-10 binary format: files of 3073-byte records, one label byte (0–9) then a
//! 32×32 image as three 1024-byte planes (R, G, B), row-major.

use super::{Batch, Dataset, Normalize, View, shift_flip};
use crate::error::{Error, Result};
use byteorder::ReadBytesExt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

/// Bytes of one image: 3 planes of 32×32.
pub const IMAGE_BYTES: usize = 3 * 32 * 32;
/// Bytes of one record: label + image.
pub const RECORD_BYTES: usize = 1 + IMAGE_BYTES;
/// The ten class names, by label.
pub const CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// Writes `(v/255 − 0.5)/0.5` of each byte of `src` into `dst`.
fn normalise(src: &[u8], dst: &mut [f32]) {
    crate::cpu::elementwise::bytes_to_floats(src, dst, 0.5, 0.5);
}

/// Which half of the data set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// `data_batch_1.bin` … `data_batch_5.bin`: 50,000 images.
    Train,
    /// `test_batch.bin`: 10,000 images.
    Test,
}

impl Split {
    /// The files of this split, in order.
    pub fn files(self) -> &'static [&'static str] {
        match self {
            Split::Train => &[
                "data_batch_1.bin",
                "data_batch_2.bin",
                "data_batch_3.bin",
                "data_batch_4.bin",
                "data_batch_5.bin",
            ],
            Split::Test => &["test_batch.bin"],
        }
    }
}

/// CIFAR-10 images kept as raw bytes (`[N, 3, 32, 32]`) with their labels.
/// Normalisation to floats happens per mini-batch, see [`Cifar10::fill_batch`].
#[derive(Clone, Debug, Default)]
pub struct Cifar10 {
    images: Vec<u8>,
    labels: Vec<u8>,
}

/// Reads one CIFAR-10 binary file into `(images, labels)`.
///
/// A missing file, a size that is not a whole number of 3073-byte records (a truncated
/// file), an empty file or a label byte above 9 is an error naming the file and record.
pub fn read_batch_file(path: &Path) -> Result<(Vec<u8>, Vec<u8>)> {
    let io = |what, source| Error::Io {
        path: path.to_path_buf(),
        what,
        source,
    };
    let file = std::fs::File::open(path).map_err(|e| io("cannot open CIFAR-10 file", e))?;
    let len = file
        .metadata()
        .map_err(|e| io("cannot stat CIFAR-10 file", e))?
        .len() as usize;
    let format = |detail: String| Error::Format {
        path: path.to_path_buf(),
        detail,
    };
    if len == 0 {
        return Err(format("empty file: no CIFAR-10 records".into()));
    }
    if !len.is_multiple_of(RECORD_BYTES) {
        return Err(format(format!(
            "size {len} bytes is not a multiple of the {RECORD_BYTES}-byte record: \
             record {} is truncated ({} of {RECORD_BYTES} bytes); file damaged or not CIFAR-10 binary",
            len / RECORD_BYTES,
            len % RECORD_BYTES
        )));
    }
    let records = len / RECORD_BYTES;
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let mut images = vec![0u8; records * IMAGE_BYTES];
    let mut labels = Vec::with_capacity(records);
    for (r, image) in images.chunks_exact_mut(IMAGE_BYTES).enumerate() {
        let label = reader
            .read_u8()
            .map_err(|e| io("cannot read CIFAR-10 record from", e))?;
        if label > 9 {
            return Err(format(format!(
                "record {r} (byte offset {}): label byte {label} is not a class 0-9; \
                 not CIFAR-10 binary (CIFAR-100 has 2 label bytes)",
                r * RECORD_BYTES
            )));
        }
        labels.push(label);
        reader
            .read_exact(image)
            .map_err(|e| io("cannot read CIFAR-10 record from", e))?;
    }
    Ok((images, labels))
}

impl Cifar10 {
    /// Where the examples keep CIFAR-10: `$CIFAR10_DIR`, else `data/cifar-10-batches-bin`
    /// under the current folder (the `cifar10` example downloads it there).
    pub fn default_dir() -> PathBuf {
        std::env::var_os("CIFAR10_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("data/cifar-10-batches-bin"))
    }

    /// Loads the first `n` images of a split, reading only the files that holds
    /// (10,000 images each).
    pub fn load_first(dir: &Path, split: Split, n: usize) -> Result<Self> {
        let files = n.div_ceil(10_000).clamp(1, split.files().len());
        let paths: Vec<PathBuf> = split.files()[..files].iter().map(|f| dir.join(f)).collect();
        let mut set = Self::load_files(&paths)?;
        set.truncate(n);
        Ok(set)
    }

    /// Loads a split from a folder holding the official binary files.
    pub fn load(dir: &Path, split: Split) -> Result<Self> {
        let paths: Vec<PathBuf> = split.files().iter().map(|f| dir.join(f)).collect();
        Self::load_files(&paths)
    }

    /// Loads and concatenates the given binary files, in order.
    pub fn load_files(paths: &[PathBuf]) -> Result<Self> {
        let mut set = Cifar10::default();
        for path in paths {
            let (images, labels) = read_batch_file(path)?;
            set.images.extend_from_slice(&images);
            set.labels.extend_from_slice(&labels);
        }
        Ok(set)
    }

    /// Builds a data set from raw `[N, 3, 32, 32]` bytes and labels 0–9.
    pub fn from_raw(images: Vec<u8>, labels: Vec<u8>) -> Result<Self> {
        if images.len() != labels.len() * IMAGE_BYTES {
            return Err(Error::Shape {
                context: "Cifar10::from_raw images".into(),
                expected: vec![labels.len(), 3, 32, 32],
                got: vec![images.len()],
            });
        }
        if let Some(i) = labels.iter().position(|&l| l > 9) {
            return Err(Error::Invalid(format!(
                "Cifar10::from_raw: label {} at {i}",
                labels[i]
            )));
        }
        Ok(Cifar10 { images, labels })
    }

    /// Keeps only the first `n` images.
    pub fn truncate(&mut self, n: usize) {
        let n = n.min(self.len());
        self.labels.truncate(n);
        self.images.truncate(n * IMAGE_BYTES);
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// All labels, in order.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// Raw bytes of image `i`: `[3, 32, 32]`, or `None` past the end.
    pub fn image(&self, i: usize) -> Option<&[u8]> {
        self.images.get(i * IMAGE_BYTES..(i + 1) * IMAGE_BYTES)
    }

    /// Runs `write(image bytes, position, destination)` for each image of the batch,
    /// after checking every index.
    fn fill_batch_with(
        &self,
        indices: &[usize],
        batch: &mut Batch,
        mut write: impl FnMut(&[u8], usize, &mut [f32]),
    ) -> Result<()> {
        if let Some(&i) = indices.iter().find(|&&i| i >= self.len()) {
            return Err(Error::Invalid(format!(
                "CIFAR-10: image {i} requested from a set of {}",
                self.len()
            )));
        }
        batch.images.reshape_to(&[indices.len(), 3, 32, 32]);
        batch.labels.clear();
        for (k, (dst, &i)) in batch
            .images
            .data_mut()
            .chunks_exact_mut(IMAGE_BYTES)
            .zip(indices)
            .enumerate()
        {
            write(&self.images[i * IMAGE_BYTES..(i + 1) * IMAGE_BYTES], k, dst);
            batch.labels.push(u32::from(self.labels[i]));
        }
        Ok(())
    }
}

/// The class names as owned strings, for [`Dataset::classes`].
static CLASS_NAMES: LazyLock<Vec<String>> =
    LazyLock::new(|| CLASSES.iter().map(|c| c.to_string()).collect());

impl Dataset for Cifar10 {
    fn len(&self) -> usize {
        self.labels.len()
    }

    fn in_memory(&self) -> bool {
        true
    }

    fn image_shape(&self) -> [usize; 3] {
        [3, 32, 32]
    }

    fn classes(&self) -> &[String] {
        &CLASS_NAMES
    }

    /// `(v/255 − 0.5)/0.5`: torchvision's `ToTensor` + `Normalize(0.5, 0.5)`.
    fn normalization(&self) -> Normalize {
        Normalize::half()
    }

    fn prefetch(&self, indices: &[usize]) {
        for &i in indices {
            if let Some(image) = self.images.get(i * IMAGE_BYTES..(i + 1) * IMAGE_BYTES) {
                crate::cpu::prefetch(image);
            }
        }
    }

    fn fill_batch(&self, indices: &[usize], view: View<'_>, batch: &mut Batch) -> Result<()> {
        let mut scratch = [0u8; IMAGE_BYTES];
        match view {
            View::Plain => self.fill_batch_with(indices, batch, |src, _, dst| normalise(src, dst)),
            View::Mirrored => self.fill_batch_with(indices, batch, |src, _, dst| {
                shift_flip(src, &mut scratch, 32, (0, 0), true);
                normalise(&scratch, dst)
            }),
            View::Augmented { augment, key } => {
                if augment.resized_crop.is_some() {
                    return Err(Error::Invalid(
                        "CIFAR-10: random-resized crops are for image folders; \
                         use the pad-and-crop augmentation (Augment::standard)"
                            .into(),
                    ));
                }
                self.fill_batch_with(indices, batch, |src, k, dst| {
                    augment.apply(src, &mut scratch, 32, key(k));
                    normalise(&scratch, dst)
                })
            }
        }
    }
}
