//! A [`Sequential`] mirrored on the GPU: parameters, gradients, optimizer state and every
//! activation live in device buffers; a training step is one submission of dispatches
//! recorded when its batch size was first seen.
//!
//! Per layer (`N` batch, `P = OH·OW`, `R = C·K·K`; cf. `layers/conv2d.rs`):
//! - Conv2d forward:  `cols[R, N·P] = im2col(x)`; `Y'[Cout, N·P] = W · cols`;
//!   `y[N, Cout, P] = permute(Y') + b`.
//!   backward: `dY' = permute(dy)`; `dW = dY' · colsᵀ`; `db = Σ_cols dY'`;
//!   `dcols = Wᵀ · dY'` (into `cols`'s buffer); `dx = col2im(dcols)`.
//! - Dense: `y = x · Wᵀ + b`; `dW = dyᵀ · x`; `db = Σ_n dy`; `dx = dy · W`.
//! - ReLU, MaxPool2d: their kernels; Flatten: the same buffer under another shape.
//!
//! The loss kernel writes each step's loss sum and hit count into a slot of a small stats
//! buffer; the host reads the slots back every [`STATS_SLOTS`] steps (which also bounds
//! how far it runs ahead of the GPU) and at the end of an epoch. Nothing else comes back.

use super::{Dispatch, GemmShape, Gpu, GpuBuffer, Kernel};
use crate::cpu::im2col::ConvGeometry;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::layers::{LayerKind, ParamKind};
use crate::model::Sequential;
use crate::optim::{Optimizer, UpdateRule};
use crate::tensor::Tensor;
use crate::train::{
    EpochStats, Evaluation, Plan, Progress, StepReport, evaluate_with, for_each_batch,
};
use std::time::Instant;

/// Steps whose loss and hits wait on the device before the host reads them back.
pub const STATS_SLOTS: usize = 256;

/// One layer as the device runs it: what it is and its item shapes.
struct Node {
    kind: LayerKind,
    input: Vec<usize>,
    output: Vec<usize>,
    /// Index of its first parameter in [`GpuNet::params`].
    first_param: usize,
}

/// A parameter on the device: values, gradient and optimizer state
/// (`[momentum]` for SGD with momentum, `[exp_avg, exp_avg_sq]` for Adam).
struct DeviceParam {
    name: String,
    value: GpuBuffer,
    grad: GpuBuffer,
    state: Vec<GpuBuffer>,
}

/// What a layer's forward leaves for its backward, in device buffers.
enum Saved {
    /// Nothing (ReLU reads its output, dense its input: both are activations anyway).
    Nothing,
    /// A convolution's im2col columns (reused for `dcols`) and its product before the
    /// permute (reused for `dY'`).
    Conv { cols: GpuBuffer, yp: GpuBuffer },
    /// A max-pool's winners.
    Pool { argmax: GpuBuffer },
}

/// The dispatches of one forward (eval) or training step at one batch size.
struct Program {
    batch: usize,
    train: bool,
    input: GpuBuffer,
    labels: GpuBuffer,
    logits: GpuBuffer,
    dispatches: Vec<Dispatch>,
}

/// Loss sum, hits and images of the steps read back so far.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Totals {
    /// Sum of the per-image losses.
    pub loss_sum: f64,
    /// Images classified right.
    pub correct: usize,
    /// Images seen.
    pub seen: usize,
}

/// A model mirrored on a [`Gpu`], trained there step by step.
pub struct GpuNet {
    gpu: Gpu,
    nodes: Vec<Node>,
    input_shape: Vec<usize>,
    classes: usize,
    params: Vec<DeviceParam>,
    smoothing: f32,
    rule: UpdateRule,
    /// The per-step uniform (learning rate, first step, stats slot, bias corrections).
    step: wgpu::Buffer,
    /// `[STATS_SLOTS][loss sum, hits]`.
    stats: GpuBuffer,
    /// The optimizer's dispatches, one per parameter, shared by every batch size.
    update: Vec<Dispatch>,
    programs: Vec<Program>,
    /// Batch size of each step whose stats are still on the device.
    pending: Vec<usize>,
    totals: Totals,
    labels: Vec<u32>,
}

