//! Training on the GPU: the same steps as [`crate::cpu::CpuTrainer`], as programs of kernel dispatches over
//! one arena that holds every tensor.

use std::ops::Range;

use super::{Epilogue, ErrorScopes, Gpu, MATMUL_BLOCK, Op, Program, RowOrder, groups};
use crate::cpu::{Evaluation, MatmulShape, Metrics, check_params_len, check_state_len};
use crate::network::{Activation, Carver, Dataset, Network, ParamLayout};
use crate::train::{Optimizer, Schedule, TrainConfig, check_run};
use crate::{Error, Result};

/// Training steps recorded into one command buffer: enough to keep the queue busy, few enough to bound its
/// memory.
const STEPS_PER_SUBMIT: usize = 256;

/// The most rows a shuffled data set may have: the cursor counts positions in f32, exact up to 2^24.
const MAX_SHUFFLED_ROWS: usize = 1 << 24;

/// The most epochs a shuffled or scheduled run may reach: the device counts them in f32 too.
const MAX_COUNTED_EPOCHS: u64 = 1 << 24;

/// Where every tensor sits in the arena. Parameters come first, so the [`ParamLayout`] ranges are arena
/// ranges; gradients follow in the same layout. Per weight layer l: `pre[l]` = z and `post[l]` = f(z), for
/// every row of the data set; their gradients `dpre[l]`, `dpost[l]` for the rows of one batch. A hidden
/// layer's z and dA are never stored (the fused matmuls go from one layer's f(z) or dZ to the next one's), so
/// only the output layer has room for them.
/// `tallies[p]` holds what pass p of measuring leaves (`measure_rows`, then `measure_sum` until one tally is
/// left).
struct Arena {
    len: usize,
    params: Range<usize>,
    grads: Range<usize>,
    state: Range<usize>,
    step: usize,
    /// The learning rate's factor in this epoch (`Schedule::factor`), which `next_epoch` moves on.
    factor: usize,
    inputs: Range<usize>,
    targets: Range<usize>,
    epoch: usize,
    cursor: usize,
    /// The data set's rows that a shuffled batch takes, from `shuffled_rows`.
    batch_order: Range<usize>,
    batch_inputs: Range<usize>,
    batch_targets: Range<usize>,
    pre: Vec<Range<usize>>,
    post: Vec<Range<usize>>,
    dpre: Vec<Range<usize>>,
    dpost: Vec<Range<usize>>,
    tallies: Vec<Range<usize>>,
    /// The slices of a split dW before `split_sum` adds them, for the layer that needs the most.
    partials: Range<usize>,
    /// The workgroups that keep the device busy (`busy_workgroups`), which split-K aims for.
    busy: usize,
}

impl Arena {
    fn new(
        network: &Network,
        layout: &ParamLayout,
        config: &TrainConfig,
        rows: usize,
        busy: usize,
    ) -> Self {
        let batch = config
            .batches(rows)
            .iter()
            .map(|b| b.len())
            .max()
            .unwrap_or(0);
        let shuffled = if config.shuffles(rows) { batch } else { 0 };
        let mut carve = Carver::default();
        let params = carve.take(layout.len);
        let grads = carve.take(layout.len);
        let state = carve.take(layout.len * config.optimizer.state_per_param());
        // Adam's step count, then its two bias corrections (`Op::adam_step`).
        let step = carve.take(3).start;
        let factor = carve.take(1).start;
        let inputs = carve.take(rows * network.inputs());
        let targets = carve.take(rows * network.outputs());
        let epoch = carve.take(1).start;
        let cursor = carve.take(1).start;
        let batch_order = carve.take(shuffled);
        let batch_inputs = carve.take(shuffled * network.inputs());
        let batch_targets = carve.take(shuffled * network.outputs());
        let sizes = &network.sizes()[1..];
        let mut per_layer = |rows: usize, hidden: bool| {
            let last = sizes.len() - 1;
            sizes
                .iter()
                .enumerate()
                .map(|(l, &s)| carve.take(if hidden || l == last { rows * s } else { 0 }))
                .collect::<Vec<_>>()
        };
        let (pre, post, dpre, dpost) = (
            per_layer(rows, false),
            per_layer(rows, true),
            per_layer(batch, true),
            per_layer(batch, false),
        );
        let partials = layout
            .layers
            .iter()
            .map(|layer| {
                let shape = MatmulShape::new(layer.inputs, batch, layer.outputs).transpose_a();
                match dweight_slices(shape, busy) {
                    1 => 0,
                    slices => slices * layer.inputs * layer.outputs,
                }
            })
            .max()
            .unwrap_or(0);
        let partials = carve.take(partials);
        let mut tallies = vec![carve.take(3 * groups(rows))];
        let mut left = groups(rows);
        while left > 1 {
            left = groups(left);
            tallies.push(carve.take(3 * left));
        }
        Arena {
            len: carve.used(),
            params,
            grads,
            state,
            step,
            factor,
            inputs,
            targets,
            epoch,
            cursor,
            batch_order,
            batch_inputs,
            batch_targets,
            pre,
            post,
            dpre,
            dpost,
            tallies,
            partials,
            busy,
        }
    }

