//! The wgpu implementation of [`AttentionBackend`]: launches the WGSL kernels in
//! `shaders/attention_fwd.wgsl` and `shaders/attention_bwd.wgsl`.
//!
//! Mirrors `forward.rs` of burn's `custom-wgpu-kernel` example: a [`KernelSource`] per kernel
//! fills the WGSL template registers, and the launch code allocates outputs and binds buffers.

use burn::backend::tensor::FloatTensor;
use burn::backend::wgpu::{
    CubeBackend, CubeTensor, KernelSource, SourceKernel, SourceTemplate, into_contiguous,
};
use burn::cubecl::prelude::KernelId;
use burn::cubecl::server::KernelArguments;
use burn::cubecl::{CubeCount, CubeDim};
use burn::tensor::{DType, Shape};

use super::AttentionBackend;

/// Forward shader source, templated.
const FWD_WGSL: &str = include_str!("../../../shaders/attention_fwd.wgsl");

/// Rows (query rows forward; key or query rows backward) owned by one workgroup, one
/// invocation per row.
pub(super) const BLOCK_ROWS: u32 = 64;

/// Largest head dim the kernels accept (registers per invocation grow with it).
pub const MAX_HEAD_DIM: usize = 256;

/// Rows per streamed tile for head dim `d`: two `tile × d` f32 tiles stay within 8 KiB of
/// workgroup memory (half the 16 KiB WebGPU guarantees), capped at 64. Rows padded to a
/// multiple of 4 add at most 3 floats each, so two tiles stay under 9.6 KiB.
pub(super) fn tile_rows(d: usize) -> u32 {
    (1024 / d).clamp(1, 64) as u32
}

/// Workgroup count for `groups` linearly numbered workgroups, folded into x/y so that
/// neither dimension exceeds 65 535. The kernels compute `id.x + id.y · num_workgroups.x`
/// and return when it is `>= groups`.
pub(super) fn folded_count(groups: usize) -> CubeCount {
    const MAX: usize = 65_535;
    let groups = groups.max(1);
    if groups <= MAX {
        CubeCount::Static(groups as u32, 1, 1)
    } else {
        let y = groups.div_ceil(MAX);
        let x = groups.div_ceil(y);
        assert!(y <= MAX, "attention: {groups} workgroups exceed 65 535²");
        CubeCount::Static(x as u32, y as u32, 1)
    }
}

/// Shape checks shared by every launch; returns `(batch, heads, L, d)`.
pub(super) fn check_qkv(q: &CubeTensor, k: &CubeTensor, v: &CubeTensor) -> [usize; 4] {
    let shape = q.meta.shape();
    assert_eq!(
        shape.num_dims(),
        4,
        "attention: expected [batch, heads, L, d]"
    );
    let dims = [shape[0], shape[1], shape[2], shape[3]];
    assert_eq!(k.meta.shape(), shape, "attention: K shape differs from Q");
    assert_eq!(v.meta.shape(), shape, "attention: V shape differs from Q");
    for t in [q, k, v] {
        assert_eq!(t.dtype, DType::F32, "fused attention supports f32 only");
    }
    q.assert_is_on_same_device(k);
    q.assert_is_on_same_device(v);
    assert!(
        matches!(q.device, burn::cubecl::Device::Wgpu(_)),
        "fused attention runs on the wgpu runtime only (WGSL), got {:?}",
        q.device
    );
    assert!(
        (1..=MAX_HEAD_DIM).contains(&dims[3]),
        "fused attention: head dim {} outside 1..={MAX_HEAD_DIM}",
        dims[3]
    );
    assert!(
        dims.iter().product::<usize>() < u32::MAX as usize,
        "fused attention: tensor too large for u32 indexing"
    );
    dims
}

/// Allocates an uninitialised contiguous f32 tensor like `like` with `shape`.
pub(super) fn empty_f32(like: &CubeTensor, shape: Shape) -> CubeTensor {
    let handle = like.client.empty(shape.num_elements() * DType::F32.size());
    CubeTensor::new_contiguous(
        like.client.clone(),
        like.device.clone(),
        shape,
        handle,
        DType::F32,
    )
}

