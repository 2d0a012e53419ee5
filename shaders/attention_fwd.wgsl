// Flash-style attention forward: O = softmax(Q Kᵀ / √d) V, plus the per-row log-sum-exp.
//
// Layout: Q, K, V, O are contiguous `[batch·heads, L, D]` f32; LSE is `[batch·heads, L]`.
// One workgroup owns BLOCK_Q consecutive query rows of one (batch·head) slice, one invocation
// per row. Keys and values stream through workgroup memory BLOCK_K rows at a time; every
// invocation keeps its query row, its output accumulator, the running max `m` and the running
// sum `l` in registers (online softmax, fp32). The L × L score matrix never exists.
//
// Rows are held as vec4s (D4 = ⌈D/4⌉ of them, zero-padded past D): the inner loops then run
// D4 times, few enough for every driver to unroll them, so the row stays in registers (a
// scalar loop of 24 was left rolled by lavapipe and the arrays spilled, 1.8× slower than
// burn's matmul-based attention at head dim 24). Each key is folded into the online softmax
// as it is scored: the accumulator is rescaled only when the running max grows, so no
// per-tile score array is needed either.
//
// Template registers (filled by `forward.rs`):
//   head_dim      D, the per-head feature size
//   head_dim4     D4 = ⌈D/4⌉
//   block_q       query rows per workgroup = workgroup size
//   block_k       key rows per streamed tile
//   kv_tile_len4  block_k · D4 (WGSL array sizes must be plain constants)
//
// Info buffer (u32): [batch·heads, L, number of query tiles per slice].
// Workgroups are numbered linearly as `id.x + id.y · num_workgroups.x`, so the dispatch can be
// folded into two dimensions when batch·heads·tiles exceeds the 65 535 per-dimension limit;
// workgroups past the end return at once.
//
// Invariants: element indices are u32, so batch·heads·L·D < 2³²; L ≥ 1.

@group(0) @binding(0) var<storage, read_write> q: array<f32>;
@group(0) @binding(1) var<storage, read_write> k: array<f32>;
@group(0) @binding(2) var<storage, read_write> v: array<f32>;
@group(0) @binding(3) var<storage, read_write> o: array<f32>;
@group(0) @binding(4) var<storage, read_write> lse: array<f32>;
@group(0) @binding(5) var<storage, read_write> info: array<u32>;

const D: u32 = {{ head_dim }}u;
const D4: u32 = {{ head_dim4 }}u;
const BLOCK_Q: u32 = {{ block_q }}u;
const BLOCK_K: u32 = {{ block_k }}u;
// Stands in for -∞ as the initial running max: exp(NEG_BIG - x) underflows to exactly 0.
const NEG_BIG: f32 = -3.0e38;

var<workgroup> k_tile: array<vec4<f32>, {{ kv_tile_len4 }}>;
var<workgroup> v_tile: array<vec4<f32>, {{ kv_tile_len4 }}>;
// Shape info broadcast through workgroup memory so that loop bounds are provably uniform
// (values read from a storage buffer are not, and barriers need uniform control flow).
var<workgroup> shared_info: vec4<u32>;

// Four consecutive features of `buf` from `at`, zero past feature D of the row (`c0` is the
// first feature's index within the row).
fn load4(which: u32, at: u32, c0: u32) -> vec4<f32> {
    var r = vec4<f32>(0.0);
    for (var i = 0u; i < 4u; i++) {
        if c0 + i < D {
            if which == 0u {
                r[i] = q[at + i];
            } else if which == 1u {
                r[i] = k[at + i];
            } else {
                r[i] = v[at + i];
            }
        }
    }
    return r;
}

@compute @workgroup_size({{ block_q }}, 1, 1)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    if lid == 0u {
        shared_info = vec4<u32>(info[0], info[1], info[2], 0u);
    }
    let dims = workgroupUniformLoad(&shared_info);
    let num_slices = dims.x;
    let seq = dims.y;
    let q_tiles = dims.z;

    let group = wid.x + wid.y * nwg.x;
    if group >= num_slices * q_tiles {
        return;
    }
    let slice = group / q_tiles;
    let row = (group % q_tiles) * BLOCK_Q + lid;
    let row_valid = row < seq;
    let base = slice * seq * D;
    let scale = inverseSqrt(f32(D));

    // The query row, pre-multiplied by the softmax scale.
    var q_row: array<vec4<f32>, {{ head_dim4 }}>;
    var acc: array<vec4<f32>, {{ head_dim4 }}>;
    for (var c = 0u; c < D4; c++) {
        acc[c] = vec4<f32>(0.0);
        q_row[c] = vec4<f32>(0.0);
    }
    if row_valid {
        for (var c = 0u; c < D4; c++) {
            q_row[c] = load4(0u, base + row * D + 4u * c, 4u * c) * scale;
        }
    }
    var m = NEG_BIG;
    var l = 0.0;

    for (var start = 0u; start < seq; start += BLOCK_K) {
        // Rows of this tile that exist; the last tile may be partial.
        let n = min(BLOCK_K, seq - start);
        let tile_base = base + start * D;
        for (var e = lid; e < n * D4; e += BLOCK_Q) {
            let j = e / D4;
            let c = e % D4;
            let at = tile_base + j * D + 4u * c;
            k_tile[e] = load4(1u, at, 4u * c);
            v_tile[e] = load4(2u, at, 4u * c);
        }
        workgroupBarrier();

        if row_valid {
            for (var j = 0u; j < n; j++) {
                var score = 0.0;
                for (var c = 0u; c < D4; c++) {
                    score += dot(q_row[c], k_tile[j * D4 + c]);
                }
                if score > m {
                    // A new running max: rescale what was accumulated under the old one
                    // (0 before the first key).
                    let alpha = exp(m - score);
                    l *= alpha;
                    for (var c = 0u; c < D4; c++) {
                        acc[c] *= alpha;
                    }
                    m = score;
                }
                let p = exp(score - m);
                l += p;
                for (var c = 0u; c < D4; c++) {
                    acc[c] += p * v_tile[j * D4 + c];
                }
            }
        }
        // Nobody may overwrite the tile while a neighbour still reads it.
        workgroupBarrier();
    }

    if row_valid {
        // l ≥ 1: the row's maximum contributes exp(0).
        let inv_l = 1.0 / l;
        for (var c = 0u; c < D4; c++) {
            let out = acc[c] * inv_l;
            for (var i = 0u; i < 4u; i++) {
                if 4u * c + i < D {
                    o[base + row * D + 4u * c + i] = out[i];
                }
            }
        }
        lse[slice * seq + row] = m + log(l);
    }
}