    /// Where the last pass of measuring leaves its one tally: the metrics.
    fn metrics(&self) -> Range<usize> {
        self.tallies[self.tallies.len() - 1].clone()
    }

    /// The layout, once checked to fit on `gpu`: in one buffer, within the loops of a software adapter, and
    /// every dispatch of measuring and of a training step within the device's grid. An error says what is
    /// too large (the rows, a batch, the layers) and the option that shrinks it.
    fn fitting(gpu: &Gpu, network: &Network, rows: usize, config: &TrainConfig) -> Result<Self> {
        let layout = network.layout();
        let arena = Arena::new(network, &layout, config, rows, busy_workgroups(gpu));
        // Parameters, gradients and state come first; nearly all the rest grows with the rows (the forward
        // pass over the whole set keeps every layer's f(z) for each row, and a full batch its gradients).
        let fixed = arena.inputs.start;
        let per_row = (arena.len - fixed) / rows.max(1);
        gpu.check_fits(
            &format!(
                "the network [{network}] on {rows} rows in the layered engine, {per_row} values a row and \
                 {fixed} for the parameters and optimizer state"
            ),
            arena.len,
            match arena.len - fixed > fixed {
                true => "train on fewer rows or with smaller layers (--layers)",
                false => "use smaller layers (--layers)",
            },
        )?;
        if config.shuffles(rows) && rows > MAX_SHUFFLED_ROWS {
            return Err(Error::TooLarge {
                what: format!("shuffling {rows} rows into mini-batches in the layered engine"),
                needed: rows as u64,
                limit: MAX_SHUFFLED_ROWS as u64,
                unit: "rows (the device counts the batch cursor in f32)",
                remedy: "train on fewer rows, or on a full batch (leave out --batch-size)",
            });
        }
        // llvmpipe ends every loop of an invocation once it has run 65535 iterations in all, silently. The
        // kernels loop over a product's inner dimension (a layer's width, or the batch's rows for dW) and
        // over an eighth of the batch's rows (bias_backward_tree); `matmul` takes 17 iterations for every 16
        // of them, the others fewer.
        let batches = config.batches(rows);
        let batch = batches.first().map_or(0, |b| b.len());
        let widest = network.sizes().iter().copied().max().unwrap_or(0);
        if gpu.is_software() && batch.max(widest) > SOFTWARE_INNER_LIMIT {
            let (what, needed, unit, remedy) = match batch >= widest {
                true => (
                    "a batch",
                    batch,
                    "rows",
                    "use a smaller --batch-size, or train on the CPU",
                ),
                false => (
                    "a layer",
                    widest,
                    "units",
                    "use narrower layers (--layers), or train on the CPU",
                ),
            };
            return Err(Error::TooLarge {
                what: format!(
                    "{what} in the layered engine on a software adapter, whose loops end early"
                ),
                needed: needed as u64,
                limit: SOFTWARE_INNER_LIMIT as u64,
                unit,
                remedy,
            });
        }
        let plan = Plan {
            network,
            layout: &layout,
            arena: &arena,
        };
        let per_dimension = gpu.limits().max_compute_workgroups_per_dimension;
        let within_grid = |ops: Vec<Op>, what: &str, remedy| {
            ops.iter()
                .try_for_each(|op| match op.workgroups(per_dimension) {
                    Err(Error::TooLarge {
                        what: op,
                        needed,
                        limit,
                        unit,
                        ..
                    }) => Err(Error::TooLarge {
                        what: format!("{what} ({op})"),
                        needed,
                        limit,
                        unit,
                        remedy,
                    }),
                    other => other.map(drop),
                })
        };
        let mut measuring = plan.forward(&arena.inputs, rows)?;
        measuring.extend(plan.measure()?);
        within_grid(
            measuring,
            &format!("measuring all {rows} rows of the training set"),
            "train on fewer rows",
        )?;
        for len in [batch, batches.last().map_or(0, |b| b.len())] {
            within_grid(
                plan.step(config, rows, len, true)?,
                &format!("a training step on a batch of {len} rows"),
                "use a smaller --batch-size",
            )?;
        }
        Ok(arena)
    }

