//! Throughput figures: XOR training on each engine, sweeps of XOR networks, moons on each engine, an MLP
//! step, predicting a million rows, and matmul GFLOP/s, on the GPU, the fast CPU path and the CPU reference.
//! A measurement, not a test: nothing here asserts on time.

use std::time::{Duration, Instant};

use rand::{RngExt, SeedableRng, rngs::StdRng};
use serde::Serialize;

use crate::cpu::{self, MatmulShape};
use crate::data::{Builtin, FeatureColumns, Schema};
use crate::engine::{Engine, Start, Trainer};
use crate::gpu::{AdapterSummary, FusedTrainer, Gpu, GpuTrainer, Kernel, Op};
use crate::network::{Activation, DEFAULT_SEED, Dataset, Loss, Network};
use crate::train::{Optimizer, TrainConfig};
use crate::{Error, Result};

/// How long each figure is measured for, at least: repetitions double until a run takes this long.
const MIN_MEASURE: Duration = Duration::from_millis(300);

/// The same for each dispatch of the MLP profile: shorter, since a step has some 25 of them.
const PROFILE_MEASURE: Duration = Duration::from_millis(100);

#[derive(Debug, Serialize)]
pub struct BenchReport {
    pub adapter: AdapterSummary,
    pub xor: XorFigures,
    pub sweeps: Vec<SweepFigures>,
    pub networks: Vec<NetworkFigures>,
    pub mlp: MlpFigures,
    pub predict: PredictFigures,
    pub matmul: Vec<MatmulFigures>,
}

/// The tutorial's 2-3-1 network on the four XOR rows, on each engine: training only, setup apart.
#[derive(Debug, Serialize)]
pub struct XorFigures {
    pub epochs: usize,
    pub fused_setup_ms: f64,
    pub fused_train_ms: f64,
    pub layered_train_ms: f64,
    /// The CPU engine (`CpuEngine`, which trains this network in lanes: `LaneTrainer`).
    pub cpu_train_ms: f64,
    pub cpu_reference_train_ms: f64,
    pub fused_epochs_per_s: f64,
    pub layered_epochs_per_s: f64,
    pub cpu_epochs_per_s: f64,
    /// Dispatches a layered epoch takes; the fused engine takes one for many epochs.
    pub layered_dispatches_per_epoch: usize,
}

/// `networks` XOR networks (seeds 7, 8, ...) trained side by side by the fused engine.
#[derive(Debug, Serialize)]
pub struct SweepFigures {
    pub networks: usize,
    pub epochs: usize,
    pub train_ms: f64,
    pub network_epochs_per_s: f64,
    /// The share whose every output ends within 0.1 of its target.
    pub converged: f64,
}

/// One of the networks the fused engine was sized on, full batch, on each engine: what compiling its
/// shaders costs beside what training it takes. XOR's 2-3-1 with SGD; on moons (400 points) 2-16-16-1 and
/// 2-64-64-1 with tanh, bce and Adam; on spirals (600 points, 3 arms) 2-24-24-3 with tanh, ce and Adam.
#[derive(Debug, Serialize)]
pub struct NetworkFigures {
    pub network: String,
    pub optimizer: &'static str,
    pub rows: usize,
    pub epochs: usize,
    /// The fused engine's tier and code form, or why it does not take this network on this adapter.
    pub fused: std::result::Result<String, String>,
    /// Compiling the fused engine's shaders (their first dispatch included: llvmpipe compiles then).
    pub fused_compile_ms: Option<f64>,
    pub fused_train_ms: Option<f64>,
    pub fused_accuracy: Option<f64>,
    /// The layered engine's setup, which compiles the kernels this network is the first in the process to
    /// use, and its training.
    pub layered_setup_ms: f64,
    pub layered_train_ms: f64,
    pub cpu_train_ms: f64,
}

