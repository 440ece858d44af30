//! The one seam between layers and kernels.
//!
//! Layers call kernels only through this module, never `crate::cpu` directly. Today it
//! re-exports the CPU kernels; a second backend (the `wgpu` path) slots in here by
//! providing the same functions, and the layers do not change.

pub use crate::cpu::direct::{
    Q_ALIGN as DIRECT_Q_ALIGN, shifted_gemm as direct_shifted_gemm,
    shifted_gemm_bt as direct_shifted_gemm_bt,
    shifted_gemm_bt_lanes as direct_shifted_gemm_bt_lanes,
    shifted_scatter as direct_shifted_scatter,
};
pub use crate::cpu::elementwise::{
    AdamStep, adam_update, add, add_bias_cols, add_bias_rows, add_relu, bias_act_rows,
    crop_bias_act, relu, relu_backward, relu_forward, sgd_update, sum_cols, sum_rows,
};
pub use crate::cpu::gelu::{gelu_backward, gelu_forward};
pub use crate::cpu::gemm::{PackedA, gemm, gemm_packed_a, gemm_packed_a_made};
pub use crate::cpu::im2col::{Im2colPanels, col2im, im2col};
pub use crate::cpu::norm;
pub use crate::cpu::pool::{
    adaptive_avgpool_backward, adaptive_avgpool_forward, avgpool_backward, avgpool_forward,
    maxpool_backward, maxpool_eval, maxpool_forward, maxpool_forward_padded, pooled, pooled_padded,
};
pub use crate::cpu::softmax::softmax_xent;
pub use crate::cpu::spin::hot as hot_pool;
pub use crate::cpu::winograd::conv::{
    Shape as WinoShape, forward_act as wino_forward, forward_strips as wino_forward_strips,
    input_grad as wino_input_grad, strip_plan as wino_strip_plan, weight_grad as wino_weight_grad,
};
pub use crate::cpu::winograd::lanes::LANES as WINO_LANES;
pub use crate::cpu::winograd::{Tile as WinoTile, filter_transform as wino_filter_transform};
pub use crate::cpu::{for_each_chunk, worth_parallel};
