//! Augmentation: crops and flips move pixels where they should, draws are seeded.

use ferroconv::data::{Augment, Batch, Cifar10, Dataset, View, augment_key, shift_flip};

fn image(side: usize) -> Vec<u8> {
    (0..3 * side * side).map(|i| (i % 251 + 1) as u8).collect()
}

#[test]
fn shift_and_flip_move_pixels() {
    let side = 5;
    let src = image(side);
    let mut dst = vec![0u8; src.len()];
    shift_flip(&src, &mut dst, side, (0, 0), false);
    assert_eq!(dst, src);
    shift_flip(&src, &mut dst, side, (1, -2), false);
    for c in 0..3 {
        for y in 0..side {
            for x in 0..side {
                let (sy, sx) = (y as isize + 1, x as isize - 2);
                let want = if sy < side as isize && sx >= 0 {
                    src[c * 25 + sy as usize * side + sx as usize]
                } else {
                    0
                };
                assert_eq!(dst[c * 25 + y * side + x], want, "c{c} y{y} x{x}");
            }
        }
    }
    shift_flip(&src, &mut dst, side, (0, 0), true);
    for y in 0..side {
        for x in 0..side {
            assert_eq!(dst[y * side + x], src[y * side + side - 1 - x]);
        }
    }
}

#[test]
fn augment_is_seeded_and_varied() {
    let src = image(32);
    let aug = Augment::standard();
    let (mut a, mut b) = (vec![0u8; src.len()], vec![0u8; src.len()]);
    aug.apply(&src, &mut a, 32, augment_key(1, 2, 3));
    aug.apply(&src, &mut b, 32, augment_key(1, 2, 3));
    assert_eq!(a, b, "same key, same image");
    let distinct: std::collections::HashSet<Vec<u8>> = (0..64)
        .map(|i| {
            let mut d = vec![0u8; src.len()];
            aug.apply(&src, &mut d, 32, augment_key(1, 2, i));
            d
        })
        .collect();
    assert!(
        distinct.len() > 30,
        "64 draws gave only {} distinct images",
        distinct.len()
    );
    assert!(Augment::default().is_identity() && !aug.is_identity());
}

#[test]
fn mirrored_batch_is_the_mirror_image() {
    let data = Cifar10::from_raw(image(32), vec![3]).unwrap();
    let (mut plain, mut mirrored) = (Batch::default(), Batch::default());
    data.fill_batch(&[0], View::Plain, &mut plain).unwrap();
    data.fill_batch(&[0], View::Mirrored, &mut mirrored)
        .unwrap();
    let (x, m) = (&plain.images, &mirrored.images);
    for row in 0..96 {
        for col in 0..32 {
            assert_eq!(x.data()[row * 32 + col], m.data()[row * 32 + 31 - col]);
        }
    }
}