    /// Where `range` of the parameters has its gradient.
    fn grad(&self, range: &Range<usize>) -> Range<usize> {
        self.grads.start + range.start..self.grads.start + range.end
    }
}

/// The slices dW = Aᵀ·dZ is split into along the batch (split-K): enough that its blocks and slices together
/// make `busy` workgroups, each slice at least DWEIGHT_SLICE_ROWS rows deep (the partial sums cost memory
/// and a pass of split_sum); 1 for no split.
fn dweight_slices(shape: MatmulShape, busy: usize) -> usize {
    let block = MATMUL_BLOCK as usize;
    let blocks = shape.m.div_ceil(block) * shape.n.div_ceil(block);
    let wanted = busy.div_ceil(blocks.max(1));
    Op::split_slices(shape, wanted.min(shape.k / DWEIGHT_SLICE_ROWS).max(1))
}

const DWEIGHT_SLICE_ROWS: usize = 64;

/// Workgroups that keep `gpu` busy: a software adapter runs one at a time on each of the CPU's threads (a
/// few each balance the load), a GPU wants hundreds in flight.
fn busy_workgroups(gpu: &Gpu) -> usize {
    match gpu.is_software() {
        true => 4 * std::thread::available_parallelism().map_or(1, |n| n.get()),
        false => 256,
    }
}

/// The longest product or batch the layered engine's loops may cover on a software adapter: 65535
/// iterations, as `matmul` counts them (17 for 16), less a margin.
const SOFTWARE_INNER_LIMIT: usize = 60_000;

/// The first `len` elements of `range`: a batch's rows of a region sized for more.
fn first(range: &Range<usize>, len: usize) -> Range<usize> {
    range.start..range.start + len
}

/// Trains a network on the GPU; all state stays on the device until asked for.
pub struct GpuTrainer<'gpu> {
    gpu: &'gpu Gpu,
    network: Network,
    config: TrainConfig,
    rows: usize,
    targets: Vec<f32>,
    arena: Arena,
    buffer: wgpu::Buffer,
    /// The forward pass over every row.
    evaluate: Program,
    /// After `evaluate`: the metrics reduced into the arena, to be read through `metrics_staging`.
    measure: Program,
    metrics_staging: wgpu::Buffer,
    steps: Steps,
    epoch: u64,
}

/// An epoch's training steps: `full_count` of full batches, then the last one (full or short), which also
/// moves the device's epoch counter on. Every step of a kind is the same program: it finds its rows through
/// the cursor.
struct Steps {
    full: Program,
    full_count: usize,
    last: Program,
}

