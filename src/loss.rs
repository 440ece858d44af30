//! Softmax cross-entropy, the loss of a classifier.

use crate::backend as k;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Mean softmax cross-entropy over a batch, computed with log-sum-exp so large logits
/// neither overflow nor lose precision. Optional label smoothing.
#[derive(Default)]
pub struct SoftmaxCrossEntropy {
    smoothing: f32,
    grad: Tensor,
}

/// What one evaluation of the loss found.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LossStats {
    /// Mean loss over the batch.
    pub loss: f64,
    /// Items whose arg-max logit is the label.
    pub correct: usize,
}

impl SoftmaxCrossEntropy {
    /// Plain cross-entropy against one-hot targets.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cross-entropy against `(1 − ε)·onehot + ε/classes`.
    pub fn with_label_smoothing(smoothing: f32) -> Self {
        SoftmaxCrossEntropy {
            smoothing,
            grad: Tensor::default(),
        }
    }

    /// `logits[N, classes]`, `labels[N]` → mean loss and hits; keeps `∂loss/∂logits`
    /// (already divided by `N`) for [`SoftmaxCrossEntropy::grad`].
    pub fn forward(&mut self, logits: &Tensor, labels: &[u32]) -> Result<LossStats> {
        self.forward_part(logits, labels, logits.shape().first().copied().unwrap_or(0))
    }

    /// [`SoftmaxCrossEntropy::forward`] on one shard of a larger batch of `total` items
    /// (data-parallel training): the kept gradient is divided by `total`, not by the
    /// shard's `N`, so the shards' gradients add up to the whole batch's. The returned loss
    /// is still the shard's mean. An error when `total` is smaller than the shard.
    pub fn forward_part(
        &mut self,
        logits: &Tensor,
        labels: &[u32],
        total: usize,
    ) -> Result<LossStats> {
        let &[n, classes] = logits.shape() else {
            return Err(Error::Invalid(format!(
                "SoftmaxCrossEntropy: logits must be [N, classes], got {:?}",
                logits.shape()
            )));
        };
        if labels.len() != n {
            return Err(Error::Shape {
                context: "SoftmaxCrossEntropy labels".into(),
                expected: vec![n],
                got: vec![labels.len()],
            });
        }
        if let Some(&bad) = labels.iter().find(|&&l| l as usize >= classes) {
            return Err(Error::Invalid(format!(
                "SoftmaxCrossEntropy: label {bad} out of range for {classes} classes"
            )));
        }
        if n == 0 {
            return Err(Error::Invalid("SoftmaxCrossEntropy: empty batch".into()));
        }
        if total < n {
            return Err(Error::Invalid(format!(
                "SoftmaxCrossEntropy: a shard of {n} items from a batch of {total}"
            )));
        }
        self.grad.reshape_to(&[n, classes]);
        let scale = 1.0 / total as f32;
        let (sum, correct) = k::softmax_xent(
            logits.data(),
            labels,
            classes,
            self.smoothing,
            scale,
            self.grad.data_mut(),
        );
        Ok(LossStats {
            loss: sum / n as f64,
            correct,
        })
    }

    /// `∂(mean loss)/∂logits` from the last [`SoftmaxCrossEntropy::forward`].
    pub fn grad(&self) -> &Tensor {
        &self.grad
    }
}
