//! The SVG report of the `cifar10` example: curves and the confusion heat map.

#[path = "../examples/support/plot.rs"]
mod plot;

#[test]
fn svg_has_curves_and_a_cell_per_confusion_entry() {
    let points: Vec<plot::EpochPoint> = (1..=4)
        .map(|e| plot::EpochPoint {
            epoch: e,
            train_loss: 2.0 / e as f64,
            train_acc: 0.2 * e as f64,
            test_acc: 0.15 * e as f64,
        })
        .collect();
    let confusion: Vec<Vec<u32>> = (0..10)
        .map(|i| (0..10).map(|j| if i == j { 90 } else { 1 }).collect())
        .collect();
    let svg = plot::render(&points, &confusion, &ferroconv::data::CLASSES);
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert_eq!(
        svg.matches("<polyline").count(),
        3,
        "loss, train and test accuracy"
    );
    assert_eq!(svg.matches("<circle").count(), 12);
    assert_eq!(
        svg.matches(r#"width="32""#).count(),
        100,
        "one cell per entry"
    );
    assert!(svg.contains(">airplane<") && svg.contains(">truck<"));
    // The diagonal is the darkest shade (90 of 99 in its row).
    assert!(svg.contains("rgb(23,23,255)"), "diagonal shade");
}
