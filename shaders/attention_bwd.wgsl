// Flash-style attention backward (FlashAttention-2 scheme), three kernels.
//
// Given Q, K, V, O, dO `[batch·heads, L, D]` and the forward's LSE `[batch·heads, L]`, with
// P = exp(Q Kᵀ·s − LSE) (s = 1/√D) recomputed tile by tile:
//   Δᵢ   = Σ_c dOᵢc · Oᵢc                      (kernel `preprocess`)
//   dSᵢⱼ = Pᵢⱼ · (dOᵢ · Vⱼ − Δᵢ)
//   dVⱼ  = Σᵢ Pᵢⱼ dOᵢ,   dKⱼ = s · Σᵢ dSᵢⱼ Qᵢ   (kernel `dkv`: one invocation per key row)
//   dQᵢ  = s · Σⱼ dSᵢⱼ Kⱼ                       (kernel `dq`:  one invocation per query row)
// Each output row is owned by exactly one invocation, so no atomics are needed, and memory is
// O(batch·heads·L·D): no L × L buffer exists.
//
// This file holds a common prelude and one section per kernel, each starting at a line
// `//! kernel: <name>`; `backward.rs` compiles prelude + one section as its own module (the
// launcher's entry point is always `main`). Everything before the first marker is the prelude.
//
// Template registers: head_dim (D), head_dim4 (D4 = ⌈D/4⌉), block_rows (rows owned per
// workgroup = workgroup size), block_tile (rows streamed per tile), tile_len4 (block_tile · D4).
//
// As in the forward kernel, rows live in registers as D4 vec4s (zero past D) so that the
// per-row loops are short enough for every driver to unroll.
//
// Info buffer (u32): [batch·heads, L, row tiles per slice]. Workgroups are numbered
// `id.x + id.y · num_workgroups.x` (2-D folding past the 65 535 limit); extra ones return.
//
// Stats buffer: `[batch·heads, L, 2]` = (LSE, Δ) per query row, written by `preprocess`.
//
// Invariants: element indices are u32, so batch·heads·L·D < 2³²; L ≥ 1.

const D: u32 = {{ head_dim }}u;
const D4: u32 = {{ head_dim4 }}u;
const BLOCK_ROWS: u32 = {{ block_rows }}u;
const BLOCK_TILE: u32 = {{ block_tile }}u;

var<workgroup> shared_info: vec4<u32>;

//! kernel: preprocess
@group(0) @binding(0) var<storage, read_write> o: array<f32>;
@group(0) @binding(1) var<storage, read_write> d_o: array<f32>;
@group(0) @binding(2) var<storage, read_write> lse: array<f32>;
@group(0) @binding(3) var<storage, read_write> stats: array<f32>;
@group(0) @binding(4) var<storage, read_write> info: array<u32>;

@compute @workgroup_size({{ block_rows }}, 1, 1)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    // Rows are independent here: no barrier, so plain storage reads are fine.
    let num_rows = info[0] * info[1];
    let row = (wid.x + wid.y * nwg.x) * BLOCK_ROWS + lid;
    if row >= num_rows {
        return;
    }
    var delta = 0.0;
    for (var c = 0u; c < D; c++) {
        delta += d_o[row * D + c] * o[row * D + c];
    }
    stats[2u * row] = lse[row];
    stats[2u * row + 1u] = delta;
}

//! kernel: dkv
@group(0) @binding(0) var<storage, read_write> q: array<f32>;
@group(0) @binding(1) var<storage, read_write> k: array<f32>;
@group(0) @binding(2) var<storage, read_write> v: array<f32>;
@group(0) @binding(3) var<storage, read_write> d_o: array<f32>;
@group(0) @binding(4) var<storage, read_write> stats: array<f32>;
@group(0) @binding(5) var<storage, read_write> dk: array<f32>;
@group(0) @binding(6) var<storage, read_write> dv: array<f32>;
@group(0) @binding(7) var<storage, read_write> info: array<u32>;

var<workgroup> q_tile: array<vec4<f32>, {{ tile_len4 }}>;
var<workgroup> do_tile: array<vec4<f32>, {{ tile_len4 }}>;
var<workgroup> lse_tile: array<f32, {{ block_tile }}>;
var<workgroup> delta_tile: array<f32, {{ block_tile }}>;

