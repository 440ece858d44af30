//! The kernels of `kernels/*.wgsl` and the [`Dispatch`]es that run them.
//!
//! Each `*_op` method checks its shapes against the buffers (an [`Error`], never a wgpu
//! validation panic), writes the kernel's uniform block, and binds the buffers. The
//! result is replayed as often as needed: [`super::GpuNet`] builds a training step's
//! dispatches once per batch size and submits the same list every step.
//!
//! The element-wise kernels loop grid-stride over at most [`MAX_GROUPS`] workgroups of
//! [`GROUP`] invocations, so any length fits the dispatch limits.

use super::{Gpu, GpuBuffer};
use crate::cpu::im2col::ConvGeometry;
use crate::error::{Error, Result};
use wgpu::util::DeviceExt;

/// Invocations per workgroup of the 1-D kernels (`@workgroup_size(256)`).
pub const GROUP: usize = 256;
/// Most workgroups per 1-D dispatch (the portable limit per dimension).
pub const MAX_GROUPS: usize = 65_535;
/// Tile of C per workgroup of the tiled GEMM (`kernels/gemm.wgsl`).
const GEMM_TILE: usize = 64;
/// Rows of C per invocation of the narrow GEMM.
const GEMM_ROWS: usize = 16;
/// Below this many rows or columns the tiled GEMM is mostly padding: use the narrow one.
const GEMM_TILED_MIN: usize = 48;
/// Workgroups a GEMM should launch to fill a GPU; fewer output blocks than this and a long
/// k get split-k.
const GEMM_MIN_GROUPS: usize = 128;
/// Least k per split.
const GEMM_MIN_K_CHUNK: usize = 256;

/// Every kernel, one compute pipeline each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// `kernels/gemm.wgsl`: GEMM with 64×64 workgroup tiles, for large m and n.
    GemmTiled,
    /// `kernels/gemm.wgsl`: GEMM by columns of 16-row blocks, for small m.
    GemmNarrow,
    /// `kernels/gemm.wgsl`: sums split-k partial products into C.
    GemmReduce,
    /// `kernels/im2col.wgsl`: batch im2col.
    Im2col,
    /// `kernels/im2col.wgsl`: batch col2im (gather).
    Col2im,
    /// `kernels/pool.wgsl`: max-pool with winners.
    MaxpoolForward,
    /// `kernels/pool.wgsl`: max-pool gradient (gather).
    MaxpoolBackward,
    /// `kernels/elementwise.wgsl`: `max(x, 0)`.
    ReluForward,
    /// `kernels/elementwise.wgsl`: `dy·[y > 0]`.
    ReluBackward,
    /// `kernels/elementwise.wgsl`: per-channel or per-feature bias.
    AddBias,
    /// `kernels/elementwise.wgsl`: swap the two outer axes of `[A, B, inner]`.
    Permute,
    /// `kernels/elementwise.wgsl`: strided sums (bias gradients).
    SumReduce,
    /// `kernels/softmax.wgsl`: loss, hits and gradient.
    SoftmaxXent,
    /// `kernels/optim.wgsl`: SGD with momentum.
    Sgd,
    /// `kernels/optim.wgsl`: Adam / AdamW.
    Adam,
}

impl Kernel {
    /// All kernels, in discriminant order.
    pub const ALL: [Kernel; 15] = [
        Kernel::GemmTiled,
        Kernel::GemmNarrow,
        Kernel::GemmReduce,
        Kernel::Im2col,
        Kernel::Col2im,
        Kernel::MaxpoolForward,
        Kernel::MaxpoolBackward,
        Kernel::ReluForward,
        Kernel::ReluBackward,
        Kernel::AddBias,
        Kernel::Permute,
        Kernel::SumReduce,
        Kernel::SoftmaxXent,
        Kernel::Sgd,
        Kernel::Adam,
    ];

