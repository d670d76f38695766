//! Full-batch gradient descent on the GPU: the same steps as [`crate::cpu::CpuTrainer`], as one program of
//! kernel dispatches over one arena that holds every tensor.

use std::ops::Range;

use super::{Gpu, Op, Program};
use crate::cpu::{MatmulShape, check_params_len};
use crate::network::{Carver, Dataset, Network, ParamLayout, check_lr};
use crate::{Error, Result};

/// Epochs recorded into one command buffer: enough to keep the queue busy, few enough to bound its memory.
const EPOCHS_PER_SUBMIT: usize = 256;

/// Where every tensor sits in the arena. Parameters come first, so the [`ParamLayout`] ranges are arena ranges;
/// the gradients follow in the same layout. Per layer l (from 1): `pre[l-1]` = z, `activations[l]` = σ(z), and
/// their gradients; `activations[0]` is the input batch.
struct Arena {
    len: usize,
    params: Range<usize>,
    grads: Range<usize>,
    targets: Range<usize>,
    activations: Vec<Range<usize>>,
    pre: Vec<Range<usize>>,
    dactivations: Vec<Range<usize>>,
    dpre: Vec<Range<usize>>,
}

impl Arena {
    fn new(layout: &ParamLayout, network: &Network, rows: usize) -> Self {
        let mut carve = Carver::default();
        let params = carve.take(layout.len);
        let grads = carve.take(layout.len);
        let mut batch = |size: usize| carve.take(rows * size);
        let sizes = network.sizes();
        let targets = batch(network.outputs());
        let activations: Vec<_> = sizes.iter().map(|&s| batch(s)).collect();
        let pre = sizes[1..].iter().map(|&s| batch(s)).collect();
        let dactivations = sizes.iter().map(|&s| batch(s)).collect();
        let dpre = sizes[1..].iter().map(|&s| batch(s)).collect();
        Arena {
            len: carve.used(),
            params,
            grads,
            targets,
            activations,
            pre,
            dactivations,
            dpre,
        }
    }

    /// Where `range` of the parameters has its gradient.
    fn grad(&self, range: &Range<usize>) -> Range<usize> {
        self.grads.start + range.start..self.grads.start + range.end
    }

    fn output(&self) -> Range<usize> {
        self.activations
            .last()
            .expect("a network has an output layer")
            .clone()
    }
}

/// Trains a network on the GPU; all state stays on the device until asked for.
pub struct GpuTrainer<'gpu> {
    gpu: &'gpu Gpu,
    arena: Arena,
    buffer: wgpu::Buffer,
    forward: Program,
    step: Program,
}

impl<'gpu> GpuTrainer<'gpu> {
    /// Uploads the parameters and the data once and builds the forward and training programs.
    pub async fn new(
        gpu: &'gpu Gpu,
        network: &Network,
        params: &[f32],
        data: &Dataset,
        lr: f32,
    ) -> Result<Self> {
        check_lr(lr)?;
        data.check_fits(network)?;
        let layout = network.layout();
        let arena = Arena::new(&layout, network, data.rows);
        // Before anything is allocated, so that an impossible network fails fast.
        gpu.check_fits(&format!("the network {:?}", network.sizes()), arena.len)?;
        check_params_len(&layout, params.len())?;
        let scope = gpu.device.push_error_scope(wgpu::ErrorFilter::Validation);

        let mut initial = vec![0.0; arena.len];
        initial[arena.params.clone()].copy_from_slice(params);
        initial[arena.activations[0].clone()].copy_from_slice(&data.inputs);
        initial[arena.targets.clone()].copy_from_slice(&data.targets);
        let buffer = gpu.create_arena("arena", &initial)?;

        let forward = forward_ops(&arena, &layout, data.rows)?;
        let mut step = forward.clone();
        step.extend(backward_ops(&arena, &layout, data.rows)?);
        step.push(Op::sgd_update(
            arena.params.clone(),
            arena.grads.clone(),
            lr,
        )?);

        let trainer = GpuTrainer {
            gpu,
            forward: gpu.program(&buffer, &forward)?,
            step: gpu.program(&buffer, &step)?,
            buffer,
            arena,
        };
        if let Some(error) = scope.pop().await {
            return Err(Error::Gpu {
                during: "uploading the network and building its programs",
                reason: error.to_string(),
            });
        }
        Ok(trainer)
    }

    /// Submits `epochs` training steps (forward, backward, update) without waiting for them or reading back.
    pub fn train(&mut self, epochs: usize) {
        let mut left = epochs;
        while left > 0 {
            let now = left.min(EPOCHS_PER_SUBMIT);
            self.gpu.submit(&self.step, now);
            left -= now;
        }
    }

    /// The network's outputs for the training inputs under the current parameters.
    pub async fn outputs(&self) -> Result<Vec<f32>> {
        self.gpu.submit(&self.forward, 1);
        self.gpu.read(&self.buffer, self.arena.output()).await
    }

    /// The current parameters, laid out as [`Network::layout`] says.
    pub async fn params(&self) -> Result<Vec<f32>> {
        self.gpu.read(&self.buffer, self.arena.params.clone()).await
    }

    /// The gradients from the last training step, laid out like the parameters.
    pub async fn grads(&self) -> Result<Vec<f32>> {
        self.gpu.read(&self.buffer, self.arena.grads.clone()).await
    }

    pub fn gpu(&self) -> &Gpu {
        self.gpu
    }
}

/// Z = A·W + b, A' = σ(Z), layer by layer: the twin of `CpuTrainer::forward`.
fn forward_ops(arena: &Arena, layout: &ParamLayout, rows: usize) -> Result<Vec<Op>> {
    let mut ops = Vec::new();
    for (l, layer) in layout.layers.iter().enumerate() {
        let shape = MatmulShape::new(rows, layer.inputs, layer.outputs);
        let (z, a) = (&arena.pre[l], &arena.activations[l + 1]);
        ops.push(Op::matmul(
            z.clone(),
            arena.activations[l].clone(),
            layer.weight.clone(),
            shape,
        )?);
        ops.push(Op::bias_add(z.clone(), layer.bias.clone(), rows)?);
        ops.push(Op::sigmoid_forward(a.clone(), z.clone())?);
    }
    Ok(ops)
}

/// The twin of `CpuTrainer::backward`: the loss gradient, then per layer from the last dZ, dW, db and dA.
fn backward_ops(arena: &Arena, layout: &ParamLayout, rows: usize) -> Result<Vec<Op>> {
    let depth = layout.layers.len();
    let mut ops = vec![Op::sse_backward(
        arena.dactivations[depth].clone(),
        arena.output(),
        arena.targets.clone(),
    )?];
    for (l, layer) in layout.layers.iter().enumerate().rev() {
        let dz = &arena.dpre[l];
        ops.push(Op::sigmoid_backward(
            dz.clone(),
            arena.dactivations[l + 1].clone(),
            arena.activations[l + 1].clone(),
        )?);
        let dweight = MatmulShape::new(layer.inputs, rows, layer.outputs).transpose_a();
        ops.push(Op::matmul(
            arena.grad(&layer.weight),
            arena.activations[l].clone(),
            dz.clone(),
            dweight,
        )?);
        ops.push(Op::bias_backward(
            arena.grad(&layer.bias),
            dz.clone(),
            rows,
        )?);
        if l > 0 {
            let dinput = MatmulShape::new(rows, layer.outputs, layer.inputs).transpose_b();
            ops.push(Op::matmul(
                arena.dactivations[l].clone(),
                dz.clone(),
                layer.weight.clone(),
                dinput,
            )?);
        }
    }
    Ok(ops)
}