/// An MLP training step: 784-256-256-10, relu, softmax with cross-entropy, Adam (lr 1e-3), batches of 256
/// rows of uniform inputs with labels i·7 mod 10; training only, setup apart.
#[derive(Debug, Serialize)]
pub struct MlpFigures {
    pub rows: usize,
    pub batch: usize,
    /// The layered engine, which trains networks this size on the GPU.
    pub gpu_samples_per_s: f64,
    pub gpu_dispatches_per_step: f64,
    pub cpu_samples_per_s: f64,
    pub cpu_reference_samples_per_s: f64,
    /// Each dispatch of one GPU step timed by itself (repeated in one submission), in the step's order; their
    /// sum against the step's own time shows what the dispatches cost between them.
    pub gpu_step_ms: f64,
    pub gpu_profile: Vec<OpTime>,
}

/// One dispatch of a step: its kernel, its `Args` rows × cols × inner, and its time alone.
#[derive(Debug, Serialize)]
pub struct OpTime {
    pub kernel: &'static str,
    pub shape: [u32; 3],
    pub ms: f64,
}

/// `cpu::predict` (the forward pass alone, on the fast CPU path) of a 2-16-16-1 tanh network on `rows` rows.
#[derive(Debug, Serialize)]
pub struct PredictFigures {
    pub rows: usize,
    pub ms: f64,
}

/// One square f32 matmul, `size`×`size` by `size`×`size`.
#[derive(Debug, Serialize)]
pub struct MatmulFigures {
    pub size: usize,
    /// The version `Op::matmul` picks for this shape.
    pub gpu_gflops: f64,
    /// Every version, each checked against the CPU reference before it is timed.
    pub gpu_versions: Vec<MatmulVersion>,
    /// The fast CPU path's tuned kernel, and the reference's loops.
    pub cpu_fast_gflops: f64,
    pub cpu_gflops: f64,
    /// The largest |GPU − CPU| over the product, so the figure is known to come from a correct result.
    pub max_abs_diff: f32,
}

#[derive(Debug, Serialize)]
pub struct MatmulVersion {
    pub kernel: &'static str,
    pub gflops: f64,
    pub max_abs_diff: f32,
}

/// What to measure: XOR epochs, the sweep sizes, moons epochs and the matmul sides.
#[derive(Clone, Debug)]
pub struct BenchPlan {
    pub xor_epochs: usize,
    pub sweeps: Vec<usize>,
    pub moons_epochs: usize,
    /// Epochs of the MLP on its 1024 rows, on the slowest engine; the fast CPU path runs ten times more.
    pub mlp_epochs: usize,
    pub predict_rows: usize,
    pub matmul_sizes: Vec<usize>,
}

/// Runs every figure on `gpu` and the CPU.
pub async fn run(gpu: &Gpu, plan: &BenchPlan) -> Result<BenchReport> {
    // First, so that every compile is the process's first of its shaders.
    let networks = network_cases()?
        .into_iter()
        .map(|case| network_figures(gpu, case, plan.moons_epochs))
        .collect::<Result<_>>()?;
    let mut matmul = Vec::new();
    for &size in &plan.matmul_sizes {
        matmul.push(matmul_figures(gpu, size).await?);
    }
    let mut sweeps = Vec::new();
    for &networks in &plan.sweeps {
        sweeps.push(sweep_figures(gpu, networks, plan.xor_epochs)?);
    }
    Ok(BenchReport {
        adapter: gpu.adapter().clone(),
        xor: xor_figures(gpu, plan.xor_epochs)?,
        sweeps,
        networks,
        mlp: mlp_figures(gpu, plan.mlp_epochs)?,
        predict: predict_figures(plan.predict_rows)?,
        matmul,
    })
}

/// Training time of the CPU reference (`CpuTrainer::new`), setup apart.
fn time_reference(
    network: &Network,
    start: &Start,
    data: &Dataset,
    epochs: usize,
) -> Result<Duration> {
    let mut reference = cpu::CpuTrainer::<f32>::new(network, &start.params, data, start.config)?;
    timed(|| {
        reference.train(epochs);
        Ok(())
    })
}

