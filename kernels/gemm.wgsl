// GEMM: C[m×n] (=|+=) A[m×k] · B[k×n], strided operands (element (i, j) of A at
// a[i·rsa + j·csa], same for B), C row-major with row stride rsc. Three entry points:
//
// - `tiled`: each workgroup of 16×16 invocations computes a 64×64 tile of C, each
//   invocation a 4×4 register tile (four vec4 accumulators). k is walked in steps of 16:
//   the 64×16 slice of A and the 16×64 slice of B are staged in workgroup memory as vec4s
//   (four rows of A, or four columns of B, per vec4), so the inner loop is four vec4 FMAs
//   per two vec4 loads. For large m and n.
// - `narrow`: each invocation computes one column of a 16-row block of C (16 scalar
//   accumulators); consecutive invocations take consecutive columns, so B is read along
//   its rows and A's values are the same for the whole workgroup. For small m (a
//   convolution's output channels, a small batch), where a 64-row tile would be mostly
//   padding.
// - split k (both): workgroup z takes k in [z·k_chunk, (z+1)·k_chunk) and, when there is
//   more than one split, writes its partial product to c[z·m·n + i·n + j]; `reduce` then
//   sums the partials in split order into the real C. For long k and few tiles (weight
//   gradients: k = batch·positions), which would otherwise leave most of a GPU idle.

struct Params {
    m: u32, n: u32, k: u32, rsa: u32,
    csa: u32, rsb: u32, csb: u32, rsc: u32,
    accumulate: u32, k_chunk: u32, splits: u32, pad0: u32,
    pad1: u32, pad2: u32, pad3: u32, pad4: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
@group(0) @binding(4) var<storage, read> partial: array<f32>;

const TILE: u32 = 64u;
const KT: u32 = 16u;

/// Stores one result: into the partial slab of split `z`, or into C.
fn store(z: u32, r: u32, col: u32, v: f32) {
    if (p.splits > 1u) {
        c[(z * p.m + r) * p.n + col] = v;
    } else {
        let idx = r * p.rsc + col;
        if (p.accumulate != 0u) {
            c[idx] = c[idx] + v;
        } else {
            c[idx] = v;
        }
    }
}

// as_[q·16 + r4] = A[row0 + 4·r4 .. +4][k0 + q]; bs[q·16 + c4] = B[k0 + q][col0 + 4·c4 .. +4]
var<workgroup> as_: array<vec4<f32>, 256>;
var<workgroup> bs: array<vec4<f32>, 256>;

@compute @workgroup_size(16, 16)
fn tiled(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = wg.y * TILE;
    let col0 = wg.x * TILE;
    let k_begin = wg.z * p.k_chunk;
    let k_end = min(p.k, k_begin + p.k_chunk);
    let tid = lid.y * 16u + lid.x;
    // Staging roles: depth q = tid % 16, group of four rows (A) / columns (B) = tid / 16.
    let q = tid % 16u;
    let g4 = tid / 16u;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var k0 = k_begin; k0 < k_end; k0 = k0 + KT) {
        let kg = k0 + q;
        var va = vec4<f32>(0.0);
        var vb = vec4<f32>(0.0);
        if (kg < k_end) {
            for (var i = 0u; i < 4u; i = i + 1u) {
                let r = row0 + 4u * g4 + i;
                if (r < p.m) {
                    va[i] = a[r * p.rsa + kg * p.csa];
                }
                let col = col0 + 4u * g4 + i;
                if (col < p.n) {
                    vb[i] = b[kg * p.rsb + col * p.csb];
                }
            }
        }
        as_[q * 16u + g4] = va;
        bs[q * 16u + g4] = vb;
        workgroupBarrier();
        for (var t = 0u; t < KT; t = t + 1u) {
            let av = as_[t * 16u + lid.y];
            let bv = bs[t * 16u + lid.x];
            acc0 = fma(vec4<f32>(av.x), bv, acc0);
            acc1 = fma(vec4<f32>(av.y), bv, acc1);
            acc2 = fma(vec4<f32>(av.z), bv, acc2);
            acc3 = fma(vec4<f32>(av.w), bv, acc3);
        }
        workgroupBarrier();
    }
    let accs = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var i = 0u; i < 4u; i = i + 1u) {
        let r = row0 + 4u * lid.y + i;
        if (r >= p.m) {
            break;
        }
        let v = accs[i];
        for (var j = 0u; j < 4u; j = j + 1u) {
            let col = col0 + 4u * lid.x + j;
            if (col < p.n) {
                store(wg.z, r, col, v[j]);
            }
        }
    }
}

const ROWS: u32 = 16u;

@compute @workgroup_size(256)
fn narrow(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>) {
    let col = gid.x;
    if (col >= p.n) {
        return;
    }
    let row0 = wg.y * ROWS;
    let rows = min(ROWS, p.m - row0);
    let k_begin = wg.z * p.k_chunk;
    let k_end = min(p.k, k_begin + p.k_chunk);
    var acc: array<f32, 16>;
    for (var i = 0u; i < ROWS; i = i + 1u) {
        acc[i] = 0.0;
    }
    // A constant trip count lets the compiler unroll and keep acc in registers.
    for (var kk = k_begin; kk < k_end; kk = kk + 1u) {
        let bv = b[kk * p.rsb + col * p.csb];
        for (var i = 0u; i < ROWS; i = i + 1u) {
            if (i < rows) {
                acc[i] = fma(a[(row0 + i) * p.rsa + kk * p.csa], bv, acc[i]);
            }
        }
    }
    for (var i = 0u; i < rows; i = i + 1u) {
        store(wg.z, row0 + i, col, acc[i]);
    }
}

@compute @workgroup_size(256)
fn reduce(@builtin(global_invocation_id) gid: vec3<u32>,
          @builtin(num_workgroups) nwg: vec3<u32>) {
    let mn = p.m * p.n;
    for (var i = gid.x; i < mn; i = i + nwg.x * 256u) {
        var s = 0.0;
        for (var z = 0u; z < p.splits; z = z + 1u) {
            s = s + partial[z * mn + i];
        }
        let idx = (i / p.n) * p.rsc + i % p.n;
        if (p.accumulate != 0u) {
            c[idx] = c[idx] + s;
        } else {
            c[idx] = s;
        }
    }
}
