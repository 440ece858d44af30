// im2col and col2im for a whole batch, the layout the convolution's GEMMs use.
//
// x is [N, C, H, W]; the column matrix is [R, N·P] with R = C·KH·KW (row r = (c, ki, kj))
// and P = OH·OW (column n·P + oh·OW + ow), so one GEMM W[Cout, R] · cols covers the batch.
//   im2col: cols[r][n·P + p] = x[n][c][oh·S + ki − pad][ow·S + kj − pad]   (0 outside)
//   col2im: dx[n][c][h][w] = Σ over (ki, kj) with h = oh·S + ki − pad, w = ow·S + kj − pad
//                            of dcols[r][n·P + oh·OW + ow]
// col2im gathers (one invocation per input element) rather than scatters, so it needs no
// atomics and every sum has a fixed order.
//
// Both loop grid-stride: the host caps the workgroup count, each invocation takes every
// (workgroups·256)-th element.

struct Geometry {
    channels: u32, height: u32, width: u32, kernel_h: u32,
    kernel_w: u32, stride: u32, padding: u32, out_h: u32,
    out_w: u32, batch: u32, pad0: u32, pad1: u32,
    pad2: u32, pad3: u32, pad4: u32, pad5: u32,
}

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> g: Geometry;

@compute @workgroup_size(256)
fn im2col(@builtin(global_invocation_id) gid: vec3<u32>,
          @builtin(num_workgroups) nwg: vec3<u32>) {
    let p = g.out_h * g.out_w;
    let cols = g.batch * p;
    let kk = g.kernel_h * g.kernel_w;
    let total = g.channels * kk * cols;
    for (var i = gid.x; i < total; i = i + nwg.x * 256u) {
        let row = i / cols;
        let col = i % cols;
        let n = col / p;
        let pi = col % p;
        let oh = pi / g.out_w;
        let ow = pi % g.out_w;
        let c = row / kk;
        let ki = (row % kk) / g.kernel_w;
        let kj = row % g.kernel_w;
        let ih = i32(oh * g.stride + ki) - i32(g.padding);
        let iw = i32(ow * g.stride + kj) - i32(g.padding);
        var v = 0.0;
        if (ih >= 0 && ih < i32(g.height) && iw >= 0 && iw < i32(g.width)) {
            v = src[((n * g.channels + c) * g.height + u32(ih)) * g.width + u32(iw)];
        }
        dst[i] = v;
    }
}

@compute @workgroup_size(256)
fn col2im(@builtin(global_invocation_id) gid: vec3<u32>,
          @builtin(num_workgroups) nwg: vec3<u32>) {
    let p = g.out_h * g.out_w;
    let cols = g.batch * p;
    let hw = g.height * g.width;
    let total = g.batch * g.channels * hw;
    for (var i = gid.x; i < total; i = i + nwg.x * 256u) {
        let n = i / (g.channels * hw);
        let c = (i / hw) % g.channels;
        let h = (i % hw) / g.width;
        let w = i % g.width;
        var acc = 0.0;
        for (var ki = 0u; ki < g.kernel_h; ki = ki + 1u) {
            let th = i32(h + g.padding) - i32(ki);
            if (th < 0 || th % i32(g.stride) != 0) {
                continue;
            }
            let oh = u32(th) / g.stride;
            if (oh >= g.out_h) {
                continue;
            }
            for (var kj = 0u; kj < g.kernel_w; kj = kj + 1u) {
                let tw = i32(w + g.padding) - i32(kj);
                if (tw < 0 || tw % i32(g.stride) != 0) {
                    continue;
                }
                let ow = u32(tw) / g.stride;
                if (ow >= g.out_w) {
                    continue;
                }
                let row = (c * g.kernel_h + ki) * g.kernel_w + kj;
                acc = acc + src[row * cols + n * p + oh * g.out_w + ow];
            }
        }
        dst[i] = acc;
    }
}
