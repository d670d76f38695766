//! The fused engine: shaders/fused*.wgsl train a whole network, every epoch between two log points, in one
//! dispatch. A network that fits one invocation's private memory trains in one invocation, so a sweep of
//! thousands of seeds and learning rates costs one dispatch too (the private tier); a larger one trains in
//! one workgroup's memory, a unit a thread (the workgroup tier). A few small networks on small batches, which
//! would leave most of the device idle, take a subgroup each, a row a lane (the subgroup tier).
//!
//! The shader is compiled for one network: its sizes, activations, loss and optimizer are constants put in
//! front of the WGSL source, so that every array has its size and no choice fixed for the run is a branch.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wgpu::util::DeviceExt;

use super::generate::{self, FIXED_ROWS_LIMIT, PARTIALS, fused_source};
pub use super::generate::{Form, Tier, Variant};
use super::{CodeBudget, ErrorScopes, Gpu, kernel::WORKGROUP_SIZE, kernel::spill};
use crate::cpu::{Evaluation, Metrics, check_params_len, check_state_len};
use crate::engine::Start;
use crate::network::{Dataset, Network};
use crate::train::{Optimizer, TrainConfig, check_run};
use crate::{Error, Result};

/// The most f32 values one invocation keeps in private memory: parameters, gradients, optimizer state and
/// one row's activations. Beyond it the workgroup tier holds the network, while it fits the device's
/// workgroup memory, and beyond that the layered engine trains.
pub const FUSED_PRIVATE_FLOATS: usize = 1536;

/// The most threads the rows tier gives one network: a batch's rows beyond it take turns.
const ROWS_THREADS: u32 = 64;

/// Threads of the workgroup tier come in whole subgroups of this many (32 on NVIDIA, a multiple of most
/// others' width).
const SUBGROUP: u32 = 32;

/// How long one dispatch should run: far below the 2 s after which Windows resets a busy GPU.
const DISPATCH_TARGET: Duration = Duration::from_millis(200);

/// The serial work one thread may do in a dispatch that has not been timed yet (the first of a run, and
/// every metrics pass), in multiply-adds: this CPU's core does some 10^9 a second, so on a GPU whose thread
/// is 100 times slower at serial work this takes 200 ms, under the watchdog.
const SERIAL_WORK_LIMIT: f64 = 2e6;

/// What the loops of one invocation of shaders/fused*.wgsl cost against llvmpipe's limit
/// ([`Gpu::loop_limit`]): the loops over epochs, batches and rows, and the generated code's own loops
/// ([`generate::loops`]). Every loop runs the same number of times in every invocation, so the lanes that
/// llvmpipe runs together cost no more than one. The counts take an iteration and a loop's entry as 2 each,
/// at least what llvmpipe charges.
#[derive(Clone, Copy, Debug)]
struct LoopCount {
    /// Loading and storing, once a dispatch.
    per_dispatch: u64,
    /// The epoch, its batches and its rows.
    per_epoch: u64,
    /// Measuring: a row each.
    per_measured_row: u64,
}

impl LoopCount {
    fn new(network: &Network, rows: usize, config: &TrainConfig, variant: Variant) -> Self {
        let code = generate::loops(network, variant);
        let cost = |(iterations, entries): (u64, u64)| 2 * (iterations + entries);
        let batches = config.batches(rows).len() as u64;
        let batch_loop = match variant.shuffles {
            true => (batches, 1),
            false => (0, 0),
        };
        let own_rows = own_rows(rows, config, variant.tier) as u64;
        let row = cost(code.forward) + cost(code.backward);
        LoopCount {
            per_dispatch: 8 + cost(code.per_dispatch),
            per_epoch: cost((1 + batch_loop.0 + own_rows, batch_loop.1 + batches))
                + own_rows * row
                + batches * cost(code.update),
            per_measured_row: 2 + cost(code.forward),
        }
    }

    /// The most epochs one dispatch may run under `limit`; 0 if not even one fits.
    fn epochs_within(&self, limit: u64) -> u64 {
        limit.saturating_sub(self.per_dispatch) / self.per_epoch
    }
}