/// Setup and training time of `network` on `data` on one engine (the CPU where `gpu` is `None`), and the
/// trainer afterwards.
fn time_training<'gpu>(
    gpu: Option<&'gpu Gpu>,
    engine: Engine,
    network: &Network,
    starts: &[Start],
    data: &Dataset,
    epochs: usize,
) -> Result<(Duration, Duration, Trainer<'gpu>)> {
    let setup = Instant::now();
    let mut trainer = Trainer::new(gpu, engine, network, starts, data)?;
    if let Some(gpu) = gpu {
        gpu.wait()?;
    }
    let setup = setup.elapsed();
    let train = timed(|| trainer.train(epochs))?;
    Ok((setup, train, trainer))
}

/// How many times the XOR timings run (all but the layered engine's, which takes seconds), each from a fresh
/// trainer, keeping the shortest: a run of a millisecond is at the mercy of whatever else the machine does
/// at that moment.
pub const XOR_RUNS: usize = 3;

fn xor_figures(gpu: &Gpu, epochs: usize) -> Result<XorFigures> {
    let network = Network::new(vec![2, 3, 1])?;
    let start = [Start {
        params: network.init_params(DEFAULT_SEED),
        config: TrainConfig::sgd(0.1),
    }];
    let data = Dataset::xor();
    let (network, start, data) = (&network, &start, &data);
    // The first fused run's setup compiles the shader; its training time is left out with the rest.
    let (fused_setup, _, _) =
        time_training(Some(gpu), Engine::Fused, network, start, data, epochs)?;
    let train =
        |gpu, engine| move || Ok(time_training(gpu, engine, network, start, data, epochs)?.1);
    let fused = shortest(XOR_RUNS, train(Some(gpu), Engine::Fused))?;
    let (_, layered, _) = time_training(Some(gpu), Engine::Layered, network, start, data, epochs)?;
    let cpu = shortest(XOR_RUNS, train(None, Engine::Auto))?;
    let reference = shortest(XOR_RUNS, || {
        time_reference(network, &start[0], data, epochs)
    })?;
    let per_s = |d: Duration| epochs as f64 / d.as_secs_f64();
    Ok(XorFigures {
        epochs,
        fused_setup_ms: millis(fused_setup),
        fused_train_ms: millis(fused),
        layered_train_ms: millis(layered),
        cpu_train_ms: millis(cpu),
        cpu_reference_train_ms: millis(reference),
        fused_epochs_per_s: per_s(fused),
        layered_epochs_per_s: per_s(layered),
        cpu_epochs_per_s: per_s(cpu),
        layered_dispatches_per_epoch: GpuTrainer::dispatches_per_epoch(
            gpu,
            network,
            data.rows,
            &start[0].config,
        )?,
    })
}

fn sweep_figures(gpu: &Gpu, networks: usize, epochs: usize) -> Result<SweepFigures> {
    let network = Network::new(vec![2, 3, 1])?;
    let starts: Vec<Start> = (0..networks as u64)
        .map(|i| Start {
            params: network.init_params(DEFAULT_SEED + i),
            config: TrainConfig::sgd(0.1),
        })
        .collect();
    let (_, train, mut trainer) = time_training(
        Some(gpu),
        Engine::Fused,
        &network,
        &starts,
        &Dataset::xor(),
        epochs,
    )?;
    let progress = trainer.progress()?;
    let converged = progress.iter().filter(|p| p.converged()).count();
    Ok(SweepFigures {
        networks,
        epochs,
        train_ms: millis(train),
        network_epochs_per_s: (networks * epochs) as f64 / train.as_secs_f64(),
        converged: converged as f64 / networks.max(1) as f64,
    })
}

/// A network of [`NetworkFigures`], its data and its training settings.
struct NetworkCase {
    network: Network,
    data: Dataset,
    config: TrainConfig,
}