/// Uploads the `info` words a kernel reads from its last binding.
pub(super) fn info_tensor(like: &CubeTensor, info: &[u32]) -> burn::cubecl::server::Handle {
    like.client.create_from_slice(bytemuck::cast_slice(info))
}

/// One compiled variant of an attention shader: which source section, which head dim.
#[derive(Debug)]
pub(super) struct AttentionKernel {
    /// Full WGSL text with the registers still unfilled.
    pub source: String,
    /// Distinguishes kernels sharing this Rust type in the compilation cache.
    pub name: &'static str,
    pub head_dim: u32,
    pub block_rows: u32,
    pub block_tile: u32,
}

impl KernelSource for AttentionKernel {
    fn source(&self) -> SourceTemplate {
        // Rows are held as ⌈d/4⌉ vec4s; tiles are `block_tile` such rows.
        let d4 = self.head_dim.div_ceil(4);
        let tile_len4 = (self.block_tile * d4).to_string();
        SourceTemplate::new(self.source.clone())
            .register("head_dim", self.head_dim.to_string())
            .register("head_dim4", d4.to_string())
            .register("block_q", self.block_rows.to_string())
            .register("block_k", self.block_tile.to_string())
            .register("kv_tile_len4", tile_len4.clone())
            .register("block_rows", self.block_rows.to_string())
            .register("block_tile", self.block_tile.to_string())
            .register("tile_len4", tile_len4)
    }

    fn id(&self) -> KernelId {
        KernelId::new::<Self>().info((self.name, self.head_dim, self.block_rows, self.block_tile))
    }

    fn lang(&self) -> &'static str {
        "wgsl"
    }
}

impl AttentionKernel {
    /// Launches this kernel with `BLOCK_ROWS` invocations per workgroup.
    pub(super) fn launch(
        self,
        like: &CubeTensor,
        groups: usize,
        buffers: Vec<burn::cubecl::server::BufferBinding>,
    ) {
        let cube_dim = CubeDim::new_1d(self.block_rows);
        like.client.launch(
            Box::new(SourceKernel::new(self, cube_dim)),
            folded_count(groups),
            KernelArguments::new().with_buffers(buffers),
        );
    }
}

/// Launches the forward kernel; returns `(O [b, h, L, d], LSE [b, h, L])`.
fn launch_forward(q: CubeTensor, k: CubeTensor, v: CubeTensor) -> (CubeTensor, CubeTensor) {
    let [batch, heads, seq, d] = check_qkv(&q, &k, &v);
    let q = into_contiguous(q);
    let k = into_contiguous(k);
    let v = into_contiguous(v);

    let out = empty_f32(&q, Shape::new([batch, heads, seq, d]));
    let lse = empty_f32(&q, Shape::new([batch, heads, seq]));

    let slices = batch * heads;
    let q_tiles = seq.div_ceil(BLOCK_ROWS as usize);
    let info = info_tensor(&q, &[slices as u32, seq as u32, q_tiles as u32]);

    let kernel = AttentionKernel {
        source: section(FWD_WGSL, None),
        name: "attention_fwd",
        head_dim: d as u32,
        block_rows: BLOCK_ROWS,
        block_tile: tile_rows(d),
    };
    kernel.launch(
        &q,
        slices * q_tiles,
        vec![
            q.handle.clone().binding(),
            k.handle.clone().binding(),
            v.handle.clone().binding(),
            out.handle.clone().binding(),
            lse.handle.clone().binding(),
            info.binding(),
        ],
    );
    (out, lse)
}

/// The wgpu implementation. `CubeBackend` is burn's single backend type for every cubecl
/// runtime; the kernels are WGSL, so the tensors must live on a wgpu device
/// (see [`super::fused_available`]), which [`check_qkv`] asserts.
impl AttentionBackend for CubeBackend {
    fn fused_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        launch_forward(q, k, v)
    }

    fn fused_attention_backward(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        out: FloatTensor<Self>,
        lse: FloatTensor<Self>,
        grad_out: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        launch_backward(q, k, v, out, lse, grad_out)
    }
}

/// Backward shader source, templated, with one section per kernel.
const BWD_WGSL: &str = include_str!("../../../shaders/attention_bwd.wgsl");

/// Marker that opens a kernel section in a shader file.
const SECTION_MARKER: &str = "//! kernel: ";