/// The rows of an epoch that one thread adds: all of them, or in the rows tier its share of each batch.
fn own_rows(rows: usize, config: &TrainConfig, tier: Tier) -> usize {
    match tier {
        Tier::Rows { threads } => config
            .batches(rows)
            .iter()
            .map(|b| b.len().div_ceil(threads as usize))
            .sum(),
        _ => rows,
    }
}

/// The serial work of one thread in `tier`, in multiply-adds: an epoch's, and a measured row's.
fn serial_work(network: &Network, rows: usize, config: &TrainConfig, tier: Tier) -> (f64, f64) {
    let params = network.layout().len as f64;
    let steps = config.batches(rows).len() as f64;
    let own = own_rows(rows, config, tier) as f64;
    // Forward and backward: about three multiply-adds a parameter; an optimizer step: about eight, and
    // in the rows tier the sum over the threads besides.
    let epoch = match tier {
        Tier::Private => own * 3.0 * params + steps * 8.0 * params,
        Tier::Rows { .. } => own * 3.0 * params + steps * 10.0 * params,
        // A thread's unit: a row of each layer's weights, forward and back.
        Tier::Workgroup { threads } => {
            let widest = network.sizes().iter().copied().max().unwrap_or(1) as f64;
            own * 3.0 * widest * network.layout().layers.len() as f64
                + steps * 8.0 * (params / f64::from(threads)).ceil()
        }
    };
    (epoch, params)
}

/// Trains `networks` networks of one shape on one data set, each with its own initial parameters, learning
/// rate and row-order seed; everything stays on the device until asked for.
pub struct FusedTrainer<'gpu> {
    gpu: &'gpu Gpu,
    network: Network,
    config: TrainConfig,
    networks: usize,
    rows: usize,
    /// Rows per step (all of them for a full batch) and steps per epoch.
    batch: usize,
    batches: usize,
    targets: Vec<f32>,
    kernels: Arc<FusedKernels>,
    bind_group: wgpu::BindGroup,
    weights: wgpu::Buffer,
    results: wgpu::Buffer,
    job: wgpu::Buffer,
    metrics_staging: wgpu::Buffer,
    epoch: u64,
    epochs_per_dispatch: u64,
    /// The most epochs a dispatch may run on this adapter, whatever the time.
    max_epochs_per_dispatch: u64,
    /// The most rows a metrics dispatch measures.
    rows_per_measure: usize,
    variant: Variant,
    /// What compiling the engine took, or zero where the process had compiled it before.
    compile_time: Duration,
}

/// The engine's pipelines for one network and variant, compiled once a process ([`Gpu::fused_kernels`]).
pub struct FusedKernels {
    layout: wgpu::BindGroupLayout,
    train: Kernel,
    measure: Kernel,
    evaluate: Kernel,
}

/// An entry point of the engine, and how many networks (or rows) one of its workgroups takes.
struct Kernel {
    pipeline: wgpu::ComputePipeline,
    per_workgroup: u32,
}

/// `struct Job` in shaders/fused.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Job {
    networks: u32,
    rows: u32,
    batch: u32,
    first_epoch: u32,
    epochs: u32,
    evaluated: u32,
    first_row: u32,
    end_row: u32,
}

impl<'gpu> FusedTrainer<'gpu> {
    /// Checks that `networks` copies of `network` trained on `rows` rows fit the fused engine on `gpu`, and
    /// gives the variant that trains them. The tier: one invocation's private memory where the network fits,
    /// and where a thread a network would leave most of the device idle, a workgroup of them sharing each
    /// batch's rows; else one workgroup's memory with a thread for each unit of the widest layer. The code's
    /// form: unrolled within the adapter's budget of statements ([`Gpu::code_budget`]), else looped.
    pub fn check_size(
        gpu: &Gpu,
        network: &Network,
        rows: usize,
        config: &TrainConfig,
        networks: usize,
    ) -> Result<Variant> {
        let optimizer = config.optimizer;
        let batch = config.batches(rows).first().map_or(0, |b| b.len()) as u32;
        let row_threads = batch
            .next_power_of_two()
            .min(ROWS_THREADS)
            .min(most_threads(gpu));
        let share_rows = Tier::Rows {
            threads: row_threads,
        };
        // Sharing the rows pays for its barriers where a batch has more rows than one subgroup runs in
        // lockstep, and where one thread a network would leave most of the device idle.
        let subgroup = gpu.subgroup_lanes().unwrap_or(SUBGROUP);
        let idle = batch > subgroup
            && (networks as u64) * u64::from(row_threads)
                <= gpu.parallel_threads().max(u64::from(row_threads));
        let widest = network.sizes().iter().copied().max().unwrap_or(1) as u32;
        let threads = widest
            .next_multiple_of(SUBGROUP)
            .min(most_threads(gpu))
            .max(widest);
        let fits = |tier| FusedTrainer::check_tier(gpu, network, optimizer, tier);
        let tier = if fits(Tier::Private).is_err() {
            let tier = Tier::Workgroup { threads };
            fits(tier)?;
            tier
        } else if idle && fits(share_rows).is_ok() {
            share_rows
        } else {
            Tier::Private
        };
        let variant = FusedTrainer::variant_for(gpu, network, rows, config, tier);
        FusedTrainer::check_buffers(gpu, network, rows, config, networks, variant)?;
        Ok(variant)
    }

