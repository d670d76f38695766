//! Throughput figures: XOR training epochs per second and matmul GFLOP/s, on the GPU and the CPU reference.
//! A measurement, not a test: nothing here asserts on time.

use std::time::{Duration, Instant};

use rand::{RngExt, SeedableRng, rngs::StdRng};
use serde::Serialize;

use crate::cpu::{self, CpuTrainer, MatmulShape};
use crate::gpu::{AdapterSummary, Gpu, GpuTrainer, Op};
use crate::network::{DEFAULT_SEED, Dataset, Network};
use crate::train::TrainConfig;
use crate::{Error, Result};

/// How long each figure is measured for, at least: repetitions double until a run takes this long.
const MIN_MEASURE: Duration = Duration::from_millis(300);

#[derive(Debug, Serialize)]
pub struct BenchReport {
    pub adapter: AdapterSummary,
    pub xor: XorFigures,
    pub matmul: Vec<MatmulFigures>,
}

/// The tutorial's 2-3-1 network on the four XOR rows.
#[derive(Debug, Serialize)]
pub struct XorFigures {
    pub epochs: usize,
    pub gpu_setup_ms: f64,
    pub gpu_epochs_per_s: f64,
    pub cpu_epochs_per_s: f64,
}

/// One square f32 matmul, `size`×`size` by `size`×`size`.
#[derive(Debug, Serialize)]
pub struct MatmulFigures {
    pub size: usize,
    pub gpu_gflops: f64,
    pub cpu_gflops: f64,
    /// The largest |GPU − CPU| over the product, so the figure is known to come from a correct result.
    pub max_abs_diff: f32,
}

/// Runs every figure on `gpu` and the CPU.
pub async fn run(gpu: &Gpu, xor_epochs: usize, matmul_sizes: &[usize]) -> Result<BenchReport> {
    let mut matmul = Vec::new();
    for &size in matmul_sizes {
        matmul.push(matmul_figures(gpu, size).await?);
    }
    Ok(BenchReport {
        adapter: gpu.adapter().clone(),
        xor: xor_figures(gpu, xor_epochs).await?,
        matmul,
    })
}

async fn xor_figures(gpu: &Gpu, epochs: usize) -> Result<XorFigures> {
    let network = Network::new(vec![2, 3, 1])?;
    let params = network.init_params(DEFAULT_SEED);
    let data = Dataset::xor();

    let setup = Instant::now();
    let mut gpu_trainer =
        GpuTrainer::new(gpu, &network, &params, &data, TrainConfig::sgd(0.1)).await?;
    gpu.wait()?;
    let gpu_setup = setup.elapsed();
    let gpu_train = timed(|| {
        gpu_trainer.train(epochs);
        gpu.wait()
    })?;

    let mut cpu_trainer = CpuTrainer::<f32>::new(&network, &params, &data, TrainConfig::sgd(0.1))?;
    let cpu_train = timed(|| {
        cpu_trainer.train(epochs);
        Ok(())
    })?;
    Ok(XorFigures {
        epochs,
        gpu_setup_ms: millis(gpu_setup),
        gpu_epochs_per_s: epochs as f64 / gpu_train.as_secs_f64(),
        cpu_epochs_per_s: epochs as f64 / cpu_train.as_secs_f64(),
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
        })?;
    gpu.check_fits(&format!("a {size}×{size} matmul's three matrices"), 3 * len)?;
    let mut rng = StdRng::seed_from_u64(DEFAULT_SEED);
    let mut arena: Vec<f32> = (0..2 * len).map(|_| rng.random_range(-1.0..1.0)).collect();
    arena.resize(3 * len, 0.0);
    let (a, b, c) = (0..len, len..2 * len, 2 * len..3 * len);

    let buffer = gpu.create_arena("matmul operands", &arena)?;
    let program = gpu.program(
        &buffer,
        &[Op::matmul(c.clone(), a.clone(), b.clone(), shape)?],
    )?;
    gpu.submit(&[(&program, 1)]); // warm-up: the first dispatch pays for pipeline and memory set-up
    let gpu_result = gpu.read(&buffer, c).await?;
    let gpu_time = per_repetition(|reps| {
        gpu.submit(&[(&program, reps)]);
        gpu.wait()
    })?;

    let mut cpu_result = vec![0.0; len];
    let cpu_time = per_repetition(|reps| {
        for _ in 0..reps {
            cpu::matmul(&mut cpu_result, &arena[a.clone()], &arena[b.clone()], shape);
        }
        Ok(())
    })?;
    Ok(MatmulFigures {
        size,
        gpu_gflops: shape.flops() / gpu_time.as_secs_f64() / 1e9,
        cpu_gflops: shape.flops() / cpu_time.as_secs_f64() / 1e9,
        max_abs_diff: max_abs_diff(&gpu_result, &cpu_result),
    })
}

/// The time of one repetition of `work(reps)`, doubling `reps` until a run lasts [`MIN_MEASURE`].
fn per_repetition(mut work: impl FnMut(usize) -> Result<()>) -> Result<Duration> {
    let mut reps = 1;
    loop {
        let elapsed = timed(|| work(reps))?;
        if elapsed >= MIN_MEASURE {
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
