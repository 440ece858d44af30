//! What the user sees while training: a live progress line on a terminal, plain per-epoch
//! lines when the output is not a terminal. The terminal is a pseudo-terminal made by
//! `script` (util-linux).

mod common;
use common::*;

use std::process::Command;

#[test]
fn progress_bar_on_a_terminal_plain_lines_otherwise() {
    let Some(data) = data_dir() else { return };
    let args = format!(
        "{} --data {} --limit-train 3000 --limit-test 100 --epochs 1",
        example_binary("cifar10").display(),
        data.display()
    );
    // Through a pseudo-terminal: stderr is a terminal, so the progress line is drawn.
    let out = Command::new("script")
        .args(["-qefc", &args, "/dev/null"])
        .output()
        .expect("`script` (util-linux) is needed for this test");
    let tty = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{tty}");
    assert!(
        tty.contains("epoch 1 [") && tty.contains("img/s ETA") && tty.contains("loss"),
        "{tty}"
    );
    // Piped: no progress line, the per-epoch line only.
    let out = Command::new("sh")
        .args(["-c", &format!("{args} 2>&1 | cat")])
        .output()
        .unwrap();
    let piped = String::from_utf8_lossy(&out.stdout);
    assert!(!piped.contains("img/s ETA"), "{piped}");
    assert!(
        piped.lines().any(|l| l.trim_start().starts_with("1 ")),
        "{piped}"
    );
}