    /// The variant for `tier`, its code's form within the adapter's budget.
    fn variant_for(
        gpu: &Gpu,
        network: &Network,
        rows: usize,
        config: &TrainConfig,
        tier: Tier,
    ) -> Variant {
        let shuffles = config.shuffles(rows);
        // A full batch of a few rows, looped by every thread from the first (not the rows tier's shares).
        let fixed = !shuffles && rows <= FIXED_ROWS_LIMIT && !matches!(tier, Tier::Rows { .. });
        let unrolled = Variant {
            optimizer: config.optimizer,
            tier,
            shuffles,
            schedule: config.schedule,
            form: Form::Unrolled,
            fixed_rows: if fixed { rows as u32 } else { 0 },
        };
        let form = match gpu.code_budget() {
            CodeBudget::LoopedBeyond { statements }
                if generate::unrolled_statements(network, unrolled) > statements =>
            {
                Form::Looped
            }
            _ => Form::Unrolled,
        };
        Variant { form, ..unrolled }
    }

    /// Checks that the adapter compiles `variant`'s code in about a second: what the engine's automatic
    /// choice asks of the fused engine, beside [`FusedTrainer::check_size`].
    pub fn check_compile(gpu: &Gpu, network: &Network, variant: Variant) -> Result<()> {
        let CodeBudget::UnrolledOnly { statements: budget } = gpu.code_budget() else {
            return Ok(());
        };
        let weight = gpu.statement_weight(variant.tier);
        let statements = (generate::unrolled_statements(network, variant) as f64 * weight) as usize;
        if statements <= budget {
            return Ok(());
        }
        Err(Error::TooLarge {
            what: format!(
                "the fused engine's code for the network [{network}] on {}",
                gpu.adapter().name
            ),
            needed: statements as u64,
            limit: budget as u64,
            unit: "statements, weighted by tier (this compiler takes seconds beyond)",
            remedy: "use the layered engine (--engine layered), or a smaller network (--layers)",
        })
    }

    /// Checks that `tier` can hold `network` with its optimizer's state on `gpu`.
    pub fn check_tier(
        gpu: &Gpu,
        network: &Network,
        optimizer: Optimizer,
        tier: Tier,
    ) -> Result<()> {
        let floats = fused_floats(network, optimizer);
        let too_large = |needed: u64, limit: u64, unit| Error::TooLarge {
            what: format!(
                "the network [{network}] with its {} state in the fused engine",
                optimizer.name()
            ),
            needed,
            limit,
            unit,
            remedy: "use smaller layers (--layers), or the layered engine (--engine layered)",
        };
        let private = match floats > FUSED_PRIVATE_FLOATS {
            true => Err(too_large(
                floats as u64,
                FUSED_PRIVATE_FLOATS as u64,
                "f32 values of private memory",
            )),
            false => Ok(()),
        };
        let room = u64::from(gpu.limits().max_compute_workgroup_storage_size);
        let (threads, widest, shared) = match tier {
            Tier::Private => return private,
            Tier::Rows { threads } => {
                private?;
                if let Some(reason) = gpu.rows_tier_refused() {
                    return Err(Error::invalid("tier", format!("{tier:?}"), reason));
                }
                // `partials` and `summed` in shaders/fused_rows.wgsl.
                let shared = u64::from(PARTIALS) + network.layout().len as u64;
                (threads, 1, shared)
            }
            Tier::Workgroup { threads } => {
                let widest = network.sizes().iter().copied().max().unwrap_or(1) as u64;
                (threads, widest, floats as u64)
            }
        };
        // The workgroup tier is where networks too large for private memory go.
        let (threads_unit, memory_unit) = match tier {
            Tier::Workgroup { .. } => (
                "threads per workgroup (too large for private memory too)",
                "bytes of workgroup memory (too large for private memory too)",
            ),
            _ => ("threads per workgroup", "bytes of workgroup memory"),
        };
        if widest > u64::from(threads) || threads > most_threads(gpu) || threads > PARTIALS {
            let limit = u64::from(most_threads(gpu).min(PARTIALS));
            return Err(too_large(
                widest.max(u64::from(threads)),
                limit,
                threads_unit,
            ));
        }
        let bytes = shared * size_of::<f32>() as u64;
        if bytes > room {
            return Err(too_large(bytes, room, memory_unit));
        }
        Ok(())
    }

