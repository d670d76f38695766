//! Helpers shared by the test binaries: the one GPU they all use and an element-wise comparison that names
//! the worst element.
#![allow(dead_code)] // each test binary uses its own part

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use wgmlp::{Activation, Dataset, Gpu, Loss, Optimizer};

/// Set (to anything but 0), `gpu()` opens its device with WebGPU's default limits, each clamped to the
/// adapter's own where that is lower: the GPU tests then run within what every WebGPU device guarantees
/// (16 KiB of workgroup memory, 256 invocations a workgroup, 128 MiB a storage binding), not within what
/// lavapipe offers. The test harness alone reads it; the crate knows nothing of it.
const WEBGPU_LIMITS: &str = "WGMLP_TEST_WEBGPU_LIMITS";

/// The device every GPU test runs on, opened once per test binary. No adapter is a failure, never a skip:
/// CI installs lavapipe, and a developer without a driver should learn that from the test run.
pub fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| {
        let webgpu = std::env::var(WEBGPU_LIMITS).is_ok_and(|value| value != "0");
        let opened = match webgpu {
            true => pollster::block_on(gpu_with_webgpu_limits()),
            false => pollster::block_on(Gpu::new()).map_err(|e| e.to_string()),
        };
        match opened {
            Ok(gpu) => {
                let which = match webgpu {
                    true => "WebGPU's default limits",
                    false => "Gpu::new's limits",
                };
                eprintln!(
                    "GPU tests run on {} with {which}: {}",
                    gpu.adapter(),
                    limits_summary(gpu.limits())
                );
                gpu
            }
            Err(e) => panic!(
                "GPU tests need an adapter (CI={:?}): {e}",
                std::env::var("CI").ok()
            ),
        }
    })
}

/// A device on the adapter `Gpu::new` opens, with every limit at WebGPU's default or the adapter's own,
/// whichever is worse.
async fn gpu_with_webgpu_limits() -> Result<Gpu, String> {
    let chosen = wgmlp::gpu::adapters(None)
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .find(|found| found.chosen)
        .map(|found| found.adapter);
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter = instance
        .enumerate_adapters(wgpu::Backends::all())
        .await
        .into_iter()
        .find(|adapter| Some(wgmlp::gpu::AdapterSummary::from(&adapter.get_info())) == chosen)
        .ok_or_else(|| format!("the adapter Gpu::new opens ({chosen:?}) is not among wgpu's"))?;
    let limits = wgpu::Limits::default().or_worse_values_from(&adapter.limits());
    Gpu::from_adapter_with_limits(&adapter, limits)
        .await
        .map_err(|e| e.to_string())
}

/// The limits that the crate's checks follow, in one line.
fn limits_summary(limits: &wgpu::Limits) -> String {
    const MIB: u64 = 1 << 20;
    format!(
        "{} B of workgroup memory, {} invocations a workgroup ({} in x), {} workgroups a dimension, \
         {} MiB a storage binding, {} MiB a buffer",
        limits.max_compute_workgroup_storage_size,
        limits.max_compute_invocations_per_workgroup,
        limits.max_compute_workgroup_size_x,
        limits.max_compute_workgroups_per_dimension,
        limits.max_storage_buffer_binding_size / MIB,
        limits.max_buffer_size / MIB
    )
}

/// A device on the adapter `Gpu::new` opens, with the limits it asks for changed by `lower` (fewer workgroups
/// a grid dimension, say): the checks and spills that follow the device's limits, tried where the real
/// limits are too large to reach on a test's data.
pub fn gpu_with_limits(lower: impl FnOnce(&mut wgpu::Limits)) -> Gpu {
    pollster::block_on(async {
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = instance
            .request_adapter(&Default::default())
            .await
            .expect("an adapter");
        let supported = adapter.limits();
        let mut limits = wgpu::Limits {
            max_storage_buffer_binding_size: supported.max_storage_buffer_binding_size,
            max_buffer_size: supported.max_buffer_size,
            ..wgpu::Limits::downlevel_defaults()
        };
        lower(&mut limits);
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                required_limits: limits,
                ..Default::default()
            })
            .await
            .expect("a device with lower limits");
        let summary = wgmlp::gpu::AdapterSummary::from(&adapter.get_info());
        Gpu::from_device(device, queue, summary, None)
            .await
            .expect("the kernels compile")
    })
}

/// Asserts |gpu − cpu| ≤ atol + rtol·|cpu| element by element; on failure reports the worst element.
pub fn assert_close(what: &str, gpu: &[f32], cpu: &[f32], atol: f32, rtol: f32) {
    assert_eq!(
        gpu.len(),
        cpu.len(),
        "{what}: GPU gave {} values, CPU {}",
        gpu.len(),
        cpu.len()
    );
    let excess = |g: f32, c: f32| {
        let err = (g - c).abs();
        if err.is_nan() {
            f32::INFINITY
        } else {
            err - (atol + rtol * c.abs())
        }
    };
    let worst =
        (0..gpu.len()).max_by(|&i, &j| excess(gpu[i], cpu[i]).total_cmp(&excess(gpu[j], cpu[j])));
    if let Some(i) = worst {
        assert!(
            excess(gpu[i], cpu[i]) <= 0.0,
            "{what}: worst element {i} of {}: GPU {} vs CPU {} (|diff| {}, allowed {} + {}·|cpu|)",
            gpu.len(),
            gpu[i],
            cpu[i],
            (gpu[i] - cpu[i]).abs(),
            atol,
            rtol
        );
    }
}