impl<'gpu> GpuTrainer<'gpu> {
    /// Uploads the parameters and the data once and builds the evaluation and training programs.
    pub async fn new(
        gpu: &'gpu Gpu,
        network: &Network,
        params: &[f32],
        data: &Dataset,
        config: TrainConfig,
    ) -> Result<Self> {
        let layout = check_run(network, data, &config)?;
        let arena = Arena::fitting(gpu, network, data.rows, &config)?;
        check_params_len(&layout, params.len())?;
        let scopes = ErrorScopes::push(&gpu.device);

        let mut initial = vec![0.0; arena.len];
        initial[arena.params.clone()].copy_from_slice(params);
        initial[arena.factor] = config.schedule.factor(0);
        initial[arena.inputs.clone()].copy_from_slice(&data.inputs);
        initial[arena.targets.clone()].copy_from_slice(&data.targets);
        let buffer = gpu.create_arena("arena", &initial)?;

        let plan = Plan {
            network,
            layout: &layout,
            arena: &arena,
        };
        let evaluate = plan.forward(&arena.inputs, data.rows)?;
        let (full, last) = plan.steps(&config, data.rows)?;
        let steps = Steps {
            full: gpu.program(&buffer, &full)?,
            full_count: config.batches(data.rows).len() - 1,
            last: gpu.program(&buffer, &last)?,
        };
        let trainer = GpuTrainer {
            gpu,
            evaluate: gpu.program(&buffer, &evaluate)?,
            measure: gpu.program(&buffer, &plan.measure()?)?,
            metrics_staging: gpu.staging(3),
            steps,
            network: network.clone(),
            config,
            rows: data.rows,
            targets: data.targets.clone(),
            buffer,
            arena,
            epoch: 0,
        };
        scopes
            .pop("uploading the network and building its programs")
            .await?;
        Ok(trainer)
    }

    /// Checks that `network` trained on `rows` rows fits on `gpu`, before anything is allocated: callers can
    /// ask this before they draw the initial weights of a network that could never fit.
    pub fn check_size(
        gpu: &Gpu,
        network: &Network,
        rows: usize,
        config: &TrainConfig,
    ) -> Result<()> {
        Arena::fitting(gpu, network, rows, config).map(drop)
    }

    /// How many dispatches one epoch over `rows` rows takes: the cost that the fused engine removes.
    pub fn dispatches_per_epoch(
        gpu: &Gpu,
        network: &Network,
        rows: usize,
        config: &TrainConfig,
    ) -> Result<usize> {
        config.check()?;
        if rows == 0 {
            return Ok(0);
        }
        let layout = network.layout();
        let arena = Arena::new(network, &layout, config, rows, busy_workgroups(gpu));
        let plan = Plan {
            network,
            layout: &layout,
            arena: &arena,
        };
        let (full, last) = plan.steps(config, rows)?;
        Ok((config.batches(rows).len() - 1) * full.len() + last.len())
    }