fn network_cases() -> Result<Vec<NetworkCase>> {
    let table = |builtin: Builtin, rows, classes, loss| -> Result<Dataset> {
        let table = builtin.generate(rows, 0.1, classes, DEFAULT_SEED)?;
        let schema = Schema::infer(&table, None, &FeatureColumns::AllButTarget, loss)?;
        schema.dataset(&table, loss)
    };
    let adam = TrainConfig {
        optimizer: Optimizer::Adam { weight_decay: 0.0 },
        ..TrainConfig::sgd(0.01)
    };
    let moons = table(Builtin::Moons, 400, 2, Loss::Bce)?;
    let tanh = |sizes, output, loss| Network::build(sizes, Activation::Tanh, output, loss);
    Ok(vec![
        NetworkCase {
            network: Network::new(vec![2, 3, 1])?,
            data: Dataset::xor(),
            config: TrainConfig::sgd(0.1),
        },
        NetworkCase {
            network: tanh(vec![2, 16, 16, 1], Activation::Sigmoid, Loss::Bce)?,
            data: moons.clone(),
            config: adam,
        },
        NetworkCase {
            network: tanh(vec![2, 24, 24, 3], Activation::Softmax, Loss::Ce)?,
            data: table(Builtin::Spirals, 600, 3, Loss::Ce)?,
            config: adam,
        },
        NetworkCase {
            network: tanh(vec![2, 64, 64, 1], Activation::Sigmoid, Loss::Bce)?,
            data: moons,
            config: adam,
        },
    ])
}

fn network_figures(gpu: &Gpu, case: NetworkCase, epochs: usize) -> Result<NetworkFigures> {
    let NetworkCase {
        network,
        data,
        config,
    } = case;
    let start = [Start {
        params: network.init_params(DEFAULT_SEED),
        config,
    }];
    // Where the automatic choice takes the fused engine.
    let fused = FusedTrainer::check_size(gpu, &network, data.rows, &config, 1)
        .and_then(|variant| FusedTrainer::check_compile(gpu, &network, variant));
    let (variant, compile, train, accuracy) = match fused {
        Ok(_) => {
            let (_, train, mut trainer) =
                time_training(Some(gpu), Engine::Fused, &network, &start, &data, epochs)?;
            let (tier, form) = trainer
                .fused_variant()
                .map(|v| (v.tier, v.form))
                .expect("Engine::Fused trains in the fused engine");
            (
                Ok(format!("{tier:?}, {form:?}")),
                Some(millis(trainer.compile_time())),
                Some(millis(train)),
                trainer.progress()?[0].accuracy,
            )
        }
        Err(e) => (Err(e.to_string()), None, None, None),
    };
    let (layered_setup, layered, _) =
        time_training(Some(gpu), Engine::Layered, &network, &start, &data, epochs)?;
    let (_, cpu, _) = time_training(None, Engine::Auto, &network, &start, &data, epochs)?;
    Ok(NetworkFigures {
        network: network.to_string(),
        optimizer: config.optimizer.name(),
        rows: data.rows,
        epochs,
        fused: variant,
        fused_compile_ms: compile,
        fused_train_ms: train,
        fused_accuracy: accuracy,
        layered_setup_ms: millis(layered_setup),
        layered_train_ms: millis(layered),
        cpu_train_ms: millis(cpu),
    })
}

