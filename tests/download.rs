//! Tests for the CIFAR-10 downloader used by the examples, against a tiny HTTP
//! server on 127.0.0.1 inside the test. Nothing else is ever contacted.

#[path = "../examples/support/download.rs"]
mod download;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use download::{CIFAR10_FILES, CIFAR10_URL, download_cifar10, has_cifar10, offline_help};
use md5::{Digest, Md5};

/// Serves `routes` over HTTP/1.1 on 127.0.0.1 for at most `max_requests` requests or
/// five seconds, whichever comes first; unknown paths get a 404.
fn serve(routes: HashMap<String, Vec<u8>>, max_requests: usize) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut served = 0;
        while served < max_requests && Instant::now() < deadline {
            let mut stream = match listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
                Err(_) => break,
            };
            served += 1;
            stream.set_nonblocking(false).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(2)))
                .unwrap();
            // Read the request head.
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                match stream.read(&mut byte) {
                    Ok(1) => head.push(byte[0]),
                    _ => break,
                }
            }
            let head = String::from_utf8_lossy(&head);
            let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
            let (status, body) = match routes.get(&path) {
                Some(b) => ("200 OK", b.as_slice()),
                None => ("404 Not Found", &b"not found"[..]),
            };
            let header = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/octet-stream\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(header.as_bytes());
            let _ = stream.write_all(body);
            let _ = stream.flush();
        }
    });
    (addr, handle)
}

/// A unique scratch folder under the system temp dir, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let p = std::env::temp_dir().join(format!(
            "ferroconv-dl-{tag}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }

    /// Sorted names of everything in the scratch folder.
    fn listing(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Contents of the fake CIFAR-10: (name, bytes), `records` records per batch file.
fn fake_files(records: usize) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = CIFAR10_FILES
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let mut data = Vec::with_capacity(records * 3073);
            for r in 0..records {
                data.push(((i + r) % 10) as u8);
                data.extend((0..3072).map(|p| ((p * 7 + r * 13 + i) % 256) as u8));
            }
            (name.to_string(), data)
        })
        .collect();
    files.push((
        "batches.meta.txt".into(),
        b"airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n".to_vec(),
    ));
    files
}

/// Header for a regular file of `len` bytes.
fn file_header(len: usize) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_size(len as u64);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    h
}