    /// `(file, entry point)`.
    fn source(self) -> (&'static str, &'static str) {
        match self {
            Kernel::GemmTiled => ("gemm.wgsl", "tiled"),
            Kernel::GemmNarrow => ("gemm.wgsl", "narrow"),
            Kernel::GemmReduce => ("gemm.wgsl", "reduce"),
            Kernel::Im2col => ("im2col.wgsl", "im2col"),
            Kernel::Col2im => ("im2col.wgsl", "col2im"),
            Kernel::MaxpoolForward => ("pool.wgsl", "maxpool_forward"),
            Kernel::MaxpoolBackward => ("pool.wgsl", "maxpool_backward"),
            Kernel::ReluForward => ("elementwise.wgsl", "relu_forward"),
            Kernel::ReluBackward => ("elementwise.wgsl", "relu_backward"),
            Kernel::AddBias => ("elementwise.wgsl", "add_bias"),
            Kernel::Permute => ("elementwise.wgsl", "permute"),
            Kernel::SumReduce => ("elementwise.wgsl", "sum_reduce"),
            Kernel::SoftmaxXent => ("softmax.wgsl", "softmax_xent"),
            Kernel::Sgd => ("optim.wgsl", "sgd"),
            Kernel::Adam => ("optim.wgsl", "adam"),
        }
    }
}

/// The WGSL sources, compiled into the library (`step.wgsl`, the per-step uniform block,
/// is prepended to the two files that read it).
const SOURCES: [(&str, &str); 6] = [
    ("gemm.wgsl", include_str!("../../kernels/gemm.wgsl")),
    ("im2col.wgsl", include_str!("../../kernels/im2col.wgsl")),
    ("pool.wgsl", include_str!("../../kernels/pool.wgsl")),
    (
        "elementwise.wgsl",
        include_str!("../../kernels/elementwise.wgsl"),
    ),
    (
        "softmax.wgsl",
        concat!(
            include_str!("../../kernels/step.wgsl"),
            include_str!("../../kernels/softmax.wgsl")
        ),
    ),
    (
        "optim.wgsl",
        concat!(
            include_str!("../../kernels/step.wgsl"),
            include_str!("../../kernels/optim.wgsl")
        ),
    ),
];

/// Compiles every kernel: one shader module per file, one pipeline per entry point.
pub(super) fn compile(device: &wgpu::Device) -> Vec<wgpu::ComputePipeline> {
    let modules: Vec<(&str, wgpu::ShaderModule)> = SOURCES
        .iter()
        .map(|&(file, src)| {
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(file),
                source: wgpu::ShaderSource::Wgsl(src.into()),
            });
            (file, module)
        })
        .collect();
    Kernel::ALL
        .iter()
        .map(|&kernel| {
            let (file, entry) = kernel.source();
            let module = &modules.iter().find(|(f, _)| *f == file).expect("listed").1;
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: None,
                module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            })
        })
        .collect()
}

/// One kernel launch: pipeline, bound buffers and workgroup counts.
pub struct Dispatch {
    pub(super) kernel: Kernel,
    pub(super) bind: wgpu::BindGroup,
    pub(super) groups: (u32, u32, u32),
}

impl Dispatch {
    /// The kernel it launches.
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }
}

/// Shape of `C[m×n] (=|+=) A[m×k] · B[k×n]`: element `(i, j)` of A at `a[i·a.0 + j·a.1]`,
/// likewise B; C row-major with row stride `rsc`. Transposed operands are strides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmShape {
    /// Rows of A and C.
    pub m: usize,
    /// Columns of A, rows of B.
    pub k: usize,
    /// Columns of B and C.
    pub n: usize,
    /// A's (row, column) strides.
    pub a: (usize, usize),
    /// B's (row, column) strides.
    pub b: (usize, usize),
    /// C's row stride.
    pub rsc: usize,
    /// Add to C instead of overwriting it.
    pub accumulate: bool,
}