@compute @workgroup_size({{ block_rows }}, 1, 1)
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
    let row_tiles = dims.z;

    let group = wid.x + wid.y * nwg.x;
    if group >= num_slices * row_tiles {
        return;
    }
    let slice = group / row_tiles;
    // This invocation owns key row `key`.
    let key = (group % row_tiles) * BLOCK_ROWS + lid;
    let key_valid = key < seq;
    let base = slice * seq * D;
    let scale = inverseSqrt(f32(D));

    var k_row: array<vec4<f32>, {{ head_dim4 }}>;
    var v_row: array<vec4<f32>, {{ head_dim4 }}>;
    var dk_acc: array<vec4<f32>, {{ head_dim4 }}>;
    var dv_acc: array<vec4<f32>, {{ head_dim4 }}>;
    for (var c = 0u; c < D4; c++) {
        k_row[c] = vec4<f32>(0.0);
        v_row[c] = vec4<f32>(0.0);
        dk_acc[c] = vec4<f32>(0.0);
        dv_acc[c] = vec4<f32>(0.0);
    }
    if key_valid {
        for (var c = 0u; c < D4; c++) {
            for (var i = 0u; i < 4u; i++) {
                if 4u * c + i < D {
                    // K pre-scaled: Qᵢ·(s Kⱼ) is the scaled score.
                    k_row[c][i] = k[base + key * D + 4u * c + i] * scale;
                    v_row[c][i] = v[base + key * D + 4u * c + i];
                }
            }
        }
    }

    for (var start = 0u; start < seq; start += BLOCK_TILE) {
        let n = min(BLOCK_TILE, seq - start);
        let tile_base = base + start * D;
        for (var e = lid; e < n * D4; e += BLOCK_ROWS) {
            let c0 = 4u * (e % D4);
            let at = tile_base + (e / D4) * D + c0;
            var a = vec4<f32>(0.0);
            var b = vec4<f32>(0.0);
            for (var i = 0u; i < 4u; i++) {
                if c0 + i < D {
                    a[i] = q[at + i];
                    b[i] = d_o[at + i];
                }
            }
            q_tile[e] = a;
            do_tile[e] = b;
        }
        for (var e = lid; e < n; e += BLOCK_ROWS) {
            let stat = 2u * (slice * seq + start + e);
            lse_tile[e] = stats[stat];
            delta_tile[e] = stats[stat + 1u];
        }
        workgroupBarrier();

        if key_valid {
            for (var i = 0u; i < n; i++) {
                var score = 0.0;
                var dp = 0.0;
                for (var c = 0u; c < D4; c++) {
                    score += dot(q_tile[i * D4 + c], k_row[c]);
                    dp += dot(do_tile[i * D4 + c], v_row[c]);
                }
                let p = exp(score - lse_tile[i]);
                let ds = p * (dp - delta_tile[i]);
                for (var c = 0u; c < D4; c++) {
                    dv_acc[c] += p * do_tile[i * D4 + c];
                    dk_acc[c] += ds * q_tile[i * D4 + c];
                }
            }
        }
        workgroupBarrier();
    }

    if key_valid {
        for (var c = 0u; c < D4; c++) {
            for (var i = 0u; i < 4u; i++) {
                if 4u * c + i < D {
                    dk[base + key * D + 4u * c + i] = dk_acc[c][i] * scale;
                    dv[base + key * D + 4u * c + i] = dv_acc[c][i];
                }
            }
        }
    }
}

//! kernel: dq
@group(0) @binding(0) var<storage, read_write> q: array<f32>;
@group(0) @binding(1) var<storage, read_write> k: array<f32>;
@group(0) @binding(2) var<storage, read_write> v: array<f32>;
@group(0) @binding(3) var<storage, read_write> d_o: array<f32>;
@group(0) @binding(4) var<storage, read_write> stats: array<f32>;
@group(0) @binding(5) var<storage, read_write> dq: array<f32>;
@group(0) @binding(6) var<storage, read_write> info: array<u32>;

var<workgroup> k_tile: array<vec4<f32>, {{ tile_len4 }}>;
var<workgroup> v_tile: array<vec4<f32>, {{ tile_len4 }}>;

@compute @workgroup_size({{ block_rows }}, 1, 1)
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
    let row_tiles = dims.z;

    let group = wid.x + wid.y * nwg.x;
    if group >= num_slices * row_tiles {
        return;
    }
    let slice = group / row_tiles;
    // This invocation owns query row `row`.
    let row = (group % row_tiles) * BLOCK_ROWS + lid;
    let row_valid = row < seq;
    let base = slice * seq * D;
    let scale = inverseSqrt(f32(D));

    var q_row: array<vec4<f32>, {{ head_dim4 }}>;
    var do_row: array<vec4<f32>, {{ head_dim4 }}>;
    var dq_acc: array<vec4<f32>, {{ head_dim4 }}>;
    for (var c = 0u; c < D4; c++) {
        q_row[c] = vec4<f32>(0.0);
        do_row[c] = vec4<f32>(0.0);
        dq_acc[c] = vec4<f32>(0.0);
    }
    var row_lse = 0.0;
    var row_delta = 0.0;
    if row_valid {
        for (var c = 0u; c < D4; c++) {
            for (var i = 0u; i < 4u; i++) {
                if 4u * c + i < D {
                    q_row[c][i] = q[base + row * D + 4u * c + i] * scale;
                    do_row[c][i] = d_o[base + row * D + 4u * c + i];
                }
            }
        }
        row_lse = stats[2u * (slice * seq + row)];
        row_delta = stats[2u * (slice * seq + row) + 1u];
    }

    for (var start = 0u; start < seq; start += BLOCK_TILE) {
        let n = min(BLOCK_TILE, seq - start);
        let tile_base = base + start * D;
        for (var e = lid; e < n * D4; e += BLOCK_ROWS) {
            let c0 = 4u * (e % D4);
            let at = tile_base + (e / D4) * D + c0;
            var a = vec4<f32>(0.0);
            var b = vec4<f32>(0.0);
            for (var i = 0u; i < 4u; i++) {
                if c0 + i < D {
                    a[i] = k[at + i];
                    b[i] = v[at + i];
                }
            }
            k_tile[e] = a;
            v_tile[e] = b;
        }
        workgroupBarrier();

        if row_valid {
            for (var j = 0u; j < n; j++) {
                var score = 0.0;
                var dp = 0.0;
                for (var c = 0u; c < D4; c++) {
                    score += dot(q_row[c], k_tile[j * D4 + c]);
                    dp += dot(do_row[c], v_tile[j * D4 + c]);
                }
                let ds = exp(score - row_lse) * (dp - row_delta);
                for (var c = 0u; c < D4; c++) {
                    dq_acc[c] += ds * k_tile[j * D4 + c];
                }
            }
        }
        workgroupBarrier();
    }

    if row_valid {
        for (var c = 0u; c < D4; c++) {
            for (var i = 0u; i < 4u; i++) {
                if 4u * c + i < D {
                    dq[base + row * D + 4u * c + i] = dq_acc[c][i] * scale;
                }
            }
        }
    }
}