impl GpuNet {
    /// Copies `model`'s parameters and `opt`'s state to `gpu`. Every layer must have device
    /// kernels (Conv2d, Dense, ReLU, MaxPool2d, Flatten); the error names the first that
    /// has not. `smoothing` is the loss's label smoothing.
    pub fn new(
        gpu: Gpu,
        model: &mut Sequential,
        opt: &mut dyn Optimizer,
        smoothing: f32,
    ) -> Result<Self> {
        let mut nodes = Vec::new();
        let mut shape = model.input_shape().to_vec();
        let mut n_params = 0;
        for (i, (_, layer, out)) in model.layers().enumerate() {
            let kind = layer.kind();
            let params = match kind {
                LayerKind::Conv2d { bias, .. } | LayerKind::Dense { bias, .. } => {
                    1 + usize::from(bias)
                }
                LayerKind::ReLU | LayerKind::MaxPool2d { .. } | LayerKind::Flatten => 0,
                LayerKind::Other => {
                    return Err(Error::Invalid(format!(
                        "layer {i} ({}) has no wgpu kernels yet: the wgpu path runs \
                         Conv2d, Dense, ReLU, MaxPool2d and Flatten",
                        layer.describe()
                    )));
                }
            };
            nodes.push(Node {
                kind,
                input: shape.clone(),
                output: out.to_vec(),
                first_param: n_params,
            });
            n_params += params;
            shape = out.to_vec();
        }
        let &[classes] = shape.as_slice() else {
            return Err(Error::Invalid(format!(
                "the wgpu path needs a classifier ending in [classes], got {shape:?}"
            )));
        };
        let mut host: Vec<(String, ParamKind, Vec<f32>)> = Vec::new();
        model.visit_params(&mut |name, p| host.push((name.to_string(), p.kind, p.value.to_vec())));
        if host.len() != n_params {
            return Err(Error::Invalid(format!(
                "wgpu path: the model has {} parameters, its layers' kinds say {n_params}",
                host.len()
            )));
        }
        let rule = opt.rule();
        let state_names = |name: &str| -> Vec<String> {
            match rule {
                UpdateRule::Sgd { momentum, .. } if momentum != 0.0 => {
                    vec![format!("momentum.{name}")]
                }
                UpdateRule::Sgd { .. } => Vec::new(),
                UpdateRule::Adam { .. } => {
                    vec![format!("exp_avg.{name}"), format!("exp_avg_sq.{name}")]
                }
            }
        };
        let host_state = opt.state(model);
        let mut params = Vec::with_capacity(host.len());
        for (name, _, value) in &host {
            let mut state = Vec::new();
            for s in state_names(name) {
                let Some((_, buf)) = host_state.iter().find(|(n, _)| *n == s) else {
                    return Err(Error::Invalid(format!("optimizer has no state {s}")));
                };
                if buf.len() != value.len() {
                    return Err(Error::Invalid(format!(
                        "optimizer state {s} has {} values, the parameter {}",
                        buf.len(),
                        value.len()
                    )));
                }
                state.push(gpu.upload(buf)?);
            }
            params.push(DeviceParam {
                name: name.clone(),
                value: gpu.upload(value)?,
                grad: gpu.zeros(value.len())?,
                state,
            });
        }
        let step = gpu.step_uniform();
        let placeholder = gpu.zeros(1)?;
        let mut update = Vec::with_capacity(params.len());
        for (p, (_, kind, _)) in params.iter().zip(&host) {
            update.push(match rule {
                UpdateRule::Sgd {
                    momentum,
                    weight_decay,
                    nesterov,
                    decay_filter,
                } => {
                    let wd = decay_filter.decay_for(*kind, weight_decay);
                    let buf = p.state.first().unwrap_or(&placeholder);
                    gpu.sgd_op((momentum, wd, nesterov), &p.value, &p.grad, buf, &step)?
                }
                UpdateRule::Adam {
                    betas,
                    eps,
                    weight_decay,
                    decoupled,
                    decay_filter,
                } => {
                    let wd = decay_filter.decay_for(*kind, weight_decay);
                    let (m, v) = (&p.state[0], &p.state[1]);
                    let hp = (betas.0, betas.1, eps);
                    gpu.adam_op(hp, (wd, decoupled), &p.value, &p.grad, m, v, &step)?
                }
            });
        }
        let stats = gpu.zeros(2 * STATS_SLOTS)?;
        Ok(GpuNet {
            gpu,
            nodes,
            input_shape: model.input_shape().to_vec(),
            classes,
            params,
            smoothing,
            rule,
            step,
            stats,
            update,
            programs: Vec::new(),
            pending: Vec::new(),
            totals: Totals::default(),
            labels: Vec::new(),
        })
    }