fn mlp_figures(gpu: &Gpu, epochs: usize) -> Result<MlpFigures> {
    let (rows, batch) = (1024, 256);
    let network = Network::build(
        vec![784, 256, 256, 10],
        Activation::Relu,
        Activation::Softmax,
        Loss::Ce,
    )?;
    let mut rng = StdRng::seed_from_u64(DEFAULT_SEED);
    let data = Dataset {
        rows,
        inputs: (0..rows * 784)
            .map(|_| rng.random_range(0.0..1.0))
            .collect(),
        targets: (0..rows)
            .flat_map(|i| (0..10).map(move |class| f32::from(u8::from(class == i * 7 % 10))))
            .collect(),
    };
    let start = [Start {
        params: network.init_params(DEFAULT_SEED),
        config: TrainConfig {
            optimizer: Optimizer::Adam { weight_decay: 0.0 },
            batch_size: Some(batch),
            ..TrainConfig::sgd(1e-3)
        },
    }];
    let samples_per_s = |epochs: usize, time: Duration| (epochs * rows) as f64 / time.as_secs_f64();
    let mut trainer = pollster::block_on(GpuTrainer::new(
        gpu,
        &network,
        &start[0].params,
        &data,
        start[0].config,
    ))?;
    // An epoch apart first: llvmpipe compiles a pipeline at its first dispatch, seconds for this step's.
    trainer.train(1)?;
    gpu.wait()?;
    let gpu_time = timed(|| {
        trainer.train(epochs)?;
        gpu.wait()
    })?;
    let gpu_profile = step_profile(gpu, &trainer)?;
    let fast_epochs = 10 * epochs;
    let (_, cpu_time, _) = time_training(None, Engine::Auto, &network, &start, &data, fast_epochs)?;
    let reference = time_reference(&network, &start[0], &data, epochs)?;
    let steps = start[0].config.batches(rows).len();
    Ok(MlpFigures {
        rows,
        batch,
        gpu_samples_per_s: samples_per_s(epochs, gpu_time),
        gpu_dispatches_per_step: GpuTrainer::dispatches_per_epoch(
            gpu,
            &network,
            rows,
            &start[0].config,
        )? as f64
            / steps as f64,
        cpu_samples_per_s: samples_per_s(fast_epochs, cpu_time),
        cpu_reference_samples_per_s: samples_per_s(epochs, reference),
        gpu_step_ms: millis(gpu_time) / (epochs * steps) as f64,
        gpu_profile,
    })
}

/// Each dispatch of one step of `trainer` timed by itself, on a copy of its arena.
fn step_profile(gpu: &Gpu, trainer: &GpuTrainer) -> Result<Vec<OpTime>> {
    let (ops, copy) = trainer.step_on_copy()?;
    ops.iter()
        .map(|op| {
            let program = gpu.program(&copy, std::slice::from_ref(op))?;
            gpu.submit(&[(&program, 1)]); // warm-up, as for the matmuls
            let time = per_repetition(PROFILE_MEASURE, |reps| {
                gpu.submit(&[(&program, reps)]);
                gpu.wait()
            })?;
            Ok(OpTime {
                kernel: op.kernel.entry_point(),
                shape: [op.args.rows, op.args.cols, op.args.inner],
                ms: millis(time),
            })
        })
        .collect()
}

fn predict_figures(rows: usize) -> Result<PredictFigures> {
    let network = Network::build(
        vec![2, 16, 16, 1],
        Activation::Tanh,
        Activation::Sigmoid,
        Loss::Bce,
    )?;
    let params = network.init_params(DEFAULT_SEED);
    let mut rng = StdRng::seed_from_u64(DEFAULT_SEED);
    let inputs: Vec<f32> = (0..rows * 2).map(|_| rng.random_range(-2.0..2.0)).collect();
    let time = timed(|| cpu::predict(&network, &params, &inputs, rows).map(drop))?;
    Ok(PredictFigures {
        rows,
        ms: millis(time),
    })
}

