// Element-wise passes and the small reductions around the GEMMs.
//
//   relu_forward:  y = x where x >= 0 or NaN, else 0 (NaN propagates, as on the CPU)
//   relu_backward: dx = dy where y > 0, else 0
//   add_bias:      y[i] += bias[(i / inner) % count]  (inner = P for NCHW, 1 for [N, F])
//   permute:       y[b][a][k] = x[a][b][k] for x [A, B, inner] (swaps the two outer axes:
//                  the convolution's [Cout, N·P] ↔ NCHW)
//   sum_reduce:    out[j] = Σ_{i < len} x[j·sj + i·si], one workgroup per j, a tree sum
//                  in workgroup memory (bias gradients)
//
// The per-element passes loop grid-stride, like im2col.

struct Params {
    len: u32, inner: u32, count: u32, outer_a: u32,
    outer_b: u32, sj: u32, si: u32, pad0: u32,
    pad1: u32, pad2: u32, pad3: u32, pad4: u32,
    pad5: u32, pad6: u32, pad7: u32, pad8: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;
@group(0) @binding(3) var<storage, read> y_in: array<f32>;
@group(0) @binding(4) var<storage, read> dy: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;
@group(0) @binding(6) var<storage, read> bias: array<f32>;

@compute @workgroup_size(256)
fn relu_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = gid.x; i < p.len; i = i + nwg.x * 256u) {
        let v = x[i];
        y[i] = select(v, 0.0, v < 0.0);
    }
}

@compute @workgroup_size(256)
fn relu_backward(@builtin(global_invocation_id) gid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = gid.x; i < p.len; i = i + nwg.x * 256u) {
        dx[i] = select(0.0, dy[i], y_in[i] > 0.0);
    }
}

@compute @workgroup_size(256)
fn add_bias(@builtin(global_invocation_id) gid: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = gid.x; i < p.len; i = i + nwg.x * 256u) {
        y[i] = y[i] + bias[(i / p.inner) % p.count];
    }
}

@compute @workgroup_size(256)
fn permute(@builtin(global_invocation_id) gid: vec3<u32>,
           @builtin(num_workgroups) nwg: vec3<u32>) {
    // i indexes the output [B, A, inner].
    for (var i = gid.x; i < p.len; i = i + nwg.x * 256u) {
        let k = i % p.inner;
        let a = (i / p.inner) % p.outer_a;
        let b = i / (p.inner * p.outer_a);
        y[i] = x[(a * p.outer_b + b) * p.inner + k];
    }
}

var<workgroup> partial: array<f32, 256>;

@compute @workgroup_size(256)
fn sum_reduce(@builtin(workgroup_id) wg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
    let j = wg.x;
    var acc = 0.0;
    for (var i = lid.x; i < p.len; i = i + 256u) {
        acc = acc + x[j * p.sj + i * p.si];
    }
    partial[lid.x] = acc;
    workgroupBarrier();
    for (var half = 128u; half > 0u; half = half / 2u) {
        if (lid.x < half) {
            partial[lid.x] = partial[lid.x] + partial[lid.x + half];
        }
        workgroupBarrier();
    }
    if (lid.x == 0u) {
        y[j] = partial[0];
    }
}
