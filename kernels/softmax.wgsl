// Softmax cross-entropy over a batch of logits [N, classes], one workgroup for the batch.
//
// Each invocation takes rows lid, lid + 256, …: with m = max z, Σ = Σ_j exp(z_j − m),
//   grad[n][j] = (exp(z_j − m)/Σ − target_j) · scale,
//   target = (1 − ε)·onehot(label) + ε/classes,
//   loss_n = −Σ_j target_j · (z_j − m − log Σ),  correct_n = (argmax z == label).
// The batch's loss sum and hit count are reduced in workgroup memory and written to
// stats[2·slot], stats[2·slot + 1], so a run of steps fills consecutive slots and the host
// reads them all back at once.

struct Loss {
    n: u32, classes: u32, smoothing: f32, scale: f32,
    pad0: u32, pad1: u32, pad2: u32, pad3: u32,
    pad4: u32, pad5: u32, pad6: u32, pad7: u32,
    pad8: u32, pad9: u32, pad10: u32, pad11: u32,
}

// `Step` (the per-step values; only `slot` is read here) comes from step.wgsl.

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> labels: array<u32>;
@group(0) @binding(2) var<storage, read_write> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> stats: array<f32>;
@group(0) @binding(4) var<uniform> p: Loss;
@group(0) @binding(5) var<uniform> step: Step;

var<workgroup> loss_part: array<f32, 256>;
var<workgroup> hit_part: array<f32, 256>;

@compute @workgroup_size(256)
fn softmax_xent(@builtin(local_invocation_id) lid: vec3<u32>) {
    let off = p.smoothing / f32(p.classes);
    var loss = 0.0;
    var hits = 0.0;
    for (var row = lid.x; row < p.n; row = row + 256u) {
        let base = row * p.classes;
        let label = labels[row];
        var m = logits[base];
        var arg = 0u;
        for (var j = 1u; j < p.classes; j = j + 1u) {
            let v = logits[base + j];
            if (v > m) {
                m = v;
                arg = j;
            }
        }
        if (arg == label) {
            hits = hits + 1.0;
        }
        var sum = 0.0;
        var sum_shift = 0.0;
        for (var j = 0u; j < p.classes; j = j + 1u) {
            let z = logits[base + j] - m;
            sum = sum + exp(z);
            sum_shift = sum_shift + z;
        }
        let log_sum = log(sum);
        // −Σ_j target_j (z_j − m − log Σ): the one-hot part and the uniform part.
        loss = loss - (1.0 - p.smoothing) * (logits[base + label] - m - log_sum)
                    - off * (sum_shift - f32(p.classes) * log_sum);
        let inv = 1.0 / sum;
        for (var j = 0u; j < p.classes; j = j + 1u) {
            var want = off;
            if (j == label) {
                want = 1.0 - p.smoothing + off;
            }
            grad[base + j] = (exp(logits[base + j] - m) * inv - want) * p.scale;
        }
    }
    loss_part[lid.x] = loss;
    hit_part[lid.x] = hits;
    workgroupBarrier();
    for (var half = 128u; half > 0u; half = half / 2u) {
        if (lid.x < half) {
            loss_part[lid.x] = loss_part[lid.x] + loss_part[lid.x + half];
            hit_part[lid.x] = hit_part[lid.x] + hit_part[lid.x + half];
        }
        workgroupBarrier();
    }
    if (lid.x == 0u) {
        stats[2u * step.slot] = loss_part[0];
        stats[2u * step.slot + 1u] = hit_part[0];
    }
}
