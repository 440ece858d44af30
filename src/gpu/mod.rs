//! The wgpu compute-shader path (feature `wgpu`): a GPU device and the kernels in
//! `kernels/*.wgsl`.
//!
//! Today it holds the GEMM (`kernels/gemm.wgsl`: 64×64 tiles per workgroup, 4×4 register
//! tiles per invocation, vec4 staging in workgroup memory), with the same strided
//! interface as [`crate::cpu::gemm::gemm`], tested against it. The rest of the training
//! step on the device is still to come (see the project's issue on the wgpu path).

use crate::error::{Error, Result};
use wgpu::util::DeviceExt;

/// A GPU (any adapter wgpu finds: Vulkan, Metal, DX12, or Mesa's lavapipe on the CPU) with
/// the compiled kernels.
pub struct Gpu {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    gemm: wgpu::ComputePipeline,
}

/// Uniform block of `kernels/gemm.wgsl` (12 × u32, 48 bytes).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct GemmParams {
    m: u32,
    n: u32,
    k: u32,
    rsa: u32,
    csa: u32,
    rsb: u32,
    csb: u32,
    rsc: u32,
    accumulate: u32,
    pad: [u32; 3],
}

/// Tile of C per workgroup, as in the shader.
const TILE: usize = 64;

impl Gpu {
    /// Opens the first adapter wgpu offers (high performance preferred) and compiles the kernels.
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
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("gemm.wgsl"),
            source: wgpu::ShaderSource::Wgsl(include_str!("../../kernels/gemm.wgsl").into()),
        });
        let gemm = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some("gemm"),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        Ok(Gpu {
            device,
            queue,
            info,
            gemm,
        })
    }

    /// The adapter's name and backend, e.g. `llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan)`.
    pub fn adapter_name(&self) -> String {
        format!("{} ({:?})", self.info.name, self.info.backend)
    }

    /// `C[m×n] (=|+=) A[m×k] · B[k×n]` on the GPU, same arguments as
    /// [`crate::cpu::gemm::gemm`]; `c` is uploaded (when accumulating), computed and read back.
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
        let span =
            |rows: usize, cols: usize, rs: usize, cs: usize| (rows - 1) * rs + (cols - 1) * cs + 1;
        let c_len = span(m, n, rsc, 1);
        let too_short = |what: &str, need: usize, have: usize| {
            Error::Invalid(format!(
                "Gpu::gemm: {what} has {have} elements, needs {need}"
            ))
        };
        if c.len() < c_len {
            return Err(too_short("C", c_len, c.len()));
        }
        if k == 0 {
            if !accumulate {
                c.chunks_mut(rsc.max(1))
                    .take(m)
                    .for_each(|row| row[..n].fill(0.0));
            }
            return Ok(());
        }
        let (a_len, b_len) = (span(m, k, rsa, csa), span(k, n, rsb, csb));
        if a.len() < a_len {
            return Err(too_short("A", a_len, a.len()));
        }
        if b.len() < b_len {
            return Err(too_short("B", b_len, b.len()));
        }
        let to_u32 = |v: usize| {
            u32::try_from(v).map_err(|_| Error::Invalid(format!("Gpu::gemm: {v} exceeds u32")))
        };
        let params = GemmParams {
            m: to_u32(m)?,
            n: to_u32(n)?,
            k: to_u32(k)?,
            rsa: to_u32(rsa)?,
            csa: to_u32(csa)?,
            rsb: to_u32(rsb)?,
            csb: to_u32(csb)?,
            rsc: to_u32(rsc)?,
            accumulate: u32::from(accumulate),
            pad: [0; 3],
        };
        let storage = |label, data: &[f32], usage| {
            self.device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some(label),
                    contents: bytemuck::cast_slice(data),
                    usage,
                })
        };
        use wgpu::BufferUsages as U;
        let a_buf = storage("a", &a[..a_len], U::STORAGE);
        let b_buf = storage("b", &b[..b_len], U::STORAGE);
        let c_buf = storage("c", &c[..c_len], U::STORAGE | U::COPY_SRC);
        let p_buf = self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("params"),
                contents: bytemuck::bytes_of(&params),
                usage: U::UNIFORM,
            });
        let read = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: (c_len * 4) as u64,
            usage: U::MAP_READ | U::COPY_DST,
            mapped_at_creation: false,
        });
        let bind = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("gemm"),
            layout: &self.gemm.get_bind_group_layout(0),
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: a_buf.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: b_buf.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: c_buf.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 3,
                    resource: p_buf.as_entire_binding(),
                },
            ],
        });
        let mut enc = self.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            pass.set_pipeline(&self.gemm);
            pass.set_bind_group(0, &bind, &[]);
            pass.dispatch_workgroups(n.div_ceil(TILE) as u32, m.div_ceil(TILE) as u32, 1);
        }
        enc.copy_buffer_to_buffer(&c_buf, 0, &read, 0, (c_len * 4) as u64);
        self.queue.submit([enc.finish()]);
        let (tx, rx) = std::sync::mpsc::channel();
        read.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Invalid(format!("GPU wait failed: {e}")))?;
        rx.recv()
            .map_err(|_| Error::Invalid("GPU read-back never completed".into()))?
            .map_err(|e| Error::Invalid(format!("GPU read-back failed: {e}")))?;
        let view = read
            .get_mapped_range(..)
            .map_err(|e| Error::Invalid(format!("GPU read-back failed: {e}")))?;
        c[..c_len].copy_from_slice(bytemuck::cast_slice(&view));
        Ok(())
    }
}
