//! `data::ImageFolder` and its decoders on small files: the committed fixtures (made by
//! `tests/fixtures/images/make_fixtures.py`), PNGs of every colour type and depth, the
//! layout rules, bad input (corrupt files, decompression bombs, empty classes, hidden
//! files, a symlink loop), the holdout, the normalisation pass and determinism.

mod common;

use ferroconv::Error;
use ferroconv::data::{
    Augment, Batch, Dataset, DecodeLimits, ImageFolder, ImageFolderOptions, Normalize, Rgb8, View,
    augment_key, decode_image, eval_image,
};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/images")
        .join(name)
}

fn decode(path: &Path) -> Rgb8 {
    decode_image(path, &DecodeLimits::default())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Mean absolute difference of two same-size images, per byte.
fn mean_abs_diff(a: &Rgb8, b: &Rgb8) -> f64 {
    assert_eq!((a.width(), a.height()), (b.width(), b.height()));
    let sum: u64 = a
        .pixels()
        .iter()
        .zip(b.pixels())
        .map(|(&x, &y)| u64::from(x.abs_diff(y)))
        .sum();
    sum as f64 / a.pixels().len() as f64
}

fn pixel(img: &Rgb8, x: u32, y: u32) -> [u8; 3] {
    let i = 3 * (y * img.width() + x) as usize;
    img.pixels()[i..i + 3].try_into().unwrap()
}

#[test]
fn fixtures_decode_upright_and_close_to_the_reference() {
    let reference = decode(&fixture("reference.png"));
    assert_eq!((reference.width(), reference.height()), (48, 32));
    for (name, tolerance) in [
        ("baseline_420.jpg", 4.0),
        ("baseline_444.jpg", 3.0),
        ("progressive.jpg", 4.0),
        ("cmyk.jpg", 6.0),
        ("exif_rotated.jpg", 3.0),
        ("palette.png", 6.0),
        ("rgb16.png", 0.0),
    ] {
        let img = decode(&fixture(name));
        let diff = mean_abs_diff(&img, &reference);
        assert!(
            diff <= tolerance,
            "{name}: mean |Δ| {diff:.2} > {tolerance}"
        );
        // The red block is at the top left, the blue one at the bottom right: an unrotated
        // or mirrored decode fails here.
        let [r, g, b] = pixel(&img, 3, 3);
        assert!(
            r > 180 && g < 80 && b < 80,
            "{name}: top left is {r},{g},{b}"
        );
        let [r, g, b] = pixel(&img, 44, 28);
        assert!(
            b > 180 && r < 80 && g < 80,
            "{name}: bottom right is {r},{g},{b}"
        );
    }
    // 16-bit samples v·257 come back as v exactly.
    assert_eq!(decode(&fixture("rgb16.png")), reference);
    // Greyscale: three equal channels, close to the reference's luma.
    let grey = decode(&fixture("grey.jpg"));
    let mut diff = 0.0;
    for (g, r) in grey.pixels().chunks(3).zip(reference.pixels().chunks(3)) {
        assert!(g[0] == g[1] && g[1] == g[2]);
        let luma = 0.299 * f64::from(r[0]) + 0.587 * f64::from(r[1]) + 0.114 * f64::from(r[2]);
        diff += (f64::from(g[0]) - luma).abs();
    }
    assert!(diff / (48.0 * 32.0) < 3.0, "grey vs luma {}", diff / 1536.0);
}

/// Writes a `w × h` PNG of `color` at `depth` bits from raw `data` (rows packed as PNG).
fn write_png(
    path: &Path,
    (w, h): (u32, u32),
    color: png::ColorType,
    depth: png::BitDepth,
    data: &[u8],
    palette: Option<Vec<u8>>,
) {
    let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut enc = png::Encoder::new(file, w, h);
    enc.set_color(color);
    enc.set_depth(depth);
    if let Some(p) = palette {
        enc.set_palette(p);
    }
    enc.write_header().unwrap().write_image_data(data).unwrap();
}

#[test]
fn png_of_every_colour_type_and_depth() {
    use png::{BitDepth as D, ColorType as C};
    let dir = common::temp_dir("png-types");
    // A 4×1 image: each case says its bytes and the RGB it must decode to.
    let grey = |v: [u8; 4]| v.iter().flat_map(|&g| [g, g, g]).collect::<Vec<u8>>();
    /// Name, colour type, depth, packed rows, palette, the RGB expected.
    type Case = (&'static str, C, D, Vec<u8>, Option<Vec<u8>>, Vec<u8>);
    let cases: Vec<Case> = vec![
        (
            "g1",
            C::Grayscale,
            D::One,
            vec![0b1010_0000],
            None,
            grey([255, 0, 255, 0]),
        ),
        (
            "g2",
            C::Grayscale,
            D::Two,
            vec![0b0001_1011],
            None,
            grey([0, 85, 170, 255]),
        ),
        (
            "g4",
            C::Grayscale,
            D::Four,
            vec![0x0F, 0x51],
            None,
            grey([0, 255, 85, 17]),
        ),
        (
            "g8",
            C::Grayscale,
            D::Eight,
            vec![0, 9, 200, 255],
            None,
            grey([0, 9, 200, 255]),
        ),
        (
            "g16",
            C::Grayscale,
            D::Sixteen,
            vec![0, 0, 9, 9, 200, 200, 255, 255],
            None,
            grey([0, 9, 200, 255]),
        ),
        (
            "ga8",
            C::GrayscaleAlpha,
            D::Eight,
            vec![7, 0, 8, 50, 9, 100, 10, 255],
            None,
            grey([7, 8, 9, 10]),
        ),
        (
            "ga16",
            C::GrayscaleAlpha,
            D::Sixteen,
            vec![7, 7, 0, 0, 8, 8, 1, 1, 9, 9, 2, 2, 10, 10, 3, 3],
            None,
            grey([7, 8, 9, 10]),
        ),
        (
            "rgb8",
            C::Rgb,
            D::Eight,
            (1..=12).collect(),
            None,
            (1..=12).collect(),
        ),
        (
            "rgb16",
            C::Rgb,
            D::Sixteen,
            (1..=12).flat_map(|v| [v, v]).collect(),
            None,
            (1..=12).collect(),
        ),
        (
            "rgba8",
            C::Rgba,
            D::Eight,
            (1..=16).collect(),
            None,
            (1..=16).filter(|v| v % 4 != 0).collect(),
        ),
        (
            "rgba16",
            C::Rgba,
            D::Sixteen,
            (1..=16).flat_map(|v| [v, v]).collect(),
            None,
            (1..=16).filter(|v| v % 4 != 0).collect(),
        ),
    ];
    let palette: Vec<u8> = vec![10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120];
    let pal = |i: [usize; 4]| {
        i.iter()
            .flat_map(|&k| palette[3 * k..3 * k + 3].to_vec())
            .collect()
    };
    let mut cases = cases;
    cases.extend([
        (
            "p1",
            C::Indexed,
            D::One,
            vec![0b0110_0000],
            Some(palette[..6].to_vec()),
            pal([0, 1, 1, 0]),
        ),
        (
            "p2",
            C::Indexed,
            D::Two,
            vec![0b1110_0100],
            Some(palette.clone()),
            pal([3, 2, 1, 0]),
        ),
        (
            "p4",
            C::Indexed,
            D::Four,
            vec![0x01, 0x23],
            Some(palette.clone()),
            pal([0, 1, 2, 3]),
        ),
        (
            "p8",
            C::Indexed,
            D::Eight,
            vec![3, 3, 0, 1],
            Some(palette.clone()),
            pal([3, 3, 0, 1]),
        ),
    ]);
    for (name, color, depth, data, palette, want) in cases {
        let path = dir.join(format!("{name}.png"));
        write_png(&path, (4, 1), color, depth, &data, palette);
        let img = decode(&path);
        assert_eq!((img.width(), img.height()), (4, 1), "{name}");
        assert_eq!(img.pixels(), &want[..], "{name}");
    }
}

/// A 4×4 RGB PNG filled with `rgb`.
fn solid_png(path: &Path, rgb: [u8; 3]) {
    let data: Vec<u8> = (0..16).flat_map(|_| rgb).collect();
    write_png(
        path,
        (4, 4),
        png::ColorType::Rgb,
        png::BitDepth::Eight,
        &data,
        None,
    );
}

/// A PNG whose header declares `w × h` pixels, with a few bytes of image data.
fn bomb_png(path: &Path, w: u32, h: u32) {
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend((data.len() as u32).to_be_bytes());
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        out.extend(kind);
        out.extend(data);
        out.extend(crc.sum().to_be_bytes());
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend(w.to_be_bytes());
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(
        &mut out,
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    );
    chunk(&mut out, b"IEND", &[]);
    std::fs::write(path, out).unwrap();
}

/// A copy of a fixture JPEG whose frame header declares `w × h`.
fn bomb_jpeg(path: &Path, w: u16, h: u16) {
    let mut bytes = std::fs::read(fixture("baseline_444.jpg")).unwrap();
    let sof = bytes.windows(2).position(|m| m == [0xFF, 0xC0]).unwrap();
    bytes[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
    bytes[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
    std::fs::write(path, bytes).unwrap();
}

fn opts(size: usize) -> ImageFolderOptions {
    ImageFolderOptions {
        size,
        val_fraction: 0.0,
        normalize: Some(Normalize::half()),
        ..ImageFolderOptions::default()
    }
}

fn names(list: &[(PathBuf, String)]) -> Vec<String> {
    let mut out: Vec<String> = list
        .iter()
        .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

#[test]
fn bad_files_are_skipped_and_named_or_stop_a_strict_run() {
    let root = common::temp_dir("bad-files");
    let (a, b) = (root.join("a"), root.join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    solid_png(&a.join("good.png"), [10, 20, 30]);
    solid_png(&b.join("good.PNG"), [200, 100, 0]);
    std::fs::write(a.join("empty.jpg"), b"").unwrap();
    let jpeg = std::fs::read(fixture("baseline_420.jpg")).unwrap();
    std::fs::write(a.join("truncated.jpg"), &jpeg[..jpeg.len() / 3]).unwrap();
    std::fs::write(b.join("text.png"), b"not an image at all").unwrap();
    bomb_png(&b.join("bomb.png"), 100_000, 100_000);
    bomb_jpeg(&a.join("bomb.jpg"), 60_000, 60_000);
    // Ignored without a word: hidden files and folders, and files of other kinds.
    std::fs::write(a.join(".hidden.png"), b"junk").unwrap();
    std::fs::create_dir_all(a.join(".thumbs")).unwrap();
    std::fs::write(a.join(".thumbs/x.png"), b"junk").unwrap();
    std::fs::write(a.join("notes.txt"), b"hello").unwrap();
    std::fs::create_dir_all(root.join(".git")).unwrap();

    let set = ImageFolder::open(&root, &opts(4)).unwrap().train;
    assert_eq!(set.classes(), ["a", "b"]);
    assert_eq!(set.len(), 7, "{:?}", set.files());
    let mut batch = Batch::default();
    let all: Vec<usize> = (0..set.len()).collect();
    set.fill_batch(&all, View::Plain, &mut batch).unwrap();
    assert_eq!(batch.images.shape(), &[2, 3, 4, 4]);
    assert_eq!(batch.labels, vec![0, 1]);
    // The good images' first bytes: (10/255 − 0.5)/0.5 and (200/255 − 0.5)/0.5.
    assert_eq!(batch.images.data()[0], (10.0f32 / 255.0 - 0.5) / 0.5);
    assert_eq!(batch.images.data()[48], (200.0f32 / 255.0 - 0.5) / 0.5);
    let skipped = set.skipped();
    assert_eq!(
        names(&skipped),
        [
            "bomb.jpg",
            "bomb.png",
            "empty.jpg",
            "text.png",
            "truncated.jpg"
        ]
    );
    let why = |n: &str| &skipped.iter().find(|(p, _)| p.ends_with(n)).unwrap().1;
    assert!(why("empty.jpg").contains("0 bytes"), "{}", why("empty.jpg"));
    assert!(why("bomb.png").contains("pixels"), "{}", why("bomb.png"));
    assert!(why("bomb.jpg").contains("pixels"), "{}", why("bomb.jpg"));
    assert!(
        why("text.png").contains("not a JPEG or PNG"),
        "{}",
        why("text.png")
    );
    // Each is reported once, however often it is met.
    set.fill_batch(&all, View::Mirrored, &mut batch).unwrap();
    assert_eq!(set.skipped().len(), 5);
    // A batch of bad files only is an error naming one.
    let bad: Vec<usize> = (0..set.len())
        .filter(|&i| !set.files()[i].ends_with("good.png") && !set.files()[i].ends_with("good.PNG"))
        .collect();
    let err = set.fill_batch(&bad, View::Plain, &mut batch).unwrap_err();
    assert!(err.to_string().contains("none of the batch"), "{err}");

    // Strict: the first bad file in batch order is the error, named with its path.
    let strict = ImageFolderOptions {
        strict: true,
        ..opts(4)
    };
    let set = ImageFolder::open(&root, &strict).unwrap().train;
    let err = set.fill_batch(&all, View::Plain, &mut batch).unwrap_err();
    match &err {
        Error::Format { path, .. } => assert!(path.ends_with("a/bomb.jpg"), "{err}"),
        other => panic!("expected a format error, got {other}"),
    }
}

#[test]
fn bad_layouts_are_errors_naming_the_folder() {
    let root = common::temp_dir("layouts");
    // No such folder.
    let err = ImageFolder::open(&root.join("missing"), &opts(4))
        .err()
        .unwrap();
    assert!(
        matches!(err, Error::Io { .. }) && err.to_string().contains("missing"),
        "{err}"
    );
    // Files but no class folders.
    solid_png(&root.join("loose.png"), [1, 2, 3]);
    let err = ImageFolder::open(&root, &opts(4)).err().unwrap();
    assert!(err.to_string().contains("no class folders"), "{err}");
    // An empty class (a hidden file and a text file do not count).
    std::fs::create_dir_all(root.join("cats")).unwrap();
    std::fs::create_dir_all(root.join("dogs")).unwrap();
    solid_png(&root.join("cats/1.png"), [1, 2, 3]);
    std::fs::write(root.join("dogs/.x.png"), b"junk").unwrap();
    std::fs::write(root.join("dogs/readme.txt"), b"junk").unwrap();
    let err = ImageFolder::open(&root, &opts(4)).err().unwrap();
    match &err {
        Error::Format { path, detail } => {
            assert!(
                path.ends_with("dogs") && detail.contains("no JPEG or PNG"),
                "{err}"
            )
        }
        other => panic!("expected a format error, got {other}"),
    }
    // Bad options.
    solid_png(&root.join("dogs/1.png"), [1, 2, 3]);
    for bad in [
        ImageFolderOptions { size: 0, ..opts(4) },
        ImageFolderOptions {
            val_fraction: 1.0,
            ..opts(4)
        },
        ImageFolderOptions {
            eval_resize_ratio: 1.5,
            ..opts(4)
        },
        ImageFolderOptions {
            normalize: Some(Normalize::new(&[0.5], &[0.5]).unwrap()),
            ..opts(4)
        },
    ] {
        assert!(ImageFolder::open(&root, &bad).is_err());
    }
    assert!(ImageFolder::open(&root, &opts(4)).is_ok());
}

#[cfg(unix)]
#[test]
fn a_symlink_loop_does_not_hang() {
    use std::os::unix::fs::symlink;
    let root = common::temp_dir("symlinks");
    let a = root.join("a");
    std::fs::create_dir_all(a.join("sub")).unwrap();
    solid_png(&a.join("sub/1.png"), [5, 5, 5]);
    symlink(&a, a.join("sub/up")).unwrap(); // a/sub/up → a: a loop
    symlink(a.join("self.png"), a.join("self.png")).unwrap(); // a link to itself
    symlink(root.join("nowhere.png"), a.join("dangling.png")).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let r = root.clone();
    std::thread::spawn(move || {
        let _ = tx.send(
            ImageFolder::open(&r, &opts(4)).map(|s| (s.train.files().to_vec(), s.train.skipped())),
        );
    });
    let (files, skipped) = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("opening a folder with a symlink loop did not finish")
        .unwrap();
    assert_eq!(files, vec![a.join("sub/1.png")]);
    assert_eq!(names(&skipped), ["dangling.png", "self.png"]);
    let strict = ImageFolderOptions {
        strict: true,
        ..opts(4)
    };
    assert!(ImageFolder::open(&root, &strict).is_err());
}

/// `root/<split>/<class>/<k>.png` for classes a, b, c with `per_class` images each, the
/// image's colour encoding its class and number.
fn write_classes(dir: &Path, per_class: usize) {
    for (c, class) in ["a", "b", "c"].iter().enumerate() {
        std::fs::create_dir_all(dir.join(class)).unwrap();
        for k in 0..per_class {
            solid_png(
                &dir.join(class).join(format!("{k:03}.png")),
                [c as u8 * 50, k as u8, 7],
            );
        }
    }
}

#[test]
fn train_and_val_folders_or_a_stratified_seeded_holdout() {
    let root = common::temp_dir("splits");
    write_classes(&root.join("train"), 4);
    write_classes(&root.join("val"), 2);
    let s = ImageFolder::open(&root, &opts(4)).unwrap();
    assert_eq!((s.train.len(), s.val.len()), (12, 6));
    assert!(
        s.val
            .files()
            .iter()
            .all(|p| p.starts_with(root.join("val")))
    );
    assert_eq!(s.val.labels(), [0, 0, 1, 1, 2, 2]);
    // A validation class the training set lacks is an error naming it.
    std::fs::create_dir_all(root.join("val/zebra")).unwrap();
    solid_png(&root.join("val/zebra/1.png"), [0, 0, 0]);
    let err = ImageFolder::open(&root, &opts(4)).err().unwrap();
    assert!(err.to_string().contains("zebra"), "{err}");

    let flat = common::temp_dir("holdout");
    write_classes(&flat, 10);
    let holdout = |seed| {
        let o = ImageFolderOptions {
            val_fraction: 0.3,
            seed,
            ..opts(4)
        };
        let s = ImageFolder::open(&flat, &o).unwrap();
        (
            s.train.files().to_vec(),
            s.val.files().to_vec(),
            s.val.labels().to_vec(),
        )
    };
    let (train, val, labels) = holdout(1);
    assert_eq!((train.len(), val.len()), (21, 9));
    assert_eq!(labels, [0, 0, 0, 1, 1, 1, 2, 2, 2]); // 3 of each class's 10
    let mut all: Vec<PathBuf> = train.iter().chain(&val).cloned().collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 30);
    assert_eq!(holdout(1), (train.clone(), val.clone(), labels.clone()));
    assert_ne!(holdout(2).1, val, "another seed holds out other images");
}

#[test]
fn computed_normalisation_is_the_training_images_mean_and_deviation() {
    let root = common::temp_dir("stats");
    for (class, rgb) in [("a", [0, 100, 200]), ("b", [255, 100, 50])] {
        std::fs::create_dir_all(root.join(class)).unwrap();
        for k in 0..3 {
            solid_png(&root.join(class).join(format!("{k}.png")), rgb);
        }
    }
    let o = ImageFolderOptions {
        normalize: None,
        ..opts(4)
    };
    let n = ImageFolder::open(&root, &o).unwrap().train.normalization();
    let close = |a: f32, b: f64| (f64::from(a) - b).abs() < 1e-6;
    assert!(close(n.mean[0], 0.5) && close(n.std[0], 0.5), "{n:?}");
    assert!(
        close(n.mean[1], 100.0 / 255.0) && n.std[1] == 1.0,
        "no spread → 1: {n:?}"
    );
    assert!(
        close(n.mean[2], 125.0 / 255.0) && close(n.std[2], 75.0 / 255.0),
        "{n:?}"
    );
}

#[test]
fn eval_resizes_the_shorter_side_then_centre_crops() {
    // 100×50: left half red, right half blue. At size 32 with ratio 0.8 the base is
    // 80×40 and the crop its columns 24..56: 16 red columns, then 16 blue.
    let mut px = Vec::new();
    for _y in 0..50 {
        for x in 0..100 {
            px.extend(if x < 50 { [255, 0, 0] } else { [0, 0, 255] });
        }
    }
    let img = Rgb8::new(100, 50, px).unwrap();
    let out = eval_image(&img, 32, 0.8).unwrap();
    assert_eq!(out.len(), 3 * 32 * 32);
    for y in 0..32 {
        for x in 0..32 {
            let (r, b) = (out[y * 32 + x], out[2 * 1024 + y * 32 + x]);
            if x < 15 {
                assert!(r == 255 && b == 0, "({x},{y}) {r} {b}");
            } else if x > 16 {
                assert!(r == 0 && b == 255, "({x},{y}) {r} {b}");
            }
        }
    }
    assert!(eval_image(&img, 32, 0.0).is_err());
}

#[test]
fn batches_do_not_depend_on_threads_or_cache() {
    let root = common::temp_dir("determinism");
    for class in ["a", "b"] {
        std::fs::create_dir_all(root.join(class)).unwrap();
    }
    std::fs::copy(fixture("baseline_420.jpg"), root.join("a/1.jpg")).unwrap();
    std::fs::copy(fixture("progressive.jpg"), root.join("a/2.jpg")).unwrap();
    std::fs::copy(fixture("exif_rotated.jpg"), root.join("b/1.jpg")).unwrap();
    std::fs::copy(fixture("palette.png"), root.join("b/2.png")).unwrap();
    std::fs::copy(fixture("cmyk.jpg"), root.join("b/3.jpg")).unwrap();
    let augment = Augment::photos();
    let key = |k: usize| augment_key(3, 1, k as u64);
    let batches = |threads, cache_bytes| {
        let o = ImageFolderOptions {
            threads,
            cache_bytes,
            ..opts(24)
        };
        let set = ImageFolder::open(&root, &o).unwrap().train;
        assert!(
            !set.fills_from_memory(),
            "nothing is cached before the first batch"
        );
        let mut out = Vec::new();
        for epoch in 0..2 {
            let mut batch = Batch::default();
            let view = View::Augmented {
                augment: &augment,
                key: &key,
            };
            set.fill_batch(&[4, 0, 2, 1, 3], view, &mut batch).unwrap();
            assert_eq!(batch.images.shape(), &[5, 3, 24, 24]);
            assert_eq!(batch.labels, vec![1, 0, 1, 0, 1]);
            out.push(
                batch
                    .images
                    .data()
                    .iter()
                    .map(|v| v.to_bits())
                    .collect::<Vec<_>>(),
            );
            if epoch == 1 {
                // Bases are 36×24×3 = 2592 bytes.
                assert_eq!(set.cached_bytes(), (cache_bytes / 2592).min(5) * 2592);
                // Inline batches once every image is cached, a loader thread before.
                assert_eq!(set.fills_from_memory(), cache_bytes >= 5 * 2592);
            }
        }
        assert_eq!(out[0], out[1], "the same keys give the same crops");
        out.remove(0)
    };
    let reference = batches(1, 0);
    assert_eq!(batches(3, 0), reference);
    assert_eq!(batches(2, 1 << 20), reference);
    assert_eq!(batches(1, 6000), reference, "a cache that holds two");
    // Another key draws other crops.
    let o = ImageFolderOptions {
        threads: 1,
        ..opts(24)
    };
    let set = ImageFolder::open(&root, &o).unwrap().train;
    let other = |k: usize| augment_key(4, 1, k as u64);
    let mut batch = Batch::default();
    let view = View::Augmented {
        augment: &augment,
        key: &other,
    };
    set.fill_batch(&[4, 0, 2, 1, 3], view, &mut batch).unwrap();
    let bits: Vec<u32> = batch.images.data().iter().map(|v| v.to_bits()).collect();
    assert_ne!(bits, reference);
}
