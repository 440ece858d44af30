//! The wgpu compute-shader path (feature `wgpu`): a GPU device, buffers that live on it,
//! and the kernels of `kernels/*.wgsl`.
//!
//! - [`Gpu`] opens an adapter and compiles every kernel once;
//! - [`GpuBuffer`] is a run of `f32` (or `u32`) on the device;
//! - [`ops`] turns a kernel plus its buffers into a [`Dispatch`], recorded once and replayed
//!   every step;
//! - [`GpuNet`] mirrors a [`crate::Sequential`] on the device and trains it there: one
//!   submission per step, nothing read back but the loss and hit counts.
//!
//! The layers stay as they are: each one says what it computes through
//! [`crate::layers::Layer::kind`], and [`GpuNet`] runs that with the device's kernels.

mod net;
pub mod ops;

pub use net::{GpuNet, STATS_SLOTS, Totals, evaluate, train_epoch};
pub use ops::{Dispatch, GemmShape, Kernel};

use crate::error::{Error, Result};
use wgpu::util::DeviceExt;

/// A GPU (any adapter wgpu finds: Vulkan, Metal, DX12, or Mesa's lavapipe on the CPU) with
/// the compiled kernels.
pub struct Gpu {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    /// One pipeline per [`Kernel`], indexed by `kernel as usize`.
    pipelines: Vec<wgpu::ComputePipeline>,
}

/// `len` values of 4 bytes (`f32` or `u32`) in device memory.
#[derive(Clone, Debug)]
pub struct GpuBuffer {
    buffer: wgpu::Buffer,
    len: usize,
}

impl GpuBuffer {
    /// Number of 4-byte values.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no values.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Usage of every storage buffer: bound to kernels, written from and read back to the host.
const STORAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_DST)
    .union(wgpu::BufferUsages::COPY_SRC);