    /// The device.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// Number of classes (the model's output size).
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Index of the program for `(batch, train)`, built on first use.
    fn program(&mut self, batch: usize, train: bool) -> Result<usize> {
        if let Some(i) = self
            .programs
            .iter()
            .position(|p| p.batch == batch && p.train == train)
        {
            return Ok(i);
        }
        let p = self.build(batch, train)?;
        self.programs.push(p);
        Ok(self.programs.len() - 1)
    }

    /// Records a forward (and, when training, loss and backward) pass for `n` images.
    fn build(&self, n: usize, train: bool) -> Result<Program> {
        let g = &self.gpu;
        let item: usize = self.input_shape.iter().product();
        let input = g.zeros(n * item)?;
        let labels = g.zeros(n)?;
        let mut acts = vec![input.clone()];
        let mut saved: Vec<Saved> = Vec::new();
        let mut ops = Vec::new();
        for node in &self.nodes {
            let x = acts.last().expect("input").clone();
            let out_len = n * node.output.iter().product::<usize>();
            let param = |k: usize| &self.params[node.first_param + k];
            match node.kind {
                LayerKind::Conv2d {
                    out_channels: cout,
                    bias,
                    ..
                } => {
                    let geom = conv_geometry(&node.kind, &node.input);
                    let (r, p) = (geom.col_rows(), geom.col_cols());
                    let cols = g.zeros(r * n * p)?;
                    let yp = g.zeros(cout * n * p)?;
                    let y = g.zeros(out_len)?;
                    let fwd = GemmShape {
                        m: cout,
                        k: r,
                        n: n * p,
                        a: (r, 1),
                        b: (n * p, 1),
                        rsc: n * p,
                        accumulate: false,
                    };
                    ops.push(g.im2col_op(&geom, n, &x, &cols)?);
                    ops.extend(g.gemm_op(&fwd, &param(0).value, &cols, &yp)?);
                    ops.push(g.permute_op((cout, n, p), &yp, &y)?);
                    if bias {
                        ops.push(g.add_bias_op(out_len, p, &y, &param(1).value)?);
                    }
                    saved.push(Saved::Conv { cols, yp });
                    acts.push(y);
                }
                LayerKind::Dense {
                    inputs,
                    outputs,
                    bias,
                    ..
                } => {
                    let y = g.zeros(out_len)?;
                    let fwd = GemmShape {
                        m: n,
                        k: inputs,
                        n: outputs,
                        a: (inputs, 1),
                        b: (1, inputs),
                        rsc: outputs,
                        accumulate: false,
                    };
                    ops.extend(g.gemm_op(&fwd, &x, &param(0).value, &y)?);
                    if bias {
                        ops.push(g.add_bias_op(out_len, 1, &y, &param(1).value)?);
                    }
                    saved.push(Saved::Nothing);
                    acts.push(y);
                }
                LayerKind::ReLU => {
                    let y = g.zeros(out_len)?;
                    ops.push(g.relu_forward_op(out_len, &x, &y)?);
                    saved.push(Saved::Nothing);
                    acts.push(y);
                }
                LayerKind::MaxPool2d { kernel, stride } => {
                    let (planes, hw) = planes(n, &node.input);
                    let y = g.zeros(out_len)?;
                    let argmax = g.zeros(out_len)?;
                    let win = (kernel, stride);
                    ops.push(g.maxpool_forward_op(planes, hw, win, &x, &y, &argmax)?);
                    saved.push(Saved::Pool { argmax });
                    acts.push(y);
                }
                LayerKind::Flatten => {
                    saved.push(Saved::Nothing);
                    acts.push(x);
                }
                LayerKind::Other => unreachable!("rejected by GpuNet::new"),
            }
        }
        let logits = acts.last().expect("output").clone();
        if train {
            let dlogits = g.zeros(n * self.classes)?;
            ops.push(g.softmax_xent_op(
                (n, self.classes),
                self.smoothing,
                1.0 / n as f32,
                &logits,
                &labels,
                &dlogits,
                &self.stats,
                &self.step,
            )?);
            self.record_backward(n, &acts, &saved, dlogits, &mut ops)?;
        }
        Ok(Program {
            batch: n,
            train,
            input,
            labels,
            logits,
            dispatches: ops,
        })
    }