/// Elements spanned by a `rows×cols` matrix with strides `(rs, cs)` (0 if empty).
fn span(rows: usize, cols: usize, (rs, cs): (usize, usize)) -> usize {
    if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * rs + (cols - 1) * cs + 1
    }
}

impl GemmShape {
    /// Elements of A the product reads.
    pub fn a_len(&self) -> usize {
        span(self.m, self.k, self.a)
    }
    /// Elements of B the product reads.
    pub fn b_len(&self) -> usize {
        span(self.k, self.n, self.b)
    }
    /// Elements of C the product writes.
    pub fn c_len(&self) -> usize {
        span(self.m, self.n, (self.rsc, 1))
    }
}

/// A kernel's uniform block: sixteen 4-byte words (u32 or f32 bits), in the order of the
/// WGSL struct's fields.
#[derive(Default)]
struct Words {
    words: [u32; 16],
    used: usize,
}

impl Words {
    fn u(mut self, v: usize) -> Result<Self> {
        self.words[self.used] = u32::try_from(v)
            .map_err(|_| Error::Invalid(format!("GPU kernel argument {v} exceeds u32")))?;
        self.used += 1;
        Ok(self)
    }
    fn f(mut self, v: f32) -> Self {
        self.words[self.used] = v.to_bits();
        self.used += 1;
        self
    }
}

/// `Err` naming `op` when `buf` holds fewer than `need` values.
fn need(op: &str, what: &str, buf: &GpuBuffer, need: usize) -> Result<()> {
    if buf.len < need {
        return Err(Error::Invalid(format!(
            "GPU {op}: {what} holds {} values, needs {need}",
            buf.len
        )));
    }
    Ok(())
}

/// Workgroups for a grid-stride pass over `len` elements.
fn groups_1d(len: usize) -> (u32, u32, u32) {
    (len.div_ceil(GROUP).clamp(1, MAX_GROUPS) as u32, 1, 1)
}

