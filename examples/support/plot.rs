//! A hand-written SVG report: loss and accuracy per epoch, and the confusion matrix as a
//! heat map. No plotting dependency.
#![allow(dead_code)]

use std::fmt::Write;

/// One epoch's figures for the curves.
pub struct EpochPoint {
    /// Epoch number (from 1).
    pub epoch: u64,
    /// Mean training loss.
    pub train_loss: f64,
    /// Training accuracy, 0..1.
    pub train_acc: f64,
    /// Test accuracy, 0..1.
    pub test_acc: f64,
}

/// An SVG with the loss curve (left), the accuracy curves (middle) and the confusion
/// matrix `confusion[true][predicted]` (right), labelled with `classes`.
pub fn render(points: &[EpochPoint], confusion: &[Vec<u32>], classes: &[&str]) -> String {
    let (w, h) = (1320.0, 440.0);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
"#
    );
    let max_loss = points
        .iter()
        .map(|p| p.train_loss)
        .fold(0.0, f64::max)
        .max(1e-9);
    let loss: Vec<(u64, f64)> = points.iter().map(|p| (p.epoch, p.train_loss)).collect();
    chart(
        &mut s,
        (40.0, 40.0),
        "training loss",
        &[("#d62728", "train loss", &loss)],
        max_loss,
    );
    let tr: Vec<(u64, f64)> = points.iter().map(|p| (p.epoch, p.train_acc)).collect();
    let te: Vec<(u64, f64)> = points.iter().map(|p| (p.epoch, p.test_acc)).collect();
    chart(
        &mut s,
        (460.0, 40.0),
        "accuracy",
        &[("#1f77b4", "train", &tr), ("#2ca02c", "test", &te)],
        1.0,
    );
    heatmap(&mut s, (930.0, 40.0), confusion, classes);
    s.push_str("</svg>\n");
    s
}

/// One curve: colour, label, `(epoch, value)` points.
type Series<'a> = (&'a str, &'a str, &'a [(u64, f64)]);

/// A line chart in a 360×320 box at `origin`, y from 0 to `y_max`.
fn chart(s: &mut String, (x0, y0): (f64, f64), title: &str, series: &[Series<'_>], y_max: f64) {
    let (w, h) = (360.0, 320.0);
    let n = series
        .iter()
        .flat_map(|(_, _, p)| p.iter().map(|q| q.0))
        .max()
        .unwrap_or(1)
        .max(2);
    let px = |e: u64| x0 + (e as f64 - 1.0) / (n as f64 - 1.0) * w;
    let py = |v: f64| y0 + h - v / y_max * h;
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle" font-size="14">{title}</text>"#,
        x0 + w / 2.0,
        y0 - 15.0
    );
    let _ = writeln!(
        s,
        r##"<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="#999"/>"##
    );
    for k in 0..=4 {
        let v = y_max * k as f64 / 4.0;
        let _ = writeln!(
            s,
            r##"<line x1="{x0}" x2="{}" y1="{y}" y2="{y}" stroke="#eee"/><text x="{}" y="{}" text-anchor="end">{v:.2}</text>"##,
            x0 + w,
            x0 - 4.0,
            py(v) + 4.0,
            y = py(v)
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">epoch (1–{n})</text>"#,
        x0 + w / 2.0,
        y0 + h + 20.0
    );
    for (i, (color, label, pts)) in series.iter().enumerate() {
        let coords: Vec<String> = pts
            .iter()
            .map(|&(e, v)| format!("{:.1},{:.1}", px(e), py(v)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
            coords.join(" ")
        );
        for &(e, v) in pts.iter() {
            let _ = writeln!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"/>"#,
                px(e),
                py(v)
            );
        }
        let ly = y0 + 15.0 + 16.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{ly}" fill="{color}">{label}</text>"#,
            x0 + w - 80.0
        );
    }
}

/// The confusion matrix as a heat map: row = true class, column = predicted; each cell
/// shaded by its share of the row.
fn heatmap(s: &mut String, (x0, y0): (f64, f64), m: &[Vec<u32>], classes: &[&str]) {
    let cell = 32.0;
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle" font-size="14">confusion (rows: true, columns: predicted)</text>"#,
        x0 + cell * m.len() as f64 / 2.0 + 40.0,
        y0 - 15.0
    );
    for (i, row) in m.iter().enumerate() {
        let total = row.iter().sum::<u32>().max(1) as f64;
        let label = classes.get(i).copied().unwrap_or("?");
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end" font-size="10">{label}</text>"#,
            x0 + 68.0,
            y0 + cell * (i as f64 + 0.6)
        );
        for (j, &count) in row.iter().enumerate() {
            let share = count as f64 / total;
            let shade = (255.0 * (1.0 - share)).round() as u8;
            let (x, y) = (x0 + 72.0 + cell * j as f64, y0 + cell * i as f64);
            let text = if share > 0.5 { "white" } else { "black" };
            let _ = writeln!(
                s,
                r##"<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="rgb({shade},{shade},255)" stroke="#fff"/><text x="{}" y="{}" text-anchor="middle" font-size="9" fill="{text}">{count}</text>"##,
                x + cell / 2.0,
                y + cell * 0.6
            );
        }
    }
}