    /// Backward through every layer, last to first, starting from `∂L/∂logits`.
    fn record_backward(
        &self,
        n: usize,
        acts: &[GpuBuffer],
        saved: &[Saved],
        dlogits: GpuBuffer,
        ops: &mut Vec<Dispatch>,
    ) -> Result<()> {
        let g = &self.gpu;
        let mut dy = dlogits;
        for (i, node) in self.nodes.iter().enumerate().rev() {
            let need_dx = i > 0;
            let in_len = n * node.input.iter().product::<usize>();
            let param = |k: usize| &self.params[node.first_param + k];
            let dx = if need_dx && node.kind != LayerKind::Flatten {
                g.zeros(in_len)?
            } else {
                dy.clone()
            };
            match node.kind {
                LayerKind::Conv2d {
                    out_channels: cout,
                    bias,
                    ..
                } => {
                    let geom = conv_geometry(&node.kind, &node.input);
                    let (r, p) = (geom.col_rows(), geom.col_cols());
                    let Saved::Conv { cols, yp: dyp } = &saved[i] else {
                        unreachable!("a convolution saves its columns")
                    };
                    ops.push(g.permute_op((n, cout, p), &dy, dyp)?);
                    let dw = GemmShape {
                        m: cout,
                        k: n * p,
                        n: r,
                        a: (n * p, 1),
                        b: (1, n * p),
                        rsc: r,
                        accumulate: false,
                    };
                    ops.extend(g.gemm_op(&dw, dyp, cols, &param(0).grad)?);
                    if bias {
                        ops.push(g.sum_reduce_op(cout, n * p, (n * p, 1), dyp, &param(1).grad)?);
                    }
                    if need_dx {
                        let dcols = GemmShape {
                            m: r,
                            k: cout,
                            n: n * p,
                            a: (1, r),
                            b: (n * p, 1),
                            rsc: n * p,
                            accumulate: false,
                        };
                        ops.extend(g.gemm_op(&dcols, &param(0).value, dyp, cols)?);
                        ops.push(g.col2im_op(&geom, n, cols, &dx)?);
                    }
                }
                LayerKind::Dense {
                    inputs,
                    outputs,
                    bias,
                    ..
                } => {
                    let dw = GemmShape {
                        m: outputs,
                        k: n,
                        n: inputs,
                        a: (1, outputs),
                        b: (inputs, 1),
                        rsc: inputs,
                        accumulate: false,
                    };
                    ops.extend(g.gemm_op(&dw, &dy, &acts[i], &param(0).grad)?);
                    if bias {
                        ops.push(g.sum_reduce_op(outputs, n, (1, outputs), &dy, &param(1).grad)?);
                    }
                    if need_dx {
                        let dxs = GemmShape {
                            m: n,
                            k: outputs,
                            n: inputs,
                            a: (outputs, 1),
                            b: (inputs, 1),
                            rsc: inputs,
                            accumulate: false,
                        };
                        ops.extend(g.gemm_op(&dxs, &dy, &param(0).value, &dx)?);
                    }
                }
                LayerKind::ReLU if need_dx => {
                    ops.push(g.relu_backward_op(in_len, &acts[i + 1], &dy, &dx)?);
                }
                LayerKind::MaxPool2d { kernel, stride } if need_dx => {
                    let (planes, hw) = planes(n, &node.input);
                    let Saved::Pool { argmax } = &saved[i] else {
                        unreachable!("a max-pool saves its winners")
                    };
                    let win = (kernel, stride);
                    ops.push(g.maxpool_backward_op(planes, hw, win, &dy, argmax, &dx)?);
                }
                _ => {}
            }
            dy = dx;
        }
        Ok(())
    }

    /// Checks a batch against the model's input and classes.
    fn check_batch(&self, images: &Tensor, labels: Option<&[u32]>) -> Result<usize> {
        let n = images.batch();
        let mut want = vec![n];
        want.extend_from_slice(&self.input_shape);
        images.expect_shape("GpuNet input", &want)?;
        if n == 0 {
            return Err(Error::Invalid("GpuNet: empty batch".into()));
        }
        if let Some(labels) = labels {
            if labels.len() != n {
                return Err(Error::Shape {
                    context: "GpuNet labels".into(),
                    expected: vec![n],
                    got: vec![labels.len()],
                });
            }
            if let Some(&bad) = labels.iter().find(|&&l| l as usize >= self.classes) {
                return Err(Error::Invalid(format!(
                    "GpuNet: label {bad} out of range for {} classes",
                    self.classes
                )));
            }
        }
        Ok(n)
    }