    /// Checks the device's buffers and, on llvmpipe, its loop limit.
    fn check_buffers(
        gpu: &Gpu,
        network: &Network,
        rows: usize,
        config: &TrainConfig,
        networks: usize,
        variant: Variant,
    ) -> Result<()> {
        let loops = LoopCount::new(network, rows, config, variant);
        if let Some(limit) = gpu.loop_limit()
            && (loops.epochs_within(limit) == 0 || loops.per_measured_row + 8 > limit)
        {
            return Err(Error::TooLarge {
                what: format!(
                    "an epoch of the network [{network}] on {rows} rows in the fused engine on llvmpipe"
                ),
                needed: loops.per_dispatch + loops.per_epoch,
                limit,
                unit: "loop iterations per invocation (llvmpipe ends longer loops)",
                remedy: "use fewer rows, a smaller network (--layers) or --batch-size, or the layered \
                         engine (--engine layered)",
            });
        }
        let params = network.layout().len;
        let state = params * config.optimizer.state_per_param();
        let what =
            |part: &str| format!("{part} of {networks} network(s) [{network}] on {rows} rows");
        let fewer = "use fewer rows";
        gpu.check_fits(
            &what("the data"),
            rows * (network.inputs() + network.outputs()),
            fewer,
        )?;
        gpu.check_fits(
            &what("the parameters and state"),
            (params + state) * networks,
            "use fewer runs (--runs, --lr) or smaller layers (--layers)",
        )?;
        gpu.check_fits(
            &what("the results"),
            results_len(network, rows, networks),
            fewer,
        )?;
        if u32::try_from(networks.max(rows)).is_err() {
            return Err(Error::TooLarge {
                what: "a sweep or a data set".into(),
                needed: networks.max(rows) as u64,
                limit: u64::from(u32::MAX),
                unit: "networks or rows",
                remedy: "use fewer rows or runs (--runs, --lr)",
            });
        }
        // A dispatch has up to a workgroup per network or row, spilled from x into y (`spill`).
        let per_dimension = u64::from(gpu.limits().max_compute_workgroups_per_dimension);
        let workgroups = networks.max(rows) as u64;
        if workgroups > per_dimension * per_dimension {
            return Err(Error::TooLarge {
                what: format!("{networks} network(s) on {rows} rows in the fused engine"),
                needed: workgroups,
                limit: per_dimension * per_dimension,
                unit: "workgroups in one dispatch",
                remedy: "use fewer rows or runs (--runs, --lr), or the layered engine (--engine layered)",
            });
        }
        Ok(())
    }

    /// Uploads the data and every network's starting point once and compiles the engine for this network,
    /// in the tier that [`FusedTrainer::check_size`] picks.
    pub async fn new(
        gpu: &'gpu Gpu,
        network: &Network,
        starts: &[Start],
        data: &Dataset,
    ) -> Result<Self> {
        let Some(Start { config, .. }) = starts.first() else {
            return Err(Error::invalid("runs", 0, "train at least one network"));
        };
        let variant = FusedTrainer::check_size(gpu, network, data.rows, config, starts.len())?;
        FusedTrainer::with_form(gpu, network, starts, data, variant.tier, variant.form).await
    }