async fn matmul_figures(gpu: &Gpu, size: usize) -> Result<MatmulFigures> {
    let shape = MatmulShape::new(size, size, size);
    let len = size
        .checked_mul(size)
        .filter(|len| len.checked_mul(3).is_some())
        .ok_or_else(|| Error::TooLarge {
            what: format!("a {size}×{size} matmul"),
            needed: u64::MAX,
            limit: u32::MAX as u64,
            unit: "elements",
            remedy: "benchmark smaller matmuls (--sizes)",
        })?;
    gpu.check_fits(
        &format!("a {size}×{size} matmul's three matrices"),
        3 * len,
        "benchmark smaller matmuls (--sizes)",
    )?;
    let mut rng = StdRng::seed_from_u64(DEFAULT_SEED);
    let mut arena: Vec<f32> = (0..2 * len).map(|_| rng.random_range(-1.0..1.0)).collect();
    arena.resize(3 * len, 0.0);
    let (a, b, c) = (0..len, len..2 * len, 2 * len..3 * len);

    let buffer = gpu.create_arena("matmul operands", &arena)?;
    let mut timed_versions = Vec::new();
    for kernel in Kernel::MATMULS {
        let op = Op::matmul_with(kernel, c.clone(), a.clone(), b.clone(), shape)?;
        let program = gpu.program(&buffer, &[op])?;
        gpu.submit(&[(&program, 1)]); // warm-up: the first dispatch pays for pipeline and memory set-up
        let result = gpu.read(&buffer, c.clone()).await?;
        let time = per_repetition(MIN_MEASURE, |reps| {
            gpu.submit(&[(&program, reps)]);
            gpu.wait()
        })?;
        timed_versions.push((kernel, result, time));
    }
    let mut cpu_result = vec![0.0; len];
    let mut cpu_time = |multiply: fn(&mut [f32], &[f32], &[f32], MatmulShape)| {
        per_repetition(MIN_MEASURE, |reps| {
            for _ in 0..reps {
                multiply(&mut cpu_result, &arena[a.clone()], &arena[b.clone()], shape);
            }
            Ok(())
        })
    };
    let fast_time = cpu_time(cpu::fast_matmul)?;
    let reference_time = cpu_time(cpu::matmul)?;
    let gflops = |time: Duration| shape.flops() / time.as_secs_f64() / 1e9;
    let picked = Kernel::matmul_for(shape);
    let gpu_versions: Vec<MatmulVersion> = timed_versions
        .iter()
        .map(|(kernel, result, time)| MatmulVersion {
            kernel: kernel.entry_point(),
            gflops: gflops(*time),
            max_abs_diff: max_abs_diff(result, &cpu_result),
        })
        .collect();
    let (_, gpu_result, gpu_time) = timed_versions
        .iter()
        .find(|(kernel, ..)| *kernel == picked)
        .expect("Kernel::MATMULS holds every version matmul_for picks");
    Ok(MatmulFigures {
        size,
        gpu_gflops: gflops(*gpu_time),
        gpu_versions,
        cpu_fast_gflops: gflops(fast_time),
        cpu_gflops: gflops(reference_time),
        max_abs_diff: max_abs_diff(gpu_result, &cpu_result),
    })
}

/// The shortest of `runs` timings by `time`.
fn shortest(runs: usize, mut time: impl FnMut() -> Result<Duration>) -> Result<Duration> {
    (0..runs).try_fold(Duration::MAX, |best, _| Ok(best.min(time()?)))
}

/// The time of one repetition of `work(reps)`, doubling `reps` until a run lasts `least`.
fn per_repetition(least: Duration, mut work: impl FnMut(usize) -> Result<()>) -> Result<Duration> {
    let mut reps = 1;
    loop {
        let elapsed = timed(|| work(reps))?;
        if elapsed >= least {
            return Ok(elapsed / reps as u32);
        }
        reps *= 2;
    }
}

fn timed(work: impl FnOnce() -> Result<()>) -> Result<Duration> {
    let start = Instant::now();
    work()?;
    Ok(start.elapsed())
}

/// The largest |a − b|; NaN if any difference is NaN, so that a broken result never reads as a match.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, |worst, d| {
            if d.is_nan() || worst.is_nan() {
                f32::NAN
            } else {
                worst.max(d)
            }
        })
}

/// Milliseconds, for reports.
pub fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}