    /// Queues one training step on `images[N, ...]` with `labels[N]`: forward, loss,
    /// backward and the optimizer's update at learning rate `lr`, `steps` being the number
    /// of steps taken before this one. Returns once the step is submitted; the loss comes
    /// back with [`GpuNet::flush`] (every [`STATS_SLOTS`] steps it happens here).
    pub fn train_step(
        &mut self,
        images: &Tensor,
        labels: &[u32],
        lr: f32,
        steps: u64,
    ) -> Result<()> {
        if self.pending.len() == STATS_SLOTS {
            self.flush()?;
        }
        let prog = self.load_step(images, labels, lr, steps)?;
        let p = &self.programs[prog];
        self.gpu.submit(p.dispatches.iter().chain(&self.update));
        self.pending.push(p.batch);
        Ok(())
    }

    /// Checks a training batch and queues its uploads: images, labels, and the step uniform
    /// (learning rate, first step, the next stats slot, Adam's bias corrections). Returns the
    /// index of the batch size's training program.
    fn load_step(&mut self, images: &Tensor, labels: &[u32], lr: f32, steps: u64) -> Result<usize> {
        let n = self.check_batch(images, Some(labels))?;
        let prog = self.program(n, true)?;
        let p = &self.programs[prog];
        self.gpu.write(&p.input, images.data())?;
        self.labels.clear();
        self.labels.extend_from_slice(labels);
        self.gpu.write_u32(&p.labels, &self.labels)?;
        let t = i32::try_from(steps + 1).unwrap_or(i32::MAX);
        let bias = match self.rule {
            UpdateRule::Adam { betas, .. } => (1.0 - betas.0.powi(t), 1.0 - betas.1.powi(t)),
            UpdateRule::Sgd { .. } => (1.0, 1.0),
        };
        let slot = self.pending.len();
        self.gpu
            .write_step(&self.step, lr, steps == 0, slot, bias)?;
        Ok(prog)
    }

    /// Runs one training step like [`GpuNet::train_step`] (it does update the parameters),
    /// but each dispatch alone, waiting for it: `(kernel, seconds)` per dispatch, in order.
    /// For finding the slow kernel, not for speed.
    pub fn profile_step(
        &mut self,
        images: &Tensor,
        labels: &[u32],
        lr: f32,
        steps: u64,
    ) -> Result<Vec<(Kernel, f64)>> {
        self.flush()?;
        let prog = self.load_step(images, labels, lr, steps)?;
        self.gpu.wait()?;
        let p = &self.programs[prog];
        let mut out = Vec::new();
        for d in p.dispatches.iter().chain(&self.update) {
            let t = Instant::now();
            self.gpu.run([d])?;
            out.push((d.kernel(), t.elapsed().as_secs_f64()));
        }
        Ok(out)
    }

    /// Waits for the queued steps and adds their loss and hits to the running totals.
    pub fn flush(&mut self) -> Result<Totals> {
        if !self.pending.is_empty() {
            let stats = self.gpu.download(&self.stats, 2 * self.pending.len())?;
            for (s, &n) in stats.chunks_exact(2).zip(&self.pending) {
                self.totals.loss_sum += f64::from(s[0]);
                self.totals.correct += s[1] as usize;
                self.totals.seen += n;
            }
            self.pending.clear();
        }
        Ok(self.totals)
    }

    /// Steps queued whose loss has not been read back yet.
    pub fn pending_steps(&self) -> usize {
        self.pending.len()
    }

    /// [`GpuNet::flush`], then returns the totals and starts new ones.
    pub fn take_totals(&mut self) -> Result<Totals> {
        let t = self.flush()?;
        self.totals = Totals::default();
        Ok(t)
    }

    /// Eval-mode logits of `images[N, ...]` into `logits[N, classes]` (read back).
    pub fn logits(&mut self, images: &Tensor, logits: &mut Tensor) -> Result<()> {
        let n = self.check_batch(images, None)?;
        let prog = self.program(n, false)?;
        let p = &self.programs[prog];
        self.gpu.write(&p.input, images.data())?;
        self.gpu.submit(&p.dispatches);
        logits.reshape_to(&[n, self.classes]);
        self.gpu.download_into(&p.logits, logits.data_mut())
    }

