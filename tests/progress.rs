//! What the user sees while training: a live progress line on a terminal, plain per-epoch
//! lines when the output is not a terminal. The terminal is a pseudo-terminal made by
//! `script` (util-linux).

use std::path::Path;
use std::process::Command;

fn example() -> String {
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("examples/cifar10");
    assert!(
        bin.is_file(),
        "{} not built (cargo test builds examples)",
        bin.display()
    );
    bin.display().to_string()
}

fn data_dir() -> Option<String> {
    match std::env::var("CIFAR10_DIR") {
        Ok(d) => Some(d),
        Err(_) if std::env::var_os("FERROCONV_SKIP_DATA_TESTS").is_some() => {
            eprintln!("SKIPPED: FERROCONV_SKIP_DATA_TESTS is set");
            None
        }
        Err(_) => panic!("set CIFAR10_DIR to the CIFAR-10 binary folder (e.g. ../shared/cifar10)"),
    }
}

#[test]
fn progress_bar_on_a_terminal_plain_lines_otherwise() {
    let Some(data) = data_dir() else { return };
    let args = format!(
        "{} --data {data} --limit-train 3000 --limit-test 100 --epochs 1",
        example()
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