impl Gpu {
    /// Opens the first adapter wgpu offers (high performance preferred) and compiles the
    /// kernels. An error (not a panic) when there is none.
    pub fn new() -> Result<Self> {
        let instance = wgpu::Instance::default();
        let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            ..Default::default()
        }))
        .map_err(|e| Error::Invalid(format!("no GPU adapter found by wgpu: {e}")))?;
        let info = adapter.get_info();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("ferroconv"),
            required_limits: adapter.limits(),
            ..Default::default()
        }))
        .map_err(|e| Error::Invalid(format!("cannot open GPU {}: {e}", info.name)))?;
        let pipelines = ops::compile(&device);
        Ok(Gpu {
            device,
            queue,
            info,
            pipelines,
        })
    }

    /// The adapter's name and backend, e.g. `llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan)`.
    pub fn adapter_name(&self) -> String {
        format!("{} ({:?})", self.info.name, self.info.backend)
    }

    /// Largest storage buffer one kernel may bind, in 4-byte values.
    pub fn max_buffer_len(&self) -> usize {
        let limits = self.device.limits();
        limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size) as usize
            / 4
    }

    fn checked_len(&self, len: usize, what: &str) -> Result<u64> {
        if len > self.max_buffer_len() {
            return Err(Error::Invalid(format!(
                "{what}: {len} values exceed this GPU's largest buffer ({} values)",
                self.max_buffer_len()
            )));
        }
        // Zero-sized bindings are invalid: keep one value.
        Ok(len.max(1) as u64 * 4)
    }

    /// A buffer of `len` zeros.
    pub fn zeros(&self, len: usize) -> Result<GpuBuffer> {
        let size = self.checked_len(len, "GPU buffer")?;
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size,
            usage: STORAGE,
            mapped_at_creation: false,
        });
        Ok(GpuBuffer { buffer, len })
    }

    /// A buffer holding a copy of `data`.
    pub fn upload(&self, data: &[f32]) -> Result<GpuBuffer> {
        self.upload_bytes(bytemuck::cast_slice(data), data.len())
    }

    /// A buffer holding a copy of `data` (indices, labels).
    pub fn upload_u32(&self, data: &[u32]) -> Result<GpuBuffer> {
        self.upload_bytes(bytemuck::cast_slice(data), data.len())
    }

    fn upload_bytes(&self, bytes: &[u8], len: usize) -> Result<GpuBuffer> {
        self.checked_len(len, "GPU upload")?;
        if len == 0 {
            return self.zeros(0);
        }
        let buffer = self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: None,
                contents: bytes,
                usage: STORAGE,
            });
        Ok(GpuBuffer { buffer, len })
    }

    /// Queues a copy of `data` into the start of `buf`; it lands before the next
    /// submission runs (and after the previous one).
    pub fn write(&self, buf: &GpuBuffer, data: &[f32]) -> Result<()> {
        self.write_bytes(buf, bytemuck::cast_slice(data), data.len())
    }

    /// [`Gpu::write`] for `u32` values.
    pub fn write_u32(&self, buf: &GpuBuffer, data: &[u32]) -> Result<()> {
        self.write_bytes(buf, bytemuck::cast_slice(data), data.len())
    }

    fn write_bytes(&self, buf: &GpuBuffer, bytes: &[u8], len: usize) -> Result<()> {
        if len > buf.len {
            return Err(Error::Invalid(format!(
                "GPU write: {len} values into a buffer of {}",
                buf.len
            )));
        }
        if len > 0 {
            self.queue.write_buffer(&buf.buffer, 0, bytes);
        }
        Ok(())
    }

    /// The first `len` values of `buf`, after all work submitted so far (waits for it).
    pub fn download(&self, buf: &GpuBuffer, len: usize) -> Result<Vec<f32>> {
        let mut out = vec![0.0f32; len];
        self.download_into(buf, &mut out)?;
        Ok(out)
    }

    /// Fills `out` from the start of `buf`, after all work submitted so far.
    pub fn download_into(&self, buf: &GpuBuffer, out: &mut [f32]) -> Result<()> {
        if out.len() > buf.len {
            return Err(Error::Invalid(format!(
                "GPU read-back: {} values from a buffer of {}",
                out.len(),
                buf.len
            )));
        }
        if out.is_empty() {
            return Ok(());
        }
        let size = out.len() as u64 * 4;
        let read = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("read-back"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = self.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(&buf.buffer, 0, &read, 0, size);
        self.queue.submit([enc.finish()]);
        let (tx, rx) = std::sync::mpsc::channel();
        read.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.wait()?;
        rx.recv()
            .map_err(|_| Error::Invalid("GPU read-back never completed".into()))?
            .map_err(|e| Error::Invalid(format!("GPU read-back failed: {e}")))?;
        let view = read
            .get_mapped_range(..)
            .map_err(|e| Error::Invalid(format!("GPU read-back failed: {e}")))?;
        out.copy_from_slice(bytemuck::cast_slice(&view));
        Ok(())
    }

    /// Blocks until all submitted work is done.
    pub fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| Error::Invalid(format!("GPU wait failed: {e}")))
    }

    /// Records `dispatches` in order into one compute pass and submits it (no wait).
    pub fn submit<'a>(&self, dispatches: impl IntoIterator<Item = &'a Dispatch>) {
        let mut enc = self.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            for d in dispatches {
                pass.set_pipeline(&self.pipelines[d.kernel as usize]);
                pass.set_bind_group(0, &d.bind, &[]);
                let (x, y, z) = d.groups;
                pass.dispatch_workgroups(x, y, z);
            }
        }
        self.queue.submit([enc.finish()]);
    }

    /// Runs `dispatches` in order and waits for them.
    pub fn run<'a>(&self, dispatches: impl IntoIterator<Item = &'a Dispatch>) -> Result<()> {
        self.submit(dispatches);
        self.wait()
    }

    /// `C[m×n] (=|+=) A[m×k] · B[k×n]` on the GPU with host operands, the arguments of
    /// [`crate::cpu::gemm::gemm`]: uploads A, B (and C when accumulating), runs
    /// [`Gpu::gemm_op`]'s kernels, reads C back. For tests and benches; training keeps its matrices
    /// on the device (see [`ops`]).
    #[allow(clippy::too_many_arguments)]
    pub fn gemm(
        &self,
        m: usize,
        k: usize,
        n: usize,
        a: &[f32],
        (rsa, csa): (usize, usize),
        b: &[f32],
        (rsb, csb): (usize, usize),
        c: &mut [f32],
        rsc: usize,
        accumulate: bool,
    ) -> Result<()> {
        if m == 0 || n == 0 {
            return Ok(());
        }
        let shape = GemmShape {
            m,
            k,
            n,
            a: (rsa, csa),
            b: (rsb, csb),
            rsc,
            accumulate,
        };
        let c_len = (m - 1) * rsc + n;
        if c.len() < c_len {
            return Err(Error::Invalid(format!(
                "Gpu::gemm: C has {} elements, needs {c_len}",
                c.len()
            )));
        }
        let (a_len, b_len) = (shape.a_len(), shape.b_len());
        let short = |what: &str, need: usize, have: usize| {
            Error::Invalid(format!(
                "Gpu::gemm: {what} has {have} elements, needs {need}"
            ))
        };
        if a.len() < a_len {
            return Err(short("A", a_len, a.len()));
        }
        if b.len() < b_len {
            return Err(short("B", b_len, b.len()));
        }
        let a_buf = self.upload(&a[..a_len])?;
        let b_buf = self.upload(&b[..b_len])?;
        let c_buf = self.upload(&c[..c_len])?;
        let ops = self.gemm_op(&shape, &a_buf, &b_buf, &c_buf)?;
        self.submit(&ops);
        self.download_into(&c_buf, &mut c[..c_len])
    }
}
