// Max-pooling over K×K windows with stride S, no padding, per plane of H×W.
//
//   forward:  y[pl][oh][ow] = max over the window; argmax[pl][oh][ow] = in-plane index of
//             the winner (first maximum in row-major window order; a NaN wins and stays)
//   backward: dx[pl][i] = Σ of dy[pl][o] over the outputs o whose window holds i and whose
//             winner is i — a gather per input element, so no atomics and a fixed order.

struct Pool {
    planes: u32, height: u32, width: u32, kernel: u32,
    stride: u32, out_h: u32, out_w: u32, pad0: u32,
    pad1: u32, pad2: u32, pad3: u32, pad4: u32,
    pad5: u32, pad6: u32, pad7: u32, pad8: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read_write> argmax_out: array<u32>;
@group(0) @binding(3) var<uniform> p: Pool;
@group(0) @binding(4) var<storage, read> dy: array<f32>;
@group(0) @binding(5) var<storage, read> argmax_in: array<u32>;
@group(0) @binding(6) var<storage, read_write> dx: array<f32>;

fn is_nan(v: f32) -> bool {
    return v != v;
}

@compute @workgroup_size(256)
fn maxpool_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>) {
    let per_plane = p.out_h * p.out_w;
    let total = p.planes * per_plane;
    for (var i = gid.x; i < total; i = i + nwg.x * 256u) {
        let pl = i / per_plane;
        let oh = (i % per_plane) / p.out_w;
        let ow = i % p.out_w;
        let base = pl * p.height * p.width;
        var best = -3.4028235e38;
        var best_nan = false;
        var best_i = oh * p.stride * p.width + ow * p.stride;
        var first = true;
        for (var kh = 0u; kh < p.kernel; kh = kh + 1u) {
            let row = (oh * p.stride + kh) * p.width + ow * p.stride;
            for (var kw = 0u; kw < p.kernel; kw = kw + 1u) {
                let v = x[base + row + kw];
                let take = (!best_nan) && (first || v > best || is_nan(v));
                if (take) {
                    best = v;
                    best_nan = is_nan(v);
                    best_i = row + kw;
                }
                first = false;
            }
        }
        y[i] = best;
        argmax_out[i] = best_i;
    }
}

@compute @workgroup_size(256)
fn maxpool_backward(@builtin(global_invocation_id) gid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>) {
    let hw = p.height * p.width;
    let total = p.planes * hw;
    let per_plane = p.out_h * p.out_w;
    for (var i = gid.x; i < total; i = i + nwg.x * 256u) {
        let pl = i / hw;
        let idx = i % hw;
        let h = idx / p.width;
        let w = idx % p.width;
        // Outputs whose window holds row h: oh·S ≤ h < oh·S + K.
        var oh_lo = 0u;
        if (h + 1u > p.kernel) {
            oh_lo = (h + 1u - p.kernel + p.stride - 1u) / p.stride;
        }
        let oh_hi = min(h / p.stride + 1u, p.out_h);
        var ow_lo = 0u;
        if (w + 1u > p.kernel) {
            ow_lo = (w + 1u - p.kernel + p.stride - 1u) / p.stride;
        }
        let ow_hi = min(w / p.stride + 1u, p.out_w);
        var acc = 0.0;
        for (var oh = oh_lo; oh < oh_hi; oh = oh + 1u) {
            for (var ow = ow_lo; ow < ow_hi; ow = ow + 1u) {
                let o = pl * per_plane + oh * p.out_w + ow;
                if (argmax_in[o] == idx) {
                    acc = acc + dy[o];
                }
            }
        }
        dx[i] = acc;
    }
}