/// A `.tar.gz` laid out like the real archive, with optional raw (unchecked) extra
/// entry names to smuggle in.
fn build_archive(files: &[(String, Vec<u8>)], raw_extra: &[&str]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    b.append_data(&mut dir, "cifar-10-batches-bin/", std::io::empty())
        .unwrap();
    for (name, data) in files {
        let mut h = file_header(data.len());
        b.append_data(
            &mut h,
            format!("cifar-10-batches-bin/{name}"),
            data.as_slice(),
        )
        .unwrap();
    }
    for name in raw_extra {
        // Write the name bytes directly: `set_path` would (rightly) refuse them.
        let data = b"gotcha";
        let mut h = file_header(data.len());
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
        b.append(&h, &data[..]).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap()
}

fn md5_hex(data: &[u8]) -> String {
    Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn downloads_and_unpacks_byte_identical() {
    let files = fake_files(3);
    let archive = build_archive(&files, &[]);
    let sum = md5_hex(&archive);
    let (addr, server) = serve(
        HashMap::from([("/cifar-10-binary.tar.gz".to_owned(), archive.clone())]),
        1,
    );
    let scratch = Scratch::new("ok");
    let dir = scratch.0.join("data").join("cifar10");
    assert!(!has_cifar10(&dir));

    let mut last = (0, None);
    let url = format!("http://{addr}/cifar-10-binary.tar.gz");
    download_cifar10(&url, &sum.to_uppercase(), &dir, &mut |d, t| last = (d, t)).unwrap();
    server.join().unwrap();

    assert_eq!(last, (archive.len() as u64, Some(archive.len() as u64)));
    assert!(has_cifar10(&dir));
    for (name, data) in &files {
        assert_eq!(&std::fs::read(dir.join(name)).unwrap(), data, "{name}");
    }
    // Nothing else in `dir`, no temp files beside it.
    let mut inside: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    inside.sort();
    let mut expected: Vec<String> = files.iter().map(|(n, _)| n.clone()).collect();
    expected.sort();
    assert_eq!(inside, expected);
    assert_eq!(scratch.listing(), ["data"]);
    let beside: Vec<_> = std::fs::read_dir(scratch.0.join("data")).unwrap().collect();
    assert_eq!(beside.len(), 1);
}

#[test]
fn unpacks_into_existing_dir() {
    let files = fake_files(1);
    let archive = build_archive(&files, &[]);
    let sum = md5_hex(&archive);
    let (addr, server) = serve(HashMap::from([("/a.tgz".to_owned(), archive)]), 1);
    let scratch = Scratch::new("existing");
    let dir = scratch.0.join("cifar");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("keep.txt"), b"mine").unwrap();

    download_cifar10(&format!("http://{addr}/a.tgz"), &sum, &dir, &mut |_, _| {}).unwrap();
    server.join().unwrap();

    assert!(has_cifar10(&dir));
    assert_eq!(std::fs::read(dir.join("keep.txt")).unwrap(), b"mine");
    assert_eq!(scratch.listing(), ["cifar"]);
}

#[test]
fn wrong_md5_is_refused_and_cleaned_up() {
    let archive = build_archive(&fake_files(1), &[]);
    let good = md5_hex(&archive);
    let bad = "0123456789abcdef0123456789abcdef";
    let (addr, server) = serve(HashMap::from([("/a.tgz".to_owned(), archive)]), 1);
    let scratch = Scratch::new("md5");
    let dir = scratch.0.join("cifar");

    let err =
        download_cifar10(&format!("http://{addr}/a.tgz"), bad, &dir, &mut |_, _| {}).unwrap_err();
    server.join().unwrap();

    assert!(err.contains(bad) && err.contains(&good), "{err}");
    assert!(!err.contains('\n'), "{err}");
    assert!(!dir.exists());
    assert!(scratch.listing().is_empty(), "{:?}", scratch.listing());
}

#[test]
fn http_404_and_unreachable_fail_cleanly() {
    let (addr, server) = serve(HashMap::new(), 1);
    let scratch = Scratch::new("404");
    let dir = scratch.0.join("cifar");
    let url = format!("http://{addr}/missing.tar.gz");
    let err = download_cifar10(&url, "00", &dir, &mut |_, _| {}).unwrap_err();
    server.join().unwrap();
    assert!(err.contains("404") && err.contains(&url), "{err}");
    assert!(scratch.listing().is_empty(), "{:?}", scratch.listing());

    // A port that was just free: connection refused.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/a.tgz");
    let err = download_cifar10(&url, "00", &dir, &mut |_, _| {}).unwrap_err();
    assert!(err.contains(&url), "{err}");
    assert!(!err.contains('\n'), "{err}");
    assert!(scratch.listing().is_empty(), "{:?}", scratch.listing());
}

#[test]
fn path_traversal_is_refused() {
    for evil in ["../evil", "cifar-10-batches-bin/../../evil", "/tmp/evil"] {
        let archive = build_archive(&fake_files(1), &[evil]);
        let sum = md5_hex(&archive);
        let (addr, server) = serve(HashMap::from([("/a.tgz".to_owned(), archive)]), 1);
        let scratch = Scratch::new("evil");
        let dir = scratch.0.join("sub").join("cifar");

        let err = download_cifar10(&format!("http://{addr}/a.tgz"), &sum, &dir, &mut |_, _| {})
            .unwrap_err();
        server.join().unwrap();

        assert!(err.contains("unsafe"), "{evil}: {err}");
        assert!(!dir.exists());
        assert_eq!(scratch.listing(), ["sub"]);
        assert_eq!(std::fs::read_dir(scratch.0.join("sub")).unwrap().count(), 0);
    }
}

#[test]
fn offline_help_names_url_and_dir() {
    let dir = Path::new("/some/where/cifar-10");
    let help = offline_help(dir);
    assert!(help.contains(CIFAR10_URL), "{help}");
    assert!(help.contains("/some/where/cifar-10"), "{help}");
    assert!(help.contains("CIFAR-10 binary version"), "{help}");
    assert!(
        help.contains("CIFAR10_DIR") && help.contains("--data"),
        "{help}"
    );
    for f in CIFAR10_FILES {
        assert!(help.contains(f), "{help}");
    }
    assert_eq!(download::CIFAR10_MD5.len(), 32);
}
