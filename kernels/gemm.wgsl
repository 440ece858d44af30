// Tiled GEMM: C[m×n] (=|+=) A[m×k] · B[k×n], strided operands (element (i, j) of A at
// a[i·rsa + j·csa], same for B), C row-major with row stride rsc.
//
// Each workgroup of 16×16 invocations computes a 64×64 tile of C; each invocation a 4×4
// register tile (four vec4 accumulators). The k dimension is walked in steps of 16: the
// 64×16 slice of A and the 16×64 slice of B are staged in workgroup memory as vec4s
// (four rows of A, or four columns of B, per vec4), so the inner loop is four vec4 FMAs
// per two vec4 loads.

struct Params {
    m: u32, n: u32, k: u32,
    rsa: u32, csa: u32, rsb: u32, csb: u32, rsc: u32,
    accumulate: u32, pad0: u32, pad1: u32, pad2: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

const TILE: u32 = 64u;
const KT: u32 = 16u;

// as_[q·16 + r4] = A[row0 + 4·r4 .. +4][k0 + q]; bs[q·16 + c4] = B[k0 + q][col0 + 4·c4 .. +4]
var<workgroup> as_: array<vec4<f32>, 256>;
var<workgroup> bs: array<vec4<f32>, 256>;

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = wg.y * TILE;
    let col0 = wg.x * TILE;
    let tid = lid.y * 16u + lid.x;
    // Staging roles: depth q = tid % 16, group of four rows (A) / columns (B) = tid / 16.
    let q = tid % 16u;
    let g4 = tid / 16u;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < p.k; k0 = k0 + KT) {
        let kg = k0 + q;
        var va = vec4<f32>(0.0);
        var vb = vec4<f32>(0.0);
        if (kg < p.k) {
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
                let idx = r * p.rsc + col;
                if (p.accumulate != 0u) {
                    c[idx] = c[idx] + v[j];
                } else {
                    c[idx] = v[j];
                }
            }
        }
    }
}
