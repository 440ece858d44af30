//! Softmax cross-entropy over a batch of logits, forward and gradient in one pass.

/// For `logits[n][classes]` and integer `labels[n]`, returns the summed loss over the
/// batch and the number of rows whose arg-max equals the label, and writes
/// `grad[n][classes] = (softmax(logits) − target) · scale`.
///
/// The target is one-hot, or with label smoothing `ε`: `(1 − ε)·onehot + ε/classes`.
/// Stable: `log softmax(z)_j = z_j − m − log Σ exp(z_i − m)` with `m = max z`.
pub fn softmax_xent(
    logits: &[f32],
    labels: &[u32],
    classes: usize,
    smoothing: f32,
    scale: f32,
    grad: &mut [f32],
) -> (f64, usize) {
    let mut loss = 0.0f64;
    let mut correct = 0;
    let off = smoothing / classes as f32;
    for ((z, g), &label) in logits
        .chunks_exact(classes)
        .zip(grad.chunks_exact_mut(classes))
        .zip(labels)
    {
        let label = label as usize;
        let (mut m, mut arg) = (z[0], 0);
        for (j, &v) in z.iter().enumerate().skip(1) {
            if v > m {
                m = v;
                arg = j;
            }
        }
        correct += usize::from(arg == label);
        let mut sum = 0.0f32;
        for (gj, &zj) in g.iter_mut().zip(z) {
            *gj = (zj - m).exp();
            sum += *gj;
        }
        // loss = −Σ_j target_j · log p_j, log p_j = z_j − m − log Σ; in f64 so that even
        // logits near f32::MAX give a finite loss.
        let lse = m as f64 + (sum as f64).ln();
        let mut row_loss = -(1.0 - smoothing as f64) * (z[label] as f64 - lse);
        if smoothing != 0.0 {
            let sum_logp: f64 = z.iter().map(|&zj| zj as f64 - lse).sum();
            row_loss -= off as f64 * sum_logp;
        }
        loss += row_loss;
        let inv = 1.0 / sum;
        for (j, gj) in g.iter_mut().enumerate() {
            let target = if j == label {
                1.0 - smoothing + off
            } else {
                off
            };
            *gj = (*gj * inv - target) * scale;
        }
    }
    (loss, correct)
}
