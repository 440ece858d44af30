//! Finding the images of a folder laid out as torchvision's `ImageFolder` expects,
//! `root/<class>/**/<image>`, and splitting it into training and validation sets.
//!
//! Rules:
//! - classes are the non-hidden sub-folders of the root, sorted by name; a class's images
//!   are the `.jpg`, `.jpeg` and `.png` files (any case) anywhere below its folder, sorted
//!   by path; hidden entries (a name starting with `.`) and other files are ignored;
//! - symbolic links are followed (as torchvision's `followlinks=True`), but a folder
//!   reached twice within a class (a link loop, or two links to one folder) is walked once, and an entry
//!   whose target cannot be read (a dangling link, a link to itself) is reported and
//!   skipped;
//! - a root with no class folders, or a class folder with no images, is an error naming
//!   the folder.

use crate::error::{Error, Result};
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use rand::seq::SliceRandom;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// The file name endings taken as images (compared without case).
const EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

/// Deepest folder nesting walked below a class folder.
const MAX_DEPTH: usize = 64;

/// The images of one split: paths sorted within each class, classes in order.
#[derive(Debug, Default)]
pub(crate) struct Listing {
    /// Image paths.
    pub files: Vec<PathBuf>,
    /// Label of each path.
    pub labels: Vec<u32>,
    /// Entries that could not be read, and why.
    pub skipped: Vec<(PathBuf, String)>,
}

fn io_error(path: &Path, what: &'static str, source: std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        what,
        source,
    }
}

fn is_hidden(name: &std::ffi::OsStr) -> bool {
    name.as_encoded_bytes().first() == Some(&b'.')
}

fn is_image_name(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// The entries of `dir`, sorted by name, hidden ones left out.
fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io_error(dir, "cannot list folder", e))? {
        let entry = entry.map_err(|e| io_error(dir, "cannot list folder", e))?;
        if !is_hidden(&entry.file_name()) {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

/// The class folders of `root`: its non-hidden sub-folders, sorted by name.
pub(crate) fn class_folders(root: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for path in sorted_entries(root)? {
        if std::fs::metadata(&path).is_ok_and(|m| m.is_dir()) {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            out.push((name.into_owned(), path));
        }
    }
    if out.is_empty() {
        return Err(Error::Format {
            path: root.to_path_buf(),
            detail: "no class folders: expected root/<class>/<image>".into(),
        });
    }
    Ok(out)
}

/// Appends the images below `dir` to `files`, walking each real folder once.
fn walk(
    dir: &Path,
    depth: usize,
    seen: &mut HashSet<PathBuf>,
    files: &mut Vec<PathBuf>,
    skipped: &mut Vec<(PathBuf, String)>,
) -> Result<()> {
    let real = std::fs::canonicalize(dir).map_err(|e| io_error(dir, "cannot resolve folder", e))?;
    if !seen.insert(real) {
        return Ok(()); // walked already: a link loop, or a second link to one folder
    }
    if depth > MAX_DEPTH {
        skipped.push((
            dir.to_path_buf(),
            format!("folder nested deeper than {MAX_DEPTH} levels, not walked"),
        ));
        return Ok(());
    }
    for path in sorted_entries(dir)? {
        match std::fs::metadata(&path) {
            Err(e) => skipped.push((path, format!("cannot read: {e}"))),
            Ok(m) if m.is_dir() => walk(&path, depth + 1, seen, files, skipped)?,
            Ok(m) if m.is_file() && is_image_name(&path) => files.push(path),
            Ok(_) => {}
        }
    }
    Ok(())
}

/// Lists the images of every class folder of `root`, labelled by the position of the
/// folder's name in `classes`. A folder whose name is not among `classes` is an error, so
/// is one holding no images.
pub(crate) fn list(root: &Path, classes: &[String]) -> Result<Listing> {
    let mut listing = Listing::default();
    for (name, dir) in class_folders(root)? {
        let Some(label) = classes.iter().position(|c| *c == name) else {
            return Err(Error::Format {
                path: dir,
                detail: format!(
                    "class folder not among the training classes {}",
                    classes.join(", ")
                ),
            });
        };
        let before = listing.files.len();
        walk(
            &dir,
            0,
            &mut HashSet::new(),
            &mut listing.files,
            &mut listing.skipped,
        )?;
        let added = listing.files.len() - before;
        if added == 0 {
            return Err(Error::Format {
                path: dir,
                detail: "class folder holds no JPEG or PNG images".into(),
            });
        }
        listing
            .labels
            .extend(std::iter::repeat_n(label as u32, added));
    }
    Ok(listing)
}

/// Splits `all` into (train, validation), stratified by class: of each class's `n`
/// images, `round(n · val_fraction)` drawn by a generator seeded from `(seed, class)` go
/// to validation, at most `n − 1` so every class keeps a training image. Both keep the
/// listing's order.
pub(crate) fn holdout(all: Listing, val_fraction: f32, seed: u64) -> (Listing, Listing) {
    let mut in_val = vec![false; all.files.len()];
    let mut start = 0;
    while start < all.labels.len() {
        let label = all.labels[start];
        let end = start + all.labels[start..].partition_point(|&l| l == label);
        let n = end - start;
        let take = ((n as f64 * f64::from(val_fraction)).round() as usize).min(n - 1);
        let mixed = seed
            ^ u64::from(label)
                .wrapping_add(1)
                .wrapping_mul(0xD6E8_FEB8_6659_FD93);
        let mut order: Vec<usize> = (start..end).collect();
        order.shuffle(&mut Xoshiro256PlusPlus::seed_from_u64(mixed));
        for &i in &order[..take] {
            in_val[i] = true;
        }
        start = end;
    }
    let (mut train, mut val) = (Listing::default(), Listing::default());
    train.skipped = all.skipped;
    for ((file, label), v) in all.files.into_iter().zip(all.labels).zip(in_val) {
        let side = if v { &mut val } else { &mut train };
        side.files.push(file);
        side.labels.push(label);
    }
    (train, val)
}

/// Where the splits come from: `root/train` and `root/val` (or `root/test`) when both
/// are folders; otherwise all of `root`, or `root/train` alone when it is the only split
/// folder, to be split by [`holdout`].
pub(crate) fn split_folders(root: &Path) -> (PathBuf, Option<PathBuf>) {
    let is_dir = |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.is_dir());
    let train = root.join("train");
    if !is_dir(&train) {
        return (root.to_path_buf(), None);
    }
    let val = ["val", "test"]
        .iter()
        .map(|n| root.join(n))
        .find(|p| is_dir(p));
    (train, val)
}