impl Gpu {
    /// A uniform buffer holding `words`.
    fn uniform(&self, words: Words) -> wgpu::Buffer {
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("uniform"),
                contents: bytemuck::cast_slice(&words.words),
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            })
    }

    /// A uniform buffer of 16 words the host rewrites with [`Gpu::write_step`] (the
    /// per-step values of `kernels/optim.wgsl` and `kernels/softmax.wgsl`).
    pub fn step_uniform(&self) -> wgpu::Buffer {
        self.uniform(Words::default())
    }

    /// Binds `(binding, buffer)` pairs to `kernel`.
    fn dispatch(
        &self,
        kernel: Kernel,
        entries: &[(u32, &wgpu::Buffer)],
        groups: (u32, u32, u32),
    ) -> Dispatch {
        let entries: Vec<wgpu::BindGroupEntry> = entries
            .iter()
            .map(|&(binding, buffer)| wgpu::BindGroupEntry {
                binding,
                resource: buffer.as_entire_binding(),
            })
            .collect();
        let bind = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(kernel.source().1),
            layout: &self.pipelines[kernel as usize].get_bind_group_layout(0),
            entries: &entries,
        });
        Dispatch {
            kernel,
            bind,
            groups,
        }
    }

    /// `c = a·b` (or `c += a·b`), see [`GemmShape`]: one dispatch, or two with split k.
    ///
    /// The variant depends on the shape only (so results do not depend on the device's
    /// timing): the tiled kernel when m and n both reach [`GEMM_TILED_MIN`], the narrow
    /// one otherwise; k is split (partials summed in split order by a second dispatch)
    /// when the output blocks number fewer than [`GEMM_MIN_GROUPS`] and k is long.
    pub fn gemm_op(
        &self,
        s: &GemmShape,
        a: &GpuBuffer,
        b: &GpuBuffer,
        c: &GpuBuffer,
    ) -> Result<Vec<Dispatch>> {
        need("gemm", "A", a, s.a_len())?;
        need("gemm", "B", b, s.b_len())?;
        need("gemm", "C", c, s.c_len())?;
        let tiled = s.m >= GEMM_TILED_MIN && s.n >= GEMM_TILED_MIN;
        let (kernel, gx, gy) = if tiled {
            (
                Kernel::GemmTiled,
                s.n.div_ceil(GEMM_TILE),
                s.m.div_ceil(GEMM_TILE),
            )
        } else {
            (
                Kernel::GemmNarrow,
                s.n.div_ceil(GROUP),
                s.m.div_ceil(GEMM_ROWS),
            )
        };
        let (gx, gy) = (gx.max(1), gy.max(1));
        if gx > MAX_GROUPS || gy > MAX_GROUPS {
            return Err(Error::Invalid(format!(
                "GPU gemm: {}×{} is too large for one dispatch",
                s.m, s.n
            )));
        }
        let splits = if gx * gy < GEMM_MIN_GROUPS {
            GEMM_MIN_GROUPS
                .div_ceil(gx * gy)
                .min(s.k / GEMM_MIN_K_CHUNK)
                .max(1)
        } else {
            1
        };
        let k_chunk = s.k.div_ceil(splits).max(1);
        let splits = s.k.div_ceil(k_chunk).max(1);
        let words = Words::default()
            .u(s.m)?
            .u(s.n)?
            .u(s.k)?
            .u(s.a.0)?
            .u(s.a.1)?
            .u(s.b.0)?
            .u(s.b.1)?
            .u(s.rsc)?
            .u(usize::from(s.accumulate))?
            .u(k_chunk)?
            .u(splits)?;
        let p = self.uniform(words);
        let groups = (gx as u32, gy as u32, splits as u32);
        if splits == 1 {
            let entries = [(0, &a.buffer), (1, &b.buffer), (2, &c.buffer), (3, &p)];
            return Ok(vec![self.dispatch(kernel, &entries, groups)]);
        }
        let partial = self.zeros(splits * s.m * s.n)?;
        let entries = [
            (0, &a.buffer),
            (1, &b.buffer),
            (2, &partial.buffer),
            (3, &p),
        ];
        let product = self.dispatch(kernel, &entries, groups);
        let entries = [(2, &c.buffer), (3, &p), (4, &partial.buffer)];
        let sum = self.dispatch(Kernel::GemmReduce, &entries, groups_1d(s.m * s.n));
        Ok(vec![product, sum])
    }

    fn geometry_words(g: &ConvGeometry, batch: usize) -> Result<Words> {
        Words::default()
            .u(g.channels)?
            .u(g.height)?
            .u(g.width)?
            .u(g.kernel_h)?
            .u(g.kernel_w)?
            .u(g.stride)?
            .u(g.padding)?
            .u(g.out_h())?
            .u(g.out_w())?
            .u(batch)
    }

    /// `cols[R, N·P] ← x[N, C, H, W]` (see `kernels/im2col.wgsl`).
    pub fn im2col_op(
        &self,
        g: &ConvGeometry,
        batch: usize,
        x: &GpuBuffer,
        cols: &GpuBuffer,
    ) -> Result<Dispatch> {
        let cols_len = g.col_rows() * batch * g.col_cols();
        need("im2col", "x", x, batch * g.input_len())?;
        need("im2col", "cols", cols, cols_len)?;
        let p = self.uniform(Self::geometry_words(g, batch)?);
        let entries = [(0, &x.buffer), (1, &cols.buffer), (2, &p)];
        Ok(self.dispatch(Kernel::Im2col, &entries, groups_1d(cols_len)))
    }

    /// `dx[N, C, H, W] ← col2im(dcols[R, N·P])`, overwriting `dx`.
    pub fn col2im_op(
        &self,
        g: &ConvGeometry,
        batch: usize,
        dcols: &GpuBuffer,
        dx: &GpuBuffer,
    ) -> Result<Dispatch> {
        need(
            "col2im",
            "dcols",
            dcols,
            g.col_rows() * batch * g.col_cols(),
        )?;
        need("col2im", "dx", dx, batch * g.input_len())?;
        let p = self.uniform(Self::geometry_words(g, batch)?);
        let entries = [(0, &dcols.buffer), (1, &dx.buffer), (2, &p)];
        Ok(self.dispatch(Kernel::Col2im, &entries, groups_1d(batch * g.input_len())))
    }

    fn pool_words(planes: usize, (h, w): (usize, usize), k: usize, s: usize) -> Result<Words> {
        if k == 0 || s == 0 || k > h || k > w {
            return Err(Error::Invalid(format!(
                "GPU max-pool: window {k} stride {s} does not fit {h}×{w}"
            )));
        }
        let (oh, ow) = (
            crate::cpu::pool::pooled(h, k, s),
            crate::cpu::pool::pooled(w, k, s),
        );
        Words::default()
            .u(planes)?
            .u(h)?
            .u(w)?
            .u(k)?
            .u(s)?
            .u(oh)?
            .u(ow)
    }

    /// Max-pool `x[planes][h][w] → y[planes][oh][ow]`, winners' in-plane indices in `argmax`.
    pub fn maxpool_forward_op(
        &self,
        planes: usize,
        hw: (usize, usize),
        (kernel, stride): (usize, usize),
        x: &GpuBuffer,
        y: &GpuBuffer,
        argmax: &GpuBuffer,
    ) -> Result<Dispatch> {
        let words = Self::pool_words(planes, hw, kernel, stride)?;
        let out = planes * words.words[5] as usize * words.words[6] as usize;
        need("max-pool", "x", x, planes * hw.0 * hw.1)?;
        need("max-pool", "y", y, out)?;
        need("max-pool", "argmax", argmax, out)?;
        let p = self.uniform(words);
        let entries = [(0, &x.buffer), (1, &y.buffer), (2, &argmax.buffer), (3, &p)];
        Ok(self.dispatch(Kernel::MaxpoolForward, &entries, groups_1d(out)))
    }

    /// `dx[planes][h][w]` from `dy[planes][oh][ow]` and forward's `argmax`, overwriting `dx`.
    pub fn maxpool_backward_op(
        &self,
        planes: usize,
        hw: (usize, usize),
        (kernel, stride): (usize, usize),
        dy: &GpuBuffer,
        argmax: &GpuBuffer,
        dx: &GpuBuffer,
    ) -> Result<Dispatch> {
        let words = Self::pool_words(planes, hw, kernel, stride)?;
        let out = planes * words.words[5] as usize * words.words[6] as usize;
        need("max-pool backward", "dy", dy, out)?;
        need("max-pool backward", "argmax", argmax, out)?;
        need("max-pool backward", "dx", dx, planes * hw.0 * hw.1)?;
        let p = self.uniform(words);
        let entries = [
            (3, &p),
            (4, &dy.buffer),
            (5, &argmax.buffer),
            (6, &dx.buffer),
        ];
        let groups = groups_1d(planes * hw.0 * hw.1);
        Ok(self.dispatch(Kernel::MaxpoolBackward, &entries, groups))
    }

    /// `y = max(x, 0)` over `len` values.
    pub fn relu_forward_op(&self, len: usize, x: &GpuBuffer, y: &GpuBuffer) -> Result<Dispatch> {
        need("relu", "x", x, len)?;
        need("relu", "y", y, len)?;
        let p = self.uniform(Words::default().u(len)?);
        let entries = [(0, &x.buffer), (1, &y.buffer), (2, &p)];
        Ok(self.dispatch(Kernel::ReluForward, &entries, groups_1d(len)))
    }

    /// `dx = dy·[y > 0]` over `len` values (`y` is forward's output).
    pub fn relu_backward_op(
        &self,
        len: usize,
        y: &GpuBuffer,
        dy: &GpuBuffer,
        dx: &GpuBuffer,
    ) -> Result<Dispatch> {
        need("relu backward", "y", y, len)?;
        need("relu backward", "dy", dy, len)?;
        need("relu backward", "dx", dx, len)?;
        let p = self.uniform(Words::default().u(len)?);
        let entries = [(2, &p), (3, &y.buffer), (4, &dy.buffer), (5, &dx.buffer)];
        Ok(self.dispatch(Kernel::ReluBackward, &entries, groups_1d(len)))
    }

    /// `y[i] += bias[(i / inner) % bias.len]` over `len` values: `inner = H·W` adds a
    /// per-channel bias to NCHW, `inner = 1` a per-feature bias to `[N, F]`.
    pub fn add_bias_op(
        &self,
        len: usize,
        inner: usize,
        y: &GpuBuffer,
        bias: &GpuBuffer,
    ) -> Result<Dispatch> {
        need("add-bias", "y", y, len)?;
        if inner == 0 || bias.is_empty() {
            return Err(Error::Invalid("GPU add-bias: empty bias or plane".into()));
        }
        let p = self.uniform(Words::default().u(len)?.u(inner)?.u(bias.len)?);
        let entries = [(1, &y.buffer), (2, &p), (6, &bias.buffer)];
        Ok(self.dispatch(Kernel::AddBias, &entries, groups_1d(len)))
    }

    /// `y[b][a][k] = x[a][b][k]` for `x[A, B, inner]`.
    pub fn permute_op(
        &self,
        (outer_a, outer_b, inner): (usize, usize, usize),
        x: &GpuBuffer,
        y: &GpuBuffer,
    ) -> Result<Dispatch> {
        let len = outer_a * outer_b * inner;
        need("permute", "x", x, len)?;
        need("permute", "y", y, len)?;
        let words = Words::default()
            .u(len)?
            .u(inner.max(1))?
            .u(0)?
            .u(outer_a.max(1))?
            .u(outer_b)?;
        let p = self.uniform(words);
        let entries = [(0, &x.buffer), (1, &y.buffer), (2, &p)];
        Ok(self.dispatch(Kernel::Permute, &entries, groups_1d(len)))
    }

    /// `out[j] = Σ_{i < len} x[j·sj + i·si]` for `j < outputs`, overwriting `out`.
    pub fn sum_reduce_op(
        &self,
        outputs: usize,
        len: usize,
        (sj, si): (usize, usize),
        x: &GpuBuffer,
        out: &GpuBuffer,
    ) -> Result<Dispatch> {
        if outputs == 0 || outputs > MAX_GROUPS {
            return Err(Error::Invalid(format!(
                "GPU sum-reduce: {outputs} outputs (1 to {MAX_GROUPS})"
            )));
        }
        need("sum-reduce", "x", x, span(outputs, len, (sj, si)))?;
        need("sum-reduce", "out", out, outputs)?;
        let words = Words::default()
            .u(len)?
            .u(0)?
            .u(0)?
            .u(0)?
            .u(0)?
            .u(sj)?
            .u(si)?;
        let p = self.uniform(words);
        let entries = [(0, &x.buffer), (1, &out.buffer), (2, &p)];
        Ok(self.dispatch(Kernel::SumReduce, &entries, (outputs as u32, 1, 1)))
    }

    /// Softmax cross-entropy of `logits[n, classes]` against `labels[n]` (u32): writes
    /// `grad = (softmax − target)·scale` and the batch's loss sum and hit count to
    /// `stats[2·slot..]`, where `slot` is read from the step uniform `step`.
    #[allow(clippy::too_many_arguments)]
    pub fn softmax_xent_op(
        &self,
        (n, classes): (usize, usize),
        smoothing: f32,
        scale: f32,
        logits: &GpuBuffer,
        labels: &GpuBuffer,
        grad: &GpuBuffer,
        stats: &GpuBuffer,
        step: &wgpu::Buffer,
    ) -> Result<Dispatch> {
        if classes == 0 {
            return Err(Error::Invalid("GPU softmax: no classes".into()));
        }
        need("softmax", "logits", logits, n * classes)?;
        need("softmax", "labels", labels, n)?;
        need("softmax", "grad", grad, n * classes)?;
        need("softmax", "stats", stats, 2)?;
        let p = self.uniform(Words::default().u(n)?.u(classes)?.f(smoothing).f(scale));
        let entries = [
            (0, &logits.buffer),
            (1, &labels.buffer),
            (2, &grad.buffer),
            (3, &stats.buffer),
            (4, &p),
            (5, step),
        ];
        Ok(self.dispatch(Kernel::SoftmaxXent, &entries, (1, 1, 1)))
    }

    /// One SGD step on `w` (see `kernels/optim.wgsl`); the learning rate and first-step
    /// flag come from the step uniform. `buf` is the momentum buffer (any one-value
    /// buffer when `momentum` is 0).
    #[allow(clippy::too_many_arguments)]
    pub fn sgd_op(
        &self,
        (momentum, weight_decay, nesterov): (f32, f32, bool),
        w: &GpuBuffer,
        grad: &GpuBuffer,
        buf: &GpuBuffer,
        step: &wgpu::Buffer,
    ) -> Result<Dispatch> {
        let len = w.len;
        need("sgd", "grad", grad, len)?;
        if momentum != 0.0 {
            need("sgd", "momentum", buf, len)?;
        }
        let words = Words::default()
            .u(len)?
            .f(momentum)
            .f(weight_decay)
            .u(usize::from(nesterov))?;
        let p = self.uniform(words);
        let entries = [
            (0, &w.buffer),
            (1, &grad.buffer),
            (2, &buf.buffer),
            (3, &p),
            (4, step),
        ];
        Ok(self.dispatch(Kernel::Sgd, &entries, groups_1d(len)))
    }

    /// One Adam/AdamW step on `w` with moments `m`, `v`; learning rate and bias corrections
    /// come from the step uniform.
    #[allow(clippy::too_many_arguments)]
    pub fn adam_op(
        &self,
        (beta1, beta2, eps): (f32, f32, f32),
        (weight_decay, decoupled): (f32, bool),
        w: &GpuBuffer,
        grad: &GpuBuffer,
        m: &GpuBuffer,
        v: &GpuBuffer,
        step: &wgpu::Buffer,
    ) -> Result<Dispatch> {
        let len = w.len;
        need("adam", "grad", grad, len)?;
        need("adam", "m", m, len)?;
        need("adam", "v", v, len)?;
        let words = Words::default()
            .u(len)?
            .f(0.0)
            .f(weight_decay)
            .u(0)?
            .f(beta1)
            .f(beta2)
            .f(eps)
            .u(usize::from(decoupled))?;
        let p = self.uniform(words);
        let entries = [
            (0, &w.buffer),
            (1, &grad.buffer),
            (2, &m.buffer),
            (3, &p),
            (4, step),
            (5, &v.buffer),
        ];
        Ok(self.dispatch(Kernel::Adam, &entries, groups_1d(len)))
    }

    /// Writes the per-step values read by [`Gpu::softmax_xent_op`], [`Gpu::sgd_op`] and
    /// [`Gpu::adam_op`] into `step`: learning rate, first-step flag, stats slot and Adam's
    /// bias corrections `1 − β₁ᵗ`, `1 − β₂ᵗ`.
    pub fn write_step(
        &self,
        step: &wgpu::Buffer,
        lr: f32,
        first: bool,
        slot: usize,
        (bias1, bias2): (f32, f32),
    ) -> Result<()> {
        let words = Words::default()
            .f(lr)
            .u(usize::from(first))?
            .u(slot)?
            .f(bias1)
            .f(bias2);
        self.queue
            .write_buffer(step, 0, bytemuck::cast_slice(&words.words));
        Ok(())
    }
}