/// `len` values in [-1, 1) from a small seeded generator, so failures reproduce.
pub fn random(len: usize, seed: u64) -> Vec<f32> {
    use rand::{RngExt, SeedableRng, rngs::StdRng};
    let mut rng = StdRng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(-1.0..1.0)).collect()
}

/// Targets that suit `loss`: probabilities for sse, values for mse, 0/1 for bce, one-hot rows for ce.
pub fn targets_for(loss: Loss, rows: usize, cols: usize, seed: u64) -> Vec<f32> {
    let values = random(rows * cols, seed);
    match loss {
        Loss::Sse => values.iter().map(|v| (v + 1.0) / 2.0).collect(),
        Loss::Mse => values,
        Loss::Bce => values.iter().map(|&v| f32::from(v > 0.0)).collect(),
        Loss::Ce => (0..rows)
            .flat_map(|r| (0..cols).map(move |c| f32::from(c == (r * 7 + 3) % cols)))
            .collect(),
    }
}

/// Runs the command-line program with `args`.
pub fn wgmlp(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wgmlp"))
        .args(args)
        .output()
        .expect("the binary starts")
}

/// A fresh scratch folder for one test.
pub fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wgmlp-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn text(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Runs `args`, expects failure without a panic, and gives stderr.
pub fn failure(args: &[&str]) -> String {
    let out = wgmlp(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(!stderr.contains("panicked"), "{args:?} panicked:\n{stderr}");
    stderr
}

/// Runs `args`, expects failure, checks stderr mentions every fragment, and gives stderr.
pub fn fails_with(args: &[&str], fragments: &[&str]) -> String {
    let stderr = failure(args);
    for fragment in fragments {
        assert!(
            stderr.contains(fragment),
            "{args:?}: {fragment:?} missing from:\n{stderr}"
        );
    }
    stderr
}

/// Runs `args`, which must succeed, and gives stdout.
pub fn succeeds(args: &[&str]) -> String {
    let out = wgmlp(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `args`, which must succeed, and parses the one JSON object it prints.
pub fn json(args: &[&str]) -> serde_json::Value {
    let out = wgmlp(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("--json prints one JSON object")
}

/// The element-wise activations, the ones a hidden layer may have.
pub const HIDDEN: [Activation; 5] = [
    Activation::Sigmoid,
    Activation::Tanh,
    Activation::Relu,
    Activation::LeakyRelu,
    Activation::Identity,
];

/// 13 rows of 3 features: with batches of 5 the last batch has 3 rows.
pub fn small_set(loss: Loss, outputs: usize) -> Dataset {
    Dataset {
        rows: 13,
        inputs: random(13 * 3, 21),
        targets: targets_for(loss, 13, outputs, 22),
    }
}

/// Every optimizer, each with a learning rate that suits the 3-8-1 relu classifier the tests train.
pub const OPTIMIZERS: [(Optimizer, f32); 4] = [
    (Optimizer::Sgd { momentum: 0.0 }, 0.1),
    (Optimizer::Sgd { momentum: 0.9 }, 0.05),
    (Optimizer::Adam { weight_decay: 0.0 }, 0.01),
    (Optimizer::Adam { weight_decay: 0.1 }, 0.01),
];

/// Asserts that a loss summed on the device in f32 (`measure_rows`, then `measure_sum` over `passes`
/// passes) is `cpu`, the f64 `cpu::loss_value` of the same outputs and logits, within what f32 summation
/// order allows. Every term is ≥ 0, so rounding errors are relative to the sum itself: each row sums its
/// `cols` terms in order (≤ (cols + 2)·u relative, u = 2^-24), and the rows go through a binary tree of
/// depth 6 a pass (≤ 6·passes·u). bce and ce also take exp and log of the logits: WGSL allows log an
/// absolute 2^-21 and exp 3 + 2|x| ulp, and z·y and the log-sum-exp lose u·|z| each, so a row may be off by
/// 2^-20·(1 + cols·|z|max) absolutely, and the mean over rows by as much.
pub fn assert_loss_close(
    what: &str,
    gpu: f64,
    cpu: f64,
    loss: Loss,
    (cols, passes, largest_logit): (usize, usize, f32),
) {
    let u = f64::from(f32::EPSILON) / 2.0;
    let rtol = (cols + 2 + 6 * passes) as f64 * u;
    let atol = match loss {
        Loss::Sse | Loss::Mse => 0.0,
        Loss::Bce | Loss::Ce => 2f64.powi(-20) * (1.0 + cols as f64 * f64::from(largest_logit)),
    };
    let allowed = atol + rtol * cpu.abs();
    assert!(
        (gpu - cpu).abs() <= allowed,
        "{what}: loss GPU {gpu} vs CPU {cpu} (|diff| {:e}, allowed {allowed:e} = {atol:e} + {rtol:e}·|cpu|)",
        (gpu - cpu).abs()
    );
}

/// How many passes measuring `rows` rows takes: `measure_rows`, then `measure_sum` until one tally is left.
pub fn measure_passes(rows: usize) -> usize {
    let mut passes = 1;
    let mut left = wgmlp::gpu::groups(rows);
    while left > 1 {
        left = wgmlp::gpu::groups(left);
        passes += 1;
    }
    passes
}