/// The WGSL module for one kernel of a sectioned shader file: the prelude (everything before
/// the first `//! kernel: ` line) followed by section `name`. `None` returns the whole file.
///
/// # Panics
///
/// If `name` is not a section of `source` (a programming error).
pub(super) fn section(source: &str, name: Option<&str>) -> String {
    let Some(name) = name else {
        return source.to_string();
    };
    let mut prelude = String::new();
    let mut body = String::new();
    let mut current: Option<&str> = None;
    for line in source.lines() {
        if let Some(section) = line.strip_prefix(SECTION_MARKER) {
            current = Some(section.trim());
            continue;
        }
        match current {
            None => prelude.push_str(line),
            Some(section) if section == name => body.push_str(line),
            Some(_) => continue,
        }
        if current.is_none() {
            prelude.push('\n');
        } else {
            body.push('\n');
        }
    }
    assert!(!body.is_empty(), "shader section `{name}` not found");
    prelude + &body
}

fn bwd_kernel(name: &'static str, d: usize) -> AttentionKernel {
    AttentionKernel {
        source: section(BWD_WGSL, Some(name)),
        name,
        head_dim: d as u32,
        block_rows: BLOCK_ROWS,
        block_tile: tile_rows(d),
    }
}

/// Launches preprocess, dK/dV and dQ; returns `(dQ, dK, dV)`, each `[b, h, L, d]`.
///
/// Memory: besides the three gradients, one `[b, h, L, 2]` buffer of (LSE, Δ) per row.
pub(super) fn launch_backward(
    q: CubeTensor,
    k: CubeTensor,
    v: CubeTensor,
    out: CubeTensor,
    lse: CubeTensor,
    grad_out: CubeTensor,
) -> (CubeTensor, CubeTensor, CubeTensor) {
    let [batch, heads, seq, d] = check_qkv(&q, &k, &v);
    assert_eq!(
        out.meta.shape(),
        q.meta.shape(),
        "attention backward: O shape"
    );
    assert_eq!(
        grad_out.meta.shape(),
        q.meta.shape(),
        "attention backward: dO shape"
    );
    assert_eq!(
        lse.meta.shape(),
        &Shape::new([batch, heads, seq]),
        "attention backward: LSE shape"
    );
    let q = into_contiguous(q);
    let k = into_contiguous(k);
    let v = into_contiguous(v);
    let out = into_contiguous(out);
    let lse = into_contiguous(lse);
    let grad_out = into_contiguous(grad_out);

    let slices = batch * heads;
    let rows = slices * seq;
    let row_tiles = seq.div_ceil(BLOCK_ROWS as usize);
    let info = info_tensor(&q, &[slices as u32, seq as u32, row_tiles as u32]);

    // Δ = rowsum(dO ∘ O), interleaved with the LSE so the later kernels need one binding.
    let stats = empty_f32(&q, Shape::new([batch, heads, seq, 2]));
    bwd_kernel("preprocess", d).launch(
        &q,
        rows.div_ceil(BLOCK_ROWS as usize),
        vec![
            out.handle.clone().binding(),
            grad_out.handle.clone().binding(),
            lse.handle.clone().binding(),
            stats.handle.clone().binding(),
            info.clone().binding(),
        ],
    );

    let shape = Shape::new([batch, heads, seq, d]);
    let grad_k = empty_f32(&q, shape.clone());
    let grad_v = empty_f32(&q, shape.clone());
    bwd_kernel("dkv", d).launch(
        &q,
        slices * row_tiles,
        vec![
            q.handle.clone().binding(),
            k.handle.clone().binding(),
            v.handle.clone().binding(),
            grad_out.handle.clone().binding(),
            stats.handle.clone().binding(),
            grad_k.handle.clone().binding(),
            grad_v.handle.clone().binding(),
            info.clone().binding(),
        ],
    );

    let grad_q = empty_f32(&q, shape);
    bwd_kernel("dq", d).launch(
        &q,
        slices * row_tiles,
        vec![
            q.handle.clone().binding(),
            k.handle.clone().binding(),
            v.handle.clone().binding(),
            grad_out.handle.clone().binding(),
            stats.handle.clone().binding(),
            grad_q.handle.clone().binding(),
            info.binding(),
        ],
    );
    (grad_q, grad_k, grad_v)
}