    /// Copies the device's parameters into `model` and its optimizer state into `opt`
    /// (for checkpoints, CPU inference or plots). Waits for queued steps.
    pub fn sync_to_host(&mut self, model: &mut Sequential, opt: &mut dyn Optimizer) -> Result<()> {
        self.flush()?;
        let mut values = Vec::with_capacity(self.params.len());
        for p in &self.params {
            values.push(self.gpu.download(&p.value, p.value.len())?);
        }
        let mut i = 0;
        let mut mismatch = None;
        model.visit_params(&mut |name, p| {
            match values.get(i) {
                Some(v) if v.len() == p.value.len() && self.params[i].name == name => {
                    p.value.copy_from_slice(v)
                }
                _ => mismatch = Some(name.to_string()),
            }
            i += 1;
        });
        if let Some(name) = mismatch {
            return Err(Error::Invalid(format!(
                "sync_to_host: parameter {name} does not match the model the GPU copy was made from"
            )));
        }
        for (name, buf) in opt.state(model) {
            let found = self.params.iter().find_map(|p| {
                let k = name.strip_suffix(&p.name)?.strip_suffix('.')?;
                let idx = match k {
                    "momentum" | "exp_avg" => 0,
                    "exp_avg_sq" => 1,
                    _ => return None,
                };
                p.state.get(idx)
            });
            let Some(state) = found else {
                return Err(Error::Invalid(format!(
                    "sync_to_host: the GPU holds no optimizer state {name}"
                )));
            };
            self.gpu.download_into(state, buf)?;
        }
        Ok(())
    }
}

/// The geometry of a [`LayerKind::Conv2d`] on items `[C, H, W]`.
fn conv_geometry(kind: &LayerKind, input: &[usize]) -> ConvGeometry {
    let LayerKind::Conv2d {
        in_channels,
        kernel,
        stride,
        padding,
        ..
    } = *kind
    else {
        unreachable!("called for convolutions only")
    };
    ConvGeometry {
        channels: in_channels,
        height: input[1],
        width: input[2],
        kernel_h: kernel,
        kernel_w: kernel,
        stride,
        padding,
    }
}

/// `(N·C, (H, W))` for items `[C, H, W]`.
fn planes(n: usize, input: &[usize]) -> (usize, (usize, usize)) {
    (n * input[0], (input[1], input[2]))
}

/// [`crate::train::train_epoch`] on the GPU: the same batches (and augmentations) in the
/// same order, the schedule's rate at each step, the optimizer's step count kept in step.
/// `progress` is called each time the loss is read back (every [`STATS_SLOTS`] steps),
/// with `loss` the mean over the steps since the last report. A non-finite loss stops the
/// epoch with an error at that read-back, before the host's weights are touched.
pub fn train_epoch(
    net: &mut GpuNet,
    opt: &mut dyn Optimizer,
    data: &dyn Dataset,
    plan: &Plan,
    epoch: u64,
    progress: Progress<'_>,
) -> Result<EpochStats> {
    plan.check(data, epoch)?;
    let start = Instant::now();
    net.take_totals()?;
    let (mut last_sum, mut last_seen) = (0.0f64, 0usize);
    for_each_batch(data, plan, epoch, &mut |batch| {
        opt.set_lr_scale(plan.lr_scale_at(opt.steps()));
        let lr = opt.current_lr();
        let report = net.pending_steps() + 1 == STATS_SLOTS;
        net.train_step(&batch.images, &batch.labels, lr, opt.steps())?;
        opt.set_steps(opt.steps() + 1);
        if report {
            let t = net.flush()?;
            let window = (t.loss_sum - last_sum) / (t.seen - last_seen).max(1) as f64;
            crate::train::check_loss(window, epoch, opt.steps())?;
            (last_sum, last_seen) = (t.loss_sum, t.seen);
            progress(&StepReport {
                epoch,
                step: opt.steps(),
                images: t.seen,
                epoch_images: data.len(),
                loss: window,
                mean_loss: t.loss_sum / t.seen.max(1) as f64,
                lr,
            });
        }
        Ok(())
    })?;
    let t = net.take_totals()?;
    crate::train::check_loss(t.loss_sum, epoch, opt.steps())?;
    Ok(EpochStats::new(
        t.loss_sum,
        t.correct,
        t.seen,
        start,
        opt.current_lr(),
    ))
}

/// [`crate::train::evaluate`] on the GPU.
pub fn evaluate(
    net: &mut GpuNet,
    data: &dyn Dataset,
    batch_size: usize,
    tta: bool,
) -> Result<Evaluation> {
    let classes = net.classes();
    evaluate_with(data, batch_size, tta, classes, &mut |x, out| {
        net.logits(x, out)
    })
}
