//! An owned, contiguous f32 tensor in NCHW order.

use crate::error::{Error, Result};

/// A dense f32 tensor: a shape and a row-major buffer of `shape.iter().product()` values.
///
/// Image batches use NCHW order: `[batch, channels, height, width]`.
/// Layers keep their output tensors between steps and [`Tensor::reshape_to`] them,
/// so the buffer's capacity is reused and a training step allocates nothing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tensor {
    shape: Vec<usize>,
    data: Vec<f32>,
}

impl Tensor {
    /// A tensor of zeros.
    pub fn zeros(shape: &[usize]) -> Self {
        Tensor {
            shape: shape.to_vec(),
            data: vec![0.0; shape.iter().product()],
        }
    }

    /// Wraps `data`; errors if its length is not the product of `shape`.
    pub fn from_vec(shape: &[usize], data: Vec<f32>) -> Result<Self> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(Error::Shape {
                context: "Tensor::from_vec".into(),
                expected: shape.to_vec(),
                got: vec![data.len()],
            });
        }
        Ok(Tensor {
            shape: shape.to_vec(),
            data,
        })
    }

    /// The shape, outermost dimension first.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True when the tensor holds no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The values, row-major.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// The values, row-major, mutable.
    pub fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }

    /// Consumes the tensor, returning its buffer.
    pub fn into_vec(self) -> Vec<f32> {
        self.data
    }

    /// Size of the first (batch) dimension; 0 for a scalar.
    pub fn batch(&self) -> usize {
        self.shape.first().copied().unwrap_or(0)
    }

    /// Elements per item of the batch (product of all but the first dimension).
    pub fn item_len(&self) -> usize {
        self.shape.iter().skip(1).product()
    }

    /// Gives the tensor a new shape, reusing the buffer's capacity. Contents are
    /// unspecified afterwards (callers overwrite them); no allocation when it shrinks
    /// or keeps its size.
    pub fn reshape_to(&mut self, shape: &[usize]) {
        if self.shape != shape {
            self.shape.clear();
            self.shape.extend_from_slice(shape);
        }
        self.data.resize(shape.iter().product(), 0.0);
    }

    /// Reinterprets the same values under another shape with the same element count.
    pub fn reshaped(mut self, shape: &[usize]) -> Result<Self> {
        if shape.iter().product::<usize>() != self.data.len() {
            return Err(Error::Shape {
                context: "Tensor::reshaped".into(),
                expected: shape.to_vec(),
                got: self.shape,
            });
        }
        self.shape = shape.to_vec();
        Ok(self)
    }

    /// Errors unless the tensor's shape is `expected`, naming both shapes.
    pub fn expect_shape(&self, context: &str, expected: &[usize]) -> Result<()> {
        if self.shape != expected {
            return Err(Error::Shape {
                context: context.into(),
                expected: expected.to_vec(),
                got: self.shape.clone(),
            });
        }
        Ok(())
    }
}
