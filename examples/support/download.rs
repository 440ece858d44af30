//! Fetching the CIFAR-10 *binary version* for the examples.
//!
//! Dev-dependencies used here (examples only, never by the library): `ureq`
//! streams the archive over HTTPS, `md-5` checks it against the published sum,
//! and `flate2` + `tar` unpack the `.tar.gz`.
//!
//! Include it with `#[path = "support/download.rs"] mod download;`.

// Each includer (example, test) uses a different subset of these items.
#![allow(dead_code)]

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use md5::{Digest, Md5};

/// Official download address of the CIFAR-10 binary archive.
pub const CIFAR10_URL: &str = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";

/// MD5 of `cifar-10-binary.tar.gz` as published on <https://www.cs.toronto.edu/~kriz/cifar.html>.
pub const CIFAR10_MD5: &str = "c32a1d4ab5d03f1284b67883e8d87530";

/// The six batch files the examples read (10 000 records of 3073 bytes each).
pub const CIFAR10_FILES: [&str; 6] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
    "test_batch.bin",
];

/// True when all six [`CIFAR10_FILES`] exist as regular files in `dir`.
pub fn has_cifar10(dir: &Path) -> bool {
    CIFAR10_FILES.iter().all(|f| dir.join(f).is_file())
}

/// Short instructions for getting the data by hand, for when the download fails.
pub fn offline_help(dir: &Path) -> String {
    format!(
        "Could not find or download CIFAR-10. Get the \"CIFAR-10 binary version\" from\n  \
         {CIFAR10_URL}\n(MD5 {CIFAR10_MD5}), unpack it and put the files\n  {}\n\
         directly in {} (or point the example at another folder with --data DIR or \
         the CIFAR10_DIR environment variable).",
        CIFAR10_FILES.join(", "),
        dir.display()
    )
}

/// Removes a temporary file or folder when dropped, unless disarmed.
struct TempGuard {
    path: PathBuf,
    armed: bool,
}

impl TempGuard {
    fn new(path: PathBuf) -> Self {
        Self { path, armed: true }
    }
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if self.armed {
            // Best effort: the path may already be gone (renamed or never created).
            let _ = fs::remove_dir_all(&self.path);
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// A fresh, unused sibling path of `dir`: `<parent>/.<name>.<tag>-<pid>-<n>-<nanos>`.
fn sibling_temp(dir: &Path, tag: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let parent = parent_of(dir);
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "cifar10".to_owned());
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    parent.join(format!(".{name}.{tag}-{}-{n}-{nanos}", std::process::id()))
}

/// `dir`'s parent folder, `.` for a bare relative name.
fn parent_of(dir: &Path) -> PathBuf {
    match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Lower-case hex of a byte slice.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Downloads the CIFAR-10 binary archive from `url`, checks its MD5 against
/// `md5_hex`, and unpacks the batch files (and `batches.meta.txt`) directly into `dir`.
///
/// The archive is streamed to a hidden temporary file next to `dir` while its MD5 is
/// computed; `progress(bytes_so_far, content_length)` is called after every chunk.
/// It is then unpacked into a hidden temporary sibling folder, dropping the archive's
/// top folder (`cifar-10-batches-bin/`) from every entry and refusing absolute or `..`
/// paths and links. Only once all six [`CIFAR10_FILES`] are there is the folder renamed
/// to `dir` (or, if `dir` already exists, each file renamed into it). Every temporary
/// file is removed on success and on every error, so `dir` never holds partial data.
///
/// Errors are one-line messages naming the URL, status, path or checksums involved.
pub fn download_cifar10(
    url: &str,
    md5_hex: &str,
    dir: &Path,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<(), String> {
    if dir.exists() && !dir.is_dir() {
        return Err(format!("{} exists and is not a folder", dir.display()));
    }
    let parent = parent_of(dir);
    fs::create_dir_all(&parent)
        .map_err(|e| format!("cannot create folder {}: {e}", parent.display()))?;

    let archive = TempGuard::new(sibling_temp(dir, "download.tar.gz"));
    fetch(url, md5_hex, &archive.path, progress)?;

    let staging = TempGuard::new(sibling_temp(dir, "unpack"));
    unpack(&archive.path, &staging.path)
        .map_err(|e| format!("unpacking archive from {url}: {e}"))?;
    for f in CIFAR10_FILES {
        if !staging.path.join(f).is_file() {
            return Err(format!("archive from {url} does not contain {f}"));
        }
    }

    install(&staging.path, dir)
    // `archive` and `staging` are removed here (a renamed staging folder is simply gone).
}

/// Streams `url` into a new file at `dest`, checking the MD5 on the way.
fn fetch(
    url: &str,
    md5_hex: &str,
    dest: &Path,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<(), String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .timeout_per_read(Some(Duration::from_secs(60)))
        .build()
        .into();
    let response = agent
        .get(url)
        .call()
        .map_err(|e| format!("downloading {url}: {e}"))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!(
            "downloading {url}: HTTP {} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        )
        .trim_end()
        .to_owned());
    }
    let total = response.body().content_length();
    let mut body = response.into_body().into_reader();

    let mut file = File::create_new(dest)
        .map_err(|e| format!("cannot create temporary file {}: {e}", dest.display()))?;
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut done = 0u64;
    progress(0, total);
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("downloading {url} after {done} bytes: {e}")),
        };
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n])
            .map_err(|e| format!("writing {}: {e}", dest.display()))?;
        done += n as u64;
        progress(done, total);
    }
    file.sync_all()
        .map_err(|e| format!("writing {}: {e}", dest.display()))?;

    let got = hex(&hasher.finalize());
    if !got.eq_ignore_ascii_case(md5_hex.trim()) {
        return Err(format!(
            "MD5 mismatch for {url}: expected {}, got {got} ({done} bytes)",
            md5_hex.trim()
        ));
    }
    Ok(())
}