    /// The dispatches of one training step (the epoch's last, which also moves its counters on), and a copy
    /// of the arena to run them on: for timing each by itself (`bench`'s MLP profile) without touching the
    /// run.
    pub fn step_on_copy(&self) -> Result<(Vec<Op>, wgpu::Buffer)> {
        let layout = self.network.layout();
        let plan = Plan {
            network: &self.network,
            layout: &layout,
            arena: &self.arena,
        };
        let (_, last) = plan.steps(&self.config, self.rows)?;
        let size = self.buffer.size();
        let copy = self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("arena copy"),
            size,
            usage: self.buffer.usage(),
            mapped_at_creation: false,
        });
        let mut encoder = self.gpu.device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(&self.buffer, 0, &copy, 0, size);
        self.gpu.queue.submit([encoder.finish()]);
        Ok((last, copy))
    }

    /// Checks that `epochs` more epochs keep a shuffled or scheduled run's device epoch counter exact: it is
    /// an f32 in the arena, exact up to 2^24.
    pub fn check_epochs(&self, epochs: usize) -> Result<()> {
        self.check_epoch_reached(self.epoch.saturating_add(epochs as u64))
    }

    fn check_epoch_reached(&self, end: u64) -> Result<()> {
        if counts_epochs(&self.config, self.rows) && end > MAX_COUNTED_EPOCHS {
            return Err(Error::TooLarge {
                what: format!("{end} shuffled or scheduled epochs on the layered engine"),
                needed: end,
                limit: MAX_COUNTED_EPOCHS,
                unit: "epochs (the device counts them in f32)",
                remedy: "train fewer --epochs, or with the fused engine (--engine fused), which counts in u32",
            });
        }
        Ok(())
    }

    /// Submits `epochs` epochs of training without waiting for them or reading anything back. An error the
    /// device reported since the last wait (its loss, say) comes back here or from the next call that waits.
    pub fn train(&mut self, epochs: usize) -> Result<()> {
        self.check_epochs(epochs)?;
        self.gpu.check_device()?;
        let scopes = ErrorScopes::push(&self.gpu.device);
        let steps = &self.steps;
        let epoch = [(&steps.full, steps.full_count), (&steps.last, 1)];
        // Whole epochs per command buffer, about STEPS_PER_SUBMIT steps in each.
        let per_submit = (STEPS_PER_SUBMIT / (steps.full_count + 1)).max(1);
        let mut left = epochs;
        while left > 0 {
            let now = left.min(per_submit);
            let runs: Vec<(&Program, usize)> =
                epoch.iter().copied().cycle().take(2 * now).collect();
            self.gpu.submit(&runs);
            left -= now;
        }
        // wgpu validates as it records and submits, so the scopes hold their errors without a wait.
        pollster::block_on(scopes.pop("training"))?;
        self.epoch += epochs as u64;
        Ok(())
    }

    /// The loss, the largest error and the rows classified right over the whole data set under the current
    /// parameters: a forward pass, then sums reduced on the device; three numbers are read back, through a
    /// staging buffer made once.
    pub async fn metrics(&self) -> Result<Metrics> {
        self.gpu.submit(&[(&self.evaluate, 1), (&self.measure, 1)]);
        let tally = self
            .gpu
            .read_via(&self.metrics_staging, &self.buffer, self.arena.metrics())
            .await?;
        let &[sum, max_error, correct] = &tally[..] else {
            return Err(Error::Readback(format!(
                "the metrics came back as {} numbers, not 3",
                tally.len()
            )));
        };
        let count = self
            .network
            .loss()
            .mean_over(self.rows, self.network.outputs());
        Ok(Metrics {
            loss: f64::from(sum) / count as f64,
            max_error,
            correct: correct as usize,
        })
    }

    /// Outputs, logits and loss over the whole data set under the current parameters.
    pub async fn evaluate(&self) -> Result<Evaluation> {
        self.gpu.submit(&[(&self.evaluate, 1)]);
        let last = self.network.depth() - 1;
        let outputs = self
            .gpu
            .read(&self.buffer, self.arena.post[last].clone())
            .await?;
        let logits = self
            .gpu
            .read(&self.buffer, self.arena.pre[last].clone())
            .await?;
        Ok(Evaluation::new(
            &self.network,
            outputs,
            logits,
            &self.targets,
        ))
    }

    /// The network's outputs for every row under the current parameters.
    pub async fn outputs(&self) -> Result<Vec<f32>> {
        Ok(self.evaluate().await?.outputs)
    }

    /// The current parameters, laid out as [`Network::layout`] says.
    pub async fn params(&self) -> Result<Vec<f32>> {
        self.gpu.read(&self.buffer, self.arena.params.clone()).await
    }

    /// The gradients from the last training step, laid out like the parameters.
    pub async fn grads(&self) -> Result<Vec<f32>> {
        self.gpu.read(&self.buffer, self.arena.grads.clone()).await
    }

    /// The optimizer's state (velocity, or both Adam moments), laid out like the parameters one after another.
    pub async fn optimizer_state(&self) -> Result<Vec<f32>> {
        self.gpu.read(&self.buffer, self.arena.state.clone()).await
    }

    /// Epochs trained so far.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Continues a run saved after `epoch` epochs with the optimizer's `state`; see `CpuTrainer::resume`.
    pub fn resume(&mut self, epoch: u64, state: &[f32]) -> Result<()> {
        check_state_len(self.arena.state.len(), state.len())?;
        self.check_epoch_reached(epoch)?;
        let offset = |at: usize| (at * size_of::<f32>()) as u64;
        let step = self.config.steps_before(epoch, self.rows) as f32;
        self.gpu.queue.write_buffer(
            &self.buffer,
            offset(self.arena.epoch),
            bytemuck::bytes_of(&(epoch as f32)),
        );
        self.gpu.queue.write_buffer(
            &self.buffer,
            offset(self.arena.factor),
            bytemuck::bytes_of(&self.config.schedule.factor(epoch)),
        );
        self.gpu.queue.write_buffer(
            &self.buffer,
            offset(self.arena.state.start),
            bytemuck::cast_slice(state),
        );
        self.gpu.queue.write_buffer(
            &self.buffer,
            offset(self.arena.step),
            bytemuck::bytes_of(&step),
        );
        self.epoch = epoch;
        Ok(())
    }

    pub fn gpu(&self) -> &Gpu {
        self.gpu
    }
}