    /// As [`FusedTrainer::new`], in `tier`, the code's form within the adapter's budget.
    pub async fn with_tier(
        gpu: &'gpu Gpu,
        network: &Network,
        starts: &[Start],
        data: &Dataset,
        tier: Tier,
    ) -> Result<Self> {
        let Some(Start { config, .. }) = starts.first() else {
            return Err(Error::invalid("runs", 0, "train at least one network"));
        };
        let form = FusedTrainer::variant_for(gpu, network, data.rows, config, tier).form;
        FusedTrainer::with_form(gpu, network, starts, data, tier, form).await
    }

    /// Uploads the data and every network's starting point once and compiles the engine for this network in
    /// `tier` with its code in `form`. `starts` holds each network's initial parameters and settings; they
    /// may differ in the learning rate and the row-order seed only (each run follows the schedule from its
    /// own base rate).
    pub async fn with_form(
        gpu: &'gpu Gpu,
        network: &Network,
        starts: &[Start],
        data: &Dataset,
        tier: Tier,
        form: Form,
    ) -> Result<Self> {
        let Some(Start { config, .. }) = starts.first() else {
            return Err(Error::invalid("runs", 0, "train at least one network"));
        };
        let layout = check_run(network, data, config)?;
        for Start {
            params,
            config: other,
        } in starts
        {
            check_params_len(&layout, params.len())?;
            other.check()?;
            let shared = |c: &TrainConfig| (c.optimizer, c.batch_size, c.schedule);
            if shared(other) != shared(config) {
                return Err(Error::invalid(
                    "runs",
                    starts.len(),
                    "the networks of one sweep share the optimizer, the batch size and the schedule",
                ));
            }
        }
        let networks = starts.len();
        FusedTrainer::check_tier(gpu, network, config.optimizer, tier)?;
        let variant = Variant {
            form,
            ..FusedTrainer::variant_for(gpu, network, data.rows, config, tier)
        };
        FusedTrainer::check_buffers(gpu, network, data.rows, config, networks, variant)?;
        let scopes = ErrorScopes::push(&gpu.device);

        let (params, state) = (layout.len, layout.len * config.optimizer.state_per_param());
        let mut weights = vec![0.0f32; (params + state) * networks];
        for (n, start) in starts.iter().enumerate() {
            for (k, &value) in start.params.iter().enumerate() {
                weights[k * networks + n] = value;
            }
        }
        let runs: Vec<[u32; 4]> = starts
            .iter()
            .map(|Start { config, .. }| {
                let seed = config.shuffle_seed;
                [config.lr.to_bits(), seed as u32, (seed >> 32) as u32, 0]
            })
            .collect();
        let data_values = [&data.inputs[..], &data.targets[..]].concat();
        let storage = |label, contents: &[u8], usage| {
            gpu.device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some(label),
                    contents,
                    usage: wgpu::BufferUsages::STORAGE | usage,
                })
        };
        let data_buffer = storage(
            "fused data",
            bytemuck::cast_slice(&data_values),
            wgpu::BufferUsages::empty(),
        );
        let weights = storage(
            "fused weights",
            bytemuck::cast_slice(&weights),
            wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
        );
        let runs = storage(
            "fused runs",
            bytemuck::cast_slice(&runs),
            wgpu::BufferUsages::empty(),
        );
        let results_len = results_len(network, data.rows, networks);
        let results = storage(
            "fused results",
            bytemuck::cast_slice(&vec![0.0f32; results_len]),
            wgpu::BufferUsages::COPY_SRC,
        );
        let job = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("fused job"),
            size: size_of::<Job>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let compiling = Instant::now();
        let (kernels, compiled) = gpu.fused_kernels(&fused_source(network, variant), || {
            compile(gpu, network, variant)
        });
        let bind_group = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("fused"),
            layout: &kernels.layout,
            entries: &[&data_buffer, &weights, &runs, &results, &job]
                .iter()
                .enumerate()
                .map(|(binding, buffer)| wgpu::BindGroupEntry {
                    binding: binding as u32,
                    resource: buffer.as_entire_binding(),
                })
                .collect::<Vec<_>>(),
        });
        let (epoch_work, row_work) = serial_work(network, data.rows, config, tier);
        let loops = LoopCount::new(network, data.rows, config, variant);
        let (max_epochs_per_dispatch, most_measured_rows) = match gpu.loop_limit() {
            Some(limit) => (
                loops.epochs_within(limit),
                (limit - 8) / loops.per_measured_row,
            ),
            None => (u64::MAX, u64::MAX),
        };
        let steps = config.batches(data.rows);
        let trainer = FusedTrainer {
            gpu,
            network: network.clone(),
            config: *config,
            networks,
            rows: data.rows,
            batch: steps[0].len(),
            batches: steps.len(),
            targets: data.targets.clone(),
            kernels,
            bind_group,
            weights,
            results,
            job,
            metrics_staging: gpu.staging(3 * networks),
            epoch: 0,
            epochs_per_dispatch: ((SERIAL_WORK_LIMIT / epoch_work.max(1.0)) as u64).max(1),
            max_epochs_per_dispatch,
            rows_per_measure: ((SERIAL_WORK_LIMIT / row_work.max(1.0)) as u64)
                .min(most_measured_rows)
                .max(1) as usize,
            variant,
            compile_time: Duration::ZERO,
        };
        // A dispatch of no epochs (it loads and stores every network unchanged) pays the first dispatch's
        // one-time costs here, in the setup, rather than in the first timed epochs. llvmpipe compiles a
        // pipeline at its first dispatch, so a new one's are each dispatched once (measuring no rows,
        // evaluating one) before the compile time is taken.
        trainer.dispatch(&trainer.kernels.train, networks, trainer.job(0, 0, 0..0));
        if compiled {
            trainer.dispatch(&trainer.kernels.measure, networks, trainer.job(0, 0, 0..0));
            trainer.dispatch(&trainer.kernels.evaluate, 1, trainer.job(0, 0, 0..0));
        }
        trainer.gpu.wait()?;
        let mut trainer = trainer;
        if compiled {
            trainer.compile_time = compiling.elapsed();
        }
        scopes
            .pop("compiling the fused engine and uploading the networks")
            .await?;
        Ok(trainer)
    }

    /// Trains every network `epochs` more epochs, in dispatches sized from the measured time of the previous
    /// ones so that none runs long; how the epochs are split does not change any result.
    pub fn train(&mut self, epochs: usize) -> Result<()> {
        let batches = self.batches as u64;
        let end = self.epoch + epochs as u64;
        if end.saturating_mul(batches) >= u64::from(u32::MAX) {
            return Err(Error::TooLarge {
                what: format!("{end} epochs of {batches} steps in the fused engine"),
                needed: end.saturating_mul(batches),
                limit: u64::from(u32::MAX),
                unit: "steps",
                remedy: "train fewer --epochs, or take fewer steps an epoch with a larger --batch-size",
            });
        }
        while self.epoch < end {
            let now = (end - self.epoch)
                .min(self.epochs_per_dispatch)
                .min(self.max_epochs_per_dispatch);
            let started = Instant::now();
            self.dispatch(&self.kernels.train, self.networks, self.job(now, 0, 0..0));
            self.gpu.wait()?;
            let elapsed = started.elapsed().max(Duration::from_micros(1));
            self.epoch += now;
            if now == self.epochs_per_dispatch {
                // Grow fast, shrink gently: the wall time also counts other work on the device, so one
                // slow dispatch should not make all the following ones tiny.
                let fitting = now as f64 * DISPATCH_TARGET.as_secs_f64() / elapsed.as_secs_f64();
                self.epochs_per_dispatch = (fitting as u64).clamp((now / 2).max(1), 8 * now);
            }
        }
        Ok(())
    }

    /// The loss, the largest error and the rows classified right of every network, measured on the device
    /// over the whole training set, in dispatches of a share of the rows each (each adds to the tallies the
    /// previous one left); only these three numbers a network are read back.
    pub async fn metrics(&self) -> Result<Vec<Metrics>> {
        for first in (0..self.rows.max(1)).step_by(self.rows_per_measure) {
            let rows = first as u32..(first + self.rows_per_measure).min(self.rows) as u32;
            self.dispatch(&self.kernels.measure, self.networks, self.job(0, 0, rows));
        }
        let values = self
            .gpu
            .read_via(&self.metrics_staging, &self.results, 0..3 * self.networks)
            .await?;
        let mean_over = self
            .network
            .loss()
            .mean_over(self.rows, self.network.outputs());
        Ok(values
            .chunks_exact(3)
            .map(|m| Metrics {
                loss: f64::from(m[0]) / mean_over as f64,
                max_error: m[1],
                correct: m[2].to_bits() as usize,
            })
            .collect())
    }

    /// Outputs, logits and loss of network `run` over the whole data set under its current parameters.
    pub async fn evaluate(&self, run: usize) -> Result<Evaluation> {
        self.check_run_index(run)?;
        self.dispatch(&self.kernels.evaluate, self.rows, self.job(0, run, 0..0));
        let len = self.rows * self.network.outputs();
        let at = 3 * self.networks;
        let mut outputs = self.gpu.read(&self.results, at..at + 2 * len).await?;
        let logits = outputs.split_off(len);
        Ok(Evaluation::new(
            &self.network,
            outputs,
            logits,
            &self.targets,
        ))
    }

    /// The current parameters of network `run`, laid out as [`Network::layout`] says.
    pub async fn params(&self, run: usize) -> Result<Vec<f32>> {
        self.read_weights(run, 0, self.params_len()).await
    }

    /// The parameters of every network, in one readback.
    pub async fn all_params(&self) -> Result<Vec<Vec<f32>>> {
        let n = self.networks;
        let all = self
            .gpu
            .read(&self.weights, 0..self.params_len() * n)
            .await?;
        Ok((0..n)
            .map(|run| all.iter().skip(run).step_by(n).copied().collect())
            .collect())
    }

    /// The optimizer's state of network `run`, laid out like the parameters one after another.
    pub async fn optimizer_state(&self, run: usize) -> Result<Vec<f32>> {
        let state = self.params_len() * self.config.optimizer.state_per_param();
        self.read_weights(run, self.params_len(), state).await
    }

    /// Continues every network from a run saved after `epoch` epochs with the optimizer's `state`.
    pub fn resume(&mut self, epoch: u64, state: &[f32]) -> Result<()> {
        let params = self.params_len();
        check_state_len(
            params * self.config.optimizer.state_per_param(),
            state.len(),
        )?;
        let interleaved: Vec<f32> = state
            .iter()
            .flat_map(|&v| std::iter::repeat_n(v, self.networks))
            .collect();
        let at = (params * self.networks * size_of::<f32>()) as u64;
        self.gpu
            .queue
            .write_buffer(&self.weights, at, bytemuck::cast_slice(&interleaved));
        self.epoch = epoch;
        Ok(())
    }

    /// Epochs trained so far.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// How many networks train side by side.
    pub fn networks(&self) -> usize {
        self.networks
    }

    pub fn gpu(&self) -> &Gpu {
        self.gpu
    }

    fn params_len(&self) -> usize {
        self.network.layout().len
    }

    fn check_run_index(&self, run: usize) -> Result<()> {
        if run < self.networks {
            return Ok(());
        }
        Err(Error::invalid(
            "runs",
            run,
            format!("there are {} network(s)", self.networks),
        ))
    }

    /// Values `from..from + len` of network `run`'s slice of the interleaved weights.
    async fn read_weights(&self, run: usize, from: usize, len: usize) -> Result<Vec<f32>> {
        self.check_run_index(run)?;
        let n = self.networks;
        let all = self
            .gpu
            .read(&self.weights, from * n..(from + len) * n)
            .await?;
        Ok(all.iter().skip(run).step_by(n).copied().collect())
    }

    /// What the engine was compiled for: the tier where the network is held while it trains, the code's form.
    pub fn variant(&self) -> Variant {
        self.variant
    }

    /// What compiling the engine's shaders took; zero where this process had compiled them already.
    pub fn compile_time(&self) -> Duration {
        self.compile_time
    }

    /// The job of a dispatch: `epochs` epochs from the current one, network `evaluated`, `measured` rows.
    fn job(&self, epochs: u64, evaluated: usize, measured: Range<u32>) -> Job {
        Job {
            networks: self.networks as u32,
            rows: self.rows as u32,
            batch: self.batch as u32,
            first_epoch: self.epoch as u32,
            epochs: epochs as u32,
            evaluated: evaluated as u32,
            first_row: measured.start,
            end_row: measured.end,
        }
    }

    /// Submits one dispatch of `kernel` for `threads` networks or rows, without waiting.
    fn dispatch(&self, kernel: &Kernel, threads: usize, job: Job) {
        self.gpu
            .queue
            .write_buffer(&self.job, 0, bytemuck::bytes_of(&job));
        let mut encoder = self.gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            pass.set_pipeline(&kernel.pipeline);
            pass.set_bind_group(0, &self.bind_group, &[]);
            let [x, y] = spill(
                (threads as u32).div_ceil(kernel.per_workgroup),
                self.gpu.limits().max_compute_workgroups_per_dimension,
            );
            pass.dispatch_workgroups(x, y, 1);
        }
        self.gpu.queue.submit([encoder.finish()]);
    }
}