/// Entry path inside the archive minus its top folder, or `None` for the top folder
/// itself. Refuses absolute paths and `..`.
fn strip_top(path: &Path) -> Result<Option<PathBuf>, String> {
    let mut parts = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => parts.push(p),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(format!(
                    "refusing unsafe archive entry {} (absolute or contains ..)",
                    path.display()
                ));
            }
        }
    }
    Ok(match parts.len() {
        0 | 1 => None,
        _ => Some(parts[1..].iter().collect()),
    })
}

/// Unpacks the `.tar.gz` at `archive` into a new folder `out`, top folder stripped.
fn unpack(archive: &Path, out: &Path) -> Result<(), String> {
    let file = File::open(archive).map_err(|e| format!("opening {}: {e}", archive.display()))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(io::BufReader::new(file)));
    fs::create_dir(out).map_err(|e| format!("creating {}: {e}", out.display()))?;
    let entries = tar.entries().map_err(|e| e.to_string())?;
    for entry in entries {
        let mut entry = entry.map_err(|e| e.to_string())?;
        let raw = entry.path().map_err(|e| e.to_string())?.into_owned();
        let Some(rel) = strip_top(&raw)? else {
            continue;
        };
        let target = out.join(&rel);
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            fs::create_dir_all(&target)
                .map_err(|e| format!("creating {}: {e}", target.display()))?;
        } else if kind.is_file() {
            if let Some(p) = target.parent() {
                fs::create_dir_all(p).map_err(|e| format!("creating {}: {e}", p.display()))?;
            }
            let mut f = File::create_new(&target)
                .map_err(|e| format!("creating {}: {e}", target.display()))?;
            io::copy(&mut entry, &mut f)
                .map_err(|e| format!("extracting {}: {e}", raw.display()))?;
        } else if kind.is_symlink() || kind.is_hard_link() {
            return Err(format!("refusing link entry {}", raw.display()));
        }
        // Other entry kinds (fifos, devices...) are not part of CIFAR-10: skipped.
    }
    Ok(())
}

/// Moves the unpacked files from `staging` to `dir`: one rename of the folder when
/// `dir` does not exist yet, else one rename per file into the existing `dir`.
fn install(staging: &Path, dir: &Path) -> Result<(), String> {
    if !dir.exists() {
        return fs::rename(staging, dir)
            .map_err(|e| format!("moving {} to {}: {e}", staging.display(), dir.display()));
    }
    let entries =
        fs::read_dir(staging).map_err(|e| format!("reading {}: {e}", staging.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("reading {}: {e}", staging.display()))?;
        let to = dir.join(entry.file_name());
        fs::rename(entry.path(), &to)
            .map_err(|e| format!("moving {} to {}: {e}", entry.path().display(), to.display()))?;
    }
    Ok(())
}
