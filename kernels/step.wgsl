// The values that change every training step, written by the host once per step
// (`Gpu::write_step`) and read by optim.wgsl (learning rate, first-step flag, Adam's bias
// corrections) and softmax.wgsl (the stats slot). Prepended to both files when compiled.

struct Step {
    lr: f32, first: u32, slot: u32, bias1: f32,
    bias2: f32, pad0: u32, pad1: u32, pad2: u32,
    pad3: u32, pad4: u32, pad5: u32, pad6: u32,
    pad7: u32, pad8: u32, pad9: u32, pad10: u32,
}
