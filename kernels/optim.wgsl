// Parameter updates, PyTorch's rules (the same as src/cpu/elementwise.rs).
//
//   sgd:  g = grad + wd·w;  buf = μ·buf + g  (buf = g on the first step);
//         w −= lr · (nesterov ? g + μ·buf : buf)          (μ = 0: w −= lr·g)
//   adam: g = grad + wd·w (Adam) or w ·= 1 − lr·wd (AdamW);
//         m = β₁m + (1−β₁)g;  v = β₂v + (1−β₂)g²;
//         w −= (lr/(1−β₁ᵗ)) · m / (√v/√(1−β₂ᵗ) + ε)
//
// `Update` holds a parameter's fixed hyper-parameters; `Step` (from step.wgsl) the values
// that change each step (learning rate, first-step flag, bias corrections).

struct Update {
    len: u32, momentum: f32, weight_decay: f32, nesterov: u32,
    beta1: f32, beta2: f32, eps: f32, decoupled: u32,
    pad0: u32, pad1: u32, pad2: u32, pad3: u32,
    pad4: u32, pad5: u32, pad6: u32, pad7: u32,
}

@group(0) @binding(0) var<storage, read_write> w: array<f32>;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> state1: array<f32>;
@group(0) @binding(3) var<uniform> u: Update;
@group(0) @binding(4) var<uniform> step: Step;
@group(0) @binding(5) var<storage, read_write> state2: array<f32>;

@compute @workgroup_size(256)
fn sgd(@builtin(global_invocation_id) gid: vec3<u32>,
       @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = gid.x; i < u.len; i = i + nwg.x * 256u) {
        var g = grad[i];
        if (u.weight_decay != 0.0) {
            g = g + u.weight_decay * w[i];
        }
        var s = g;
        if (u.momentum != 0.0) {
            var b = g;
            if (step.first == 0u) {
                b = u.momentum * state1[i] + g;
            }
            state1[i] = b;
            s = b;
            if (u.nesterov != 0u) {
                s = g + u.momentum * b;
            }
        }
        w[i] = w[i] - step.lr * s;
    }
}

@compute @workgroup_size(256)
fn adam(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let lr_t = step.lr / step.bias1;
    let sqrt_b2 = sqrt(step.bias2);
    for (var i = gid.x; i < u.len; i = i + nwg.x * 256u) {
        var wi = w[i];
        var g = grad[i];
        if (u.decoupled != 0u) {
            wi = wi * (1.0 - step.lr * u.weight_decay);
        } else {
            g = g + u.weight_decay * wi;
        }
        let m = u.beta1 * state1[i] + (1.0 - u.beta1) * g;
        let v = u.beta2 * state2[i] + (1.0 - u.beta2) * g * g;
        state1[i] = m;
        state2[i] = v;
        w[i] = wi - lr_t * m / (sqrt(v) / sqrt_b2 + u.eps);
    }
}
