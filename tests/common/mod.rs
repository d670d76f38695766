//! Helpers shared by the test binaries: the one GPU they all use and an element-wise comparison that names
//! the worst element.
#![allow(dead_code)] // each test binary uses its own part

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use wgmlp::{Activation, Dataset, Gpu, Loss, Optimizer};

/// The device every GPU test runs on, opened once per test binary. No adapter is a failure, never a skip:
/// CI installs lavapipe, and a developer without a driver should learn that from the test run.
pub fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| match pollster::block_on(Gpu::new()) {
        Ok(gpu) => {
            eprintln!("GPU tests run on {}", gpu.adapter());
            gpu
        }
        Err(e) => panic!(
            "GPU tests need an adapter (CI={:?}): {e}",
            std::env::var("CI").ok()
        ),
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
