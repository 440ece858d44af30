//! GELU: `y = x·Φ(x)` with `Φ` the standard normal CDF (PyTorch's exact form);
//! `dy/dx = Φ(x) + x·φ(x)`.

use super::{Layer, Mode, Spec};
use crate::backend::for_each_chunk;
use crate::tensor::Tensor;

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

/// Gaussian error linear unit, element-wise; any shape.
#[derive(Default)]
pub struct Gelu {
    input: Tensor,
    output: Tensor,
    grad_input: Tensor,
}

impl Gelu {
    /// A new GELU layer.
    pub fn new() -> Self {
        Self::default()
    }
}

/// `erf(x)`, from Abramowitz & Stegun 7.1.26 refined: |error| < 1.2e-7, computed in f64.
fn erf(x: f64) -> f64 {
    // W. J. Cody's rational approximation is overkill here; this continued form uses
    // erfc(z) ≈ t·exp(−z² + P(t)) (Numerical Recipes' erfcc), fractional error < 1.2e-7.
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * poly.exp();
    if x >= 0.0 { 1.0 - erfc } else { erfc - 1.0 }
}

/// Standard normal CDF `Φ(x) = (1 + erf(x/√2))/2`.
fn phi_cdf(x: f32) -> f32 {
    (0.5 * (1.0 + erf(x as f64 / std::f64::consts::SQRT_2))) as f32
}

impl Layer for Gelu {
    fn spec(&self) -> Spec {
        Spec::new("GELU")
    }

    fn describe(&self) -> String {
        "GELU".into()
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        Ok(input.to_vec())
    }

    fn forward(&mut self, x: &Tensor, mode: Mode) -> &Tensor {
        self.output.reshape_to(x.shape());
        for_each_chunk(self.output.data_mut(), CHUNK, |i, y| {
            for (y, &v) in y.iter_mut().zip(&x.data()[i * CHUNK..]) {
                *y = v * phi_cdf(v);
            }
        });
        if mode == Mode::Train {
            self.input.reshape_to(x.shape());
            self.input.data_mut().copy_from_slice(x.data());
        }
        &self.output
    }

    fn backward(&mut self, grad_out: &Tensor, _need_input_grad: bool) -> &Tensor {
        self.grad_input.reshape_to(grad_out.shape());
        let inv_sqrt_2pi = 1.0 / (2.0 * std::f32::consts::PI).sqrt();
        let (dy, xs) = (grad_out.data(), self.input.data());
        for_each_chunk(self.grad_input.data_mut(), CHUNK, |i, dx| {
            let it = dx.iter_mut().zip(&dy[i * CHUNK..]).zip(&xs[i * CHUNK..]);
            for ((d, &g), &x) in it {
                let pdf = inv_sqrt_2pi * (-0.5 * x * x).exp();
                *d = g * (phi_cdf(x) + x * pdf);
            }
        });
        &self.grad_input
    }
}