/// Whether the device counts the epochs: for the row order of a shuffled run, for the rate of a scheduled one.
fn counts_epochs(config: &TrainConfig, rows: usize) -> bool {
    config.shuffles(rows) || config.schedule != Schedule::Constant
}

/// Builds op lists: the twin of `CpuTrainer`'s forward, backward and update.
struct Plan<'a> {
    network: &'a Network,
    layout: &'a ParamLayout,
    arena: &'a Arena,
}

impl Plan<'_> {
    /// Z = A·W + b, A' = f(Z), layer by layer over the first `rows` rows of `input`.
    fn forward(&self, input: &Range<usize>, rows: usize) -> Result<Vec<Op>> {
        let mut ops = Vec::new();
        for (l, layer) in self.layout.layers.iter().enumerate() {
            let x = if l == 0 {
                first(input, rows * layer.inputs)
            } else {
                first(&self.arena.post[l - 1], rows * layer.inputs)
            };
            let a = first(&self.arena.post[l], rows * layer.outputs);
            let shape = MatmulShape::new(rows, layer.inputs, layer.outputs);
            let (w, bias) = (layer.weight.clone(), layer.bias.clone());
            let f = self.network.activation(l);
            if l + 1 < self.layout.layers.len() {
                // A hidden layer in one dispatch.
                let epilogue = Epilogue::BiasActivation(f);
                ops.push(Op::matmul_epilogue(a, x, w, shape, epilogue, bias)?);
                continue;
            }
            // The output layer keeps z, the logits an evaluation reports.
            let z = first(&self.arena.pre[l], rows * layer.outputs);
            let identity = Epilogue::BiasActivation(Activation::Identity);
            ops.push(Op::matmul_epilogue(z.clone(), x, w, shape, identity, bias)?);
            ops.push(match f {
                Activation::Softmax => Op::softmax_forward(a, z, layer.outputs)?,
                f => Op::activation_forward(a, z, f)?,
            });
        }
        Ok(ops)
    }

    /// The ops of an epoch's full steps and of its last step (full or short, ending the epoch).
    fn steps(&self, config: &TrainConfig, total_rows: usize) -> Result<(Vec<Op>, Vec<Op>)> {
        let batches = config.batches(total_rows);
        let (full, last) = (batches[0].len(), batches[batches.len() - 1].len());
        Ok((
            self.step(config, total_rows, full, false)?,
            self.step(config, total_rows, last, true)?,
        ))
    }

    /// One training step on `rows` rows: gather them at the cursor of the epoch's order and move the cursor
    /// on (when shuffling), forward, backward, update; and at the epoch's end, on to the next epoch.
    fn step(
        &self,
        config: &TrainConfig,
        total_rows: usize,
        rows: usize,
        ends_epoch: bool,
    ) -> Result<Vec<Op>> {
        let arena = self.arena;
        let (inputs, outputs) = (self.network.inputs(), self.network.outputs());
        let shuffles = config.shuffles(total_rows);
        let order = RowOrder {
            seed: config.shuffle_seed,
            rows: total_rows,
            epoch: arena.epoch,
            cursor: arena.cursor,
        };
        let mut ops = Vec::new();
        let (x, y) = if shuffles {
            let (x, y) = (
                first(&arena.batch_inputs, rows * inputs),
                first(&arena.batch_targets, rows * outputs),
            );
            let rows_at = first(&arena.batch_order, rows);
            ops.push(Op::shuffled_rows(rows_at.clone(), order)?);
            ops.push(Op::gather_rows(
                x.clone(),
                arena.inputs.clone(),
                rows_at.clone(),
                inputs,
            )?);
            ops.push(Op::gather_rows(
                y.clone(),
                arena.targets.clone(),
                rows_at,
                outputs,
            )?);
            (x, y)
        } else {
            (arena.inputs.clone(), arena.targets.clone())
        };
        ops.extend(self.forward(&x, rows)?);
        ops.extend(self.backward(&x, &y, rows)?);
        ops.extend(self.update(config)?);
        if shuffles {
            ops.push(Op::advance_counter(arena.cursor, rows as f32)?);
        }
        if counts_epochs(config, total_rows) && ends_epoch {
            ops.push(Op::next_epoch(order, config.schedule, arena.factor)?);
        }
        Ok(ops)
    }

    /// The loss gradient, then per layer from the last: dZ, dW = Aᵀ·dZ, db = Σ_rows dZ, dA_prev = dZ·Wᵀ.
    fn backward(&self, x: &Range<usize>, y: &Range<usize>, rows: usize) -> Result<Vec<Op>> {
        let arena = self.arena;
        let depth = self.layout.layers.len();
        let loss = self.network.loss();
        let outputs = self.network.outputs();
        let last = depth - 1;
        let fused = loss.includes_output_activation();
        let d = first(
            if fused {
                &arena.dpre[last]
            } else {
                &arena.dpost[last]
            },
            rows * outputs,
        );
        let output = first(&arena.post[last], rows * outputs);
        let mut ops = vec![Op::loss_backward(
            d,
            output,
            y.clone(),
            loss.gradient_scale(rows, outputs),
        )?];
        for (l, layer) in self.layout.layers.iter().enumerate().rev() {
            let n = rows * layer.outputs;
            let dz = first(&arena.dpre[l], n);
            // The hidden layers' dZ comes from the layer above's dX with the slope applied.
            if l == last && !fused {
                let (da, a) = (first(&arena.dpost[l], n), first(&arena.post[l], n));
                ops.push(Op::activation_backward(
                    dz.clone(),
                    da,
                    a,
                    self.network.activation(l),
                )?);
            }
            let input = if l == 0 {
                x.clone()
            } else {
                first(&arena.post[l - 1], rows * layer.inputs)
            };
            let dweight = MatmulShape::new(layer.inputs, rows, layer.outputs).transpose_a();
            let dw = arena.grad(&layer.weight);
            let slices = dweight_slices(dweight, arena.busy);
            if slices > 1 {
                let partials = first(&arena.partials, slices * dw.len());
                ops.push(Op::matmul_split(
                    partials.clone(),
                    input,
                    dz.clone(),
                    dweight,
                    slices,
                )?);
                ops.push(Op::split_sum(dw, partials)?);
            } else {
                ops.push(Op::matmul(dw, input, dz.clone(), dweight)?);
            }
            ops.push(Op::bias_backward_tree(
                arena.grad(&layer.bias),
                dz.clone(),
                rows,
            )?);
            if l > 0 {
                let dinput = MatmulShape::new(rows, layer.outputs, layer.inputs).transpose_b();
                let below = rows * layer.inputs;
                ops.push(Op::matmul_epilogue(
                    first(&arena.dpre[l - 1], below),
                    dz,
                    layer.weight.clone(),
                    dinput,
                    Epilogue::Slope(self.network.activation(l - 1)),
                    first(&arena.post[l - 1], below),
                )?);
            }
        }
        Ok(ops)
    }

    /// After the forward pass over every row: the metrics' tallies, per workgroup of rows and then summed a
    /// workgroup at a time, down to the one that `Arena::metrics` names.
    fn measure(&self) -> Result<Vec<Op>> {
        let arena = self.arena;
        let last = self.layout.layers.len() - 1;
        let mut ops = vec![Op::measure_rows(
            arena.tallies[0].clone(),
            arena.post[last].clone(),
            arena.targets.clone(),
            arena.pre[last].clone(),
            self.network.loss(),
            self.network.outputs(),
        )?];
        for pass in arena.tallies.windows(2) {
            ops.push(Op::measure_sum(pass[1].clone(), pass[0].clone())?);
        }
        Ok(ops)
    }

    /// One optimizer step over every parameter at once.
    fn update(&self, config: &TrainConfig) -> Result<Vec<Op>> {
        let arena = self.arena;
        let (params, grads, state) = (
            arena.params.clone(),
            arena.grads.clone(),
            arena.state.clone(),
        );
        let (lr, factor) = (config.lr, arena.factor);
        Ok(match config.optimizer {
            Optimizer::Sgd { momentum } => {
                vec![Op::sgd_update(params, grads, state, lr, factor, momentum)?]
            }
            Optimizer::Adam { weight_decay } => vec![
                Op::adam_step(arena.step)?,
                Op::adam_update(params, grads, state, arena.step, lr, factor, weight_decay)?,
            ],
        })
    }
}