/// What the fused engine holds of one network (the arrays at the top of shaders/fused_private.wgsl).
pub fn fused_floats(network: &Network, optimizer: Optimizer) -> usize {
    let params = network.layout().len;
    let units: usize = network.sizes().iter().sum();
    let widest = network.sizes().iter().copied().max().unwrap_or(0);
    params * (2 + optimizer.state_per_param()) + units + network.outputs() + 2 * widest
}

/// The most threads a workgroup may have on `gpu`.
fn most_threads(gpu: &Gpu) -> u32 {
    let limits = gpu.limits();
    limits
        .max_compute_invocations_per_workgroup
        .min(limits.max_compute_workgroup_size_x)
}

/// Metrics of every network, then one network's outputs and logits for every row.
fn results_len(network: &Network, rows: usize, networks: usize) -> usize {
    3 * networks + 2 * rows * network.outputs()
}

/// The three entry points of the engine for `network`, and the layout their bind group follows.
fn compile(gpu: &Gpu, network: &Network, variant: Variant) -> FusedKernels {
    let device = &gpu.device;
    let storage = |binding, read_only| wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Storage { read_only },
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    };
    let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some("fused"),
        entries: &[
            storage(0, true),
            storage(1, false),
            storage(2, true),
            storage(3, false),
            wgpu::BindGroupLayoutEntry {
                binding: 4,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Uniform,
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            },
        ],
    });
    let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some("fused"),
        bind_group_layouts: &[Some(&layout)],
        immediate_size: 0,
    });
    let descriptor = wgpu::ShaderModuleDescriptor {
        label: Some("fused"),
        source: wgpu::ShaderSource::Wgsl(fused_source(network, variant).into()),
    };
    let checks = wgpu::ShaderRuntimeChecks {
        force_loop_bounding: false,
        ..wgpu::ShaderRuntimeChecks::checked()
    };
    // SAFETY: bounds checks stay on; only the loop bound is dropped, and every loop of shaders/fused.wgsl
    // ends: its `for` loops count to constants or to the job's sizes, and the order's cycle walk returns
    // within a permutation's cycle.
    let module = unsafe { device.create_shader_module_trusted(descriptor, checks) };
    let kernel = |entry_point, per_workgroup| Kernel {
        pipeline: device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(entry_point),
            layout: Some(&pipeline_layout),
            module: &module,
            entry_point: Some(entry_point),
            compilation_options: Default::default(),
            cache: gpu.pipeline_cache(),
        }),
        per_workgroup,
    };
    // The private tier's measuring and evaluating serve the rows tier too: a thread a network or a row.
    let private = |entry_point| kernel(entry_point, WORKGROUP_SIZE);
    let (train, measure, evaluate) = match variant.tier {
        Tier::Private => (
            private("fused_train"),
            private("fused_measure"),
            private("fused_evaluate"),
        ),
        Tier::Rows { .. } => (
            kernel("fused_train_rows", 1),
            private("fused_measure"),
            private("fused_evaluate"),
        ),
        Tier::Workgroup { .. } => (
            kernel("fused_train", 1),
            kernel("fused_measure", 1),
            kernel("fused_evaluate", 1),
        ),
    };
    FusedKernels {
        layout,
        train,
        measure,
        evaluate,
    }
}
