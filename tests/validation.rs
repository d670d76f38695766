//! The crate's GPU work under the Khronos validation layer. With `WGPU_VALIDATION=1` on a Vulkan adapter
//! (lavapipe in CI) every engine, tier and code form trains and reads back while the layer watches, and any
//! message from it but the one that says it started fails the test; with `CI` set, a layer that is not
//! there fails it too. Without the layer the same work runs, and nothing in wgpu may log an error.
//!
//! The layer reports into a file of its own, not through wgpu: wgpu-hal registers its debug callback (which
//! passes the layer's messages to the `log` crate) only with `InstanceFlags::DEBUG`, and that flag also
//! makes wgpu embed each shader's WGSL in its SPIR-V as `OpSource WGSL`, a source language that the layer
//! of Debian 12 (1.3.239) does not know: it rejects every module ("SPIR-V module not valid: Invalid source
//! language operand: 10") and checks none of them further.
//!
//! `WGPU_VALIDATION=1 cargo test --release --test validation -- --nocapture`

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use common::{assert_close, small_set};
use wgmlp::gpu::{Form, FusedTrainer, Tier};
use wgmlp::{
    Activation, CpuTrainer, DEFAULT_SEED, Dataset, Engine, Gpu, GpuTrainer, Loss, Network,
    Optimizer, Start, TrainConfig, Trainer,
};

/// Where wgpu-hal's Vulkan debug callback logs from (`log`'s default target, the module path), where a
/// caller turns `InstanceFlags::DEBUG` on without the layer.
const CALLBACK_TARGET: &str = "wgpu_hal::vulkan::instance";

/// What the layer says as it starts (an INFO message, in every release since 2020): the proof it is on.
const LAYER_ACTIVE: &str = "Khronos Validation Layer Active";

/// How the layer marks a message that is news about itself (its start-up, its own cache file on a fresh
/// machine), not about the program: every other severity (errors, warnings, performance notes) fails.
const INFO: &str = "(INFO / ";

/// What wgpu-hal logs (at `Debug`) where validation is asked for and the layer is not installed.
const LAYER_MISSING: &str = "unable to find layer";

struct Entry {
    level: log::Level,
    target: String,
    message: String,
}

impl Entry {
    /// An error from anywhere in wgpu, or a warning or an error that reached wgpu-hal's debug callback.
    fn is_problem(&self) -> bool {
        let wgpu = self.target.starts_with("wgpu") || self.target.starts_with("naga");
        (wgpu && self.level == log::Level::Error)
            || (self.target == CALLBACK_TARGET && self.level <= log::Level::Warn)
    }
}

impl std::fmt::Display for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{} {}] {}", self.level, self.target, self.message)
    }
}

static ENTRIES: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

/// Records what wgpu and naga log from `Warn` up, and wgpu-hal from `Debug` up (where it says whether it
/// found the layer).
struct Recorder;

impl log::Log for Recorder {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        let target = metadata.target();
        match target.starts_with("wgpu_hal") {
            true => metadata.level() <= log::Level::Debug,
            // naga alone says some 30000 things at `Debug` here.
            false => {
                metadata.level() <= log::Level::Warn
                    && (target.starts_with("wgpu") || target.starts_with("naga"))
            }
        }
    }

    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            ENTRIES
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(Entry {
                    level: record.level(),
                    target: record.target().to_string(),
                    message: record.args().to_string(),
                });
        }
    }

    fn flush(&self) {}
}

static RECORDER: Recorder = Recorder;

#[test]
fn gpu_work_raises_no_validation_message() {
    log::set_logger(&RECORDER).expect("the only logger in this binary");
    log::set_max_level(log::LevelFilter::Debug);
    // As wgpu decides it: a debug build asks for the layer even without WGPU_VALIDATION.
    let requested =
        wgpu::InstanceFlags::from_env_or_default().contains(wgpu::InstanceFlags::VALIDATION);
    let layer_log = requested.then(layer_to_file);
    let started = Instant::now();
    let gpu = pollster::block_on(Gpu::new()).expect("an adapter");
    let adapter = gpu.adapter().clone();
    eprintln!("validation run on {adapter} (validation layer requested: {requested})");

    let outcome = catch_unwind(AssertUnwindSafe(|| work(&gpu)));
    // The layer closes its file with the instance.
    drop(gpu);
    let elapsed = started.elapsed().as_secs_f32();
    let entries = std::mem::take(&mut *ENTRIES.lock().unwrap_or_else(PoisonError::into_inner));
    let layer = layer_log.as_deref().map_or_else(Vec::new, layer_messages);
    let problems: Vec<String> = entries
        .iter()
        .filter(|e| e.is_problem())
        .map(Entry::to_string)
        .chain(layer.iter().filter(|m| !m.contains(INFO)).cloned())
        .collect();
    eprintln!(
        "{elapsed:.2} s; the layer wrote {} messages, wgpu logged {} things; {} problems",
        layer.len(),
        entries.len(),
        problems.len()
    );
    for problem in &problems {
        eprintln!("{problem}");
    }
    if let Err(panic) = outcome {
        resume_unwind(panic);
    }
    assert!(
        problems.is_empty(),
        "{} messages from the validation layer or errors from wgpu (printed above)",
        problems.len()
    );
    if requested {
        check_layer_active(&adapter.backend, &layer, &entries);
    }
}

/// Points the layer's own reporting (every severity) at a file in a scratch folder, and keeps wgpu from
/// registering its debug callback, which would take the messages from there (see the module's docs).
/// Returns the file.
fn layer_to_file() -> PathBuf {
    let dir = common::scratch("validation");
    let file = dir.join("layer.txt");
    let settings = format!(
        "khronos_validation.debug_action = VK_DBG_LAYER_ACTION_LOG_MSG\n\
         khronos_validation.report_flags = error,warn,perf,info\n\
         khronos_validation.log_filename = {}\n",
        file.display()
    );
    std::fs::write(dir.join("vk_layer_settings.txt"), settings).unwrap();
    // SAFETY: this binary's one test, before wgpu starts; no other thread reads the environment.
    unsafe {
        std::env::set_var("VK_LAYER_SETTINGS_PATH", &dir);
        std::env::set_var("WGPU_DEBUG", "0");
    }
    file
}

/// The messages in the layer's file: each starts on a line of its own, and its further lines are indented
/// or blank. No file: the layer never started.
fn layer_messages(file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let mut messages: Vec<String> = Vec::new();
    for line in text.lines() {
        match messages.last_mut() {
            Some(message) if line.is_empty() || line.starts_with(char::is_whitespace) => {
                message.push('\n');
                message.push_str(line);
            }
            _ => messages.push(line.to_string()),
        }
    }
    messages.iter().map(|m| m.trim_end().to_string()).collect()
}

/// Proves that the layer watched: its status message is in its file. A missing layer fails in CI (`CI`
/// set), and elsewhere says so loudly.
fn check_layer_active(backend: &str, layer: &[String], entries: &[Entry]) {
    if let Some(active) = layer.iter().find(|m| m.contains(LAYER_ACTIVE)) {
        eprintln!("{active}");
        return;
    }
    let missing = entries.iter().find(|e| e.message.contains(LAYER_MISSING));
    let reason = match (backend, missing) {
        ("Vulkan", Some(missing)) => format!("wgpu did not find it: {}", missing.message),
        ("Vulkan", None) => format!("the layer never said {LAYER_ACTIVE:?}"),
        (backend, _) => format!("the adapter is not a Vulkan one but {backend}"),
    };
    assert!(
        std::env::var_os("CI").is_none(),
        "WGPU_VALIDATION asks for the Khronos validation layer, but {reason}; install it (Debian: \
         vulkan-validationlayers) and run on Vulkan"
    );
    eprintln!(
        "NOT VALIDATED: WGPU_VALIDATION is set, but {reason}; the work ran without the layer"
    );
}

/// Representative work through the public API: every engine and the fused engine's tiers and code forms,
/// each trained and read back (metrics, evaluation, parameters), the results held against the CPU so that
/// the work is known to have run.
fn work(gpu: &Gpu) {
    let xor = Network::new(vec![2, 3, 1]).unwrap();
    let data = Dataset::xor();
    let config = TrainConfig::sgd(0.1);
    let params = xor.init_params(DEFAULT_SEED);
    let cpu_after = |network: &Network, params: &[f32], data: &Dataset, config, epochs| {
        let mut cpu = CpuTrainer::<f32>::new(network, params, data, config).unwrap();
        cpu.train(epochs);
        (cpu.outputs(), cpu.params().to_vec())
    };

    // The fused engine in the tier it picks, the tutorial's 10000 epochs.
    let starts = [Start {
        params: params.clone(),
        config,
    }];
    let mut fused = pollster::block_on(FusedTrainer::new(gpu, &xor, &starts, &data)).unwrap();
    fused.train(10_000).unwrap();
    let (outputs, cpu_params) = cpu_after(&xor, &params, &data, config, 10_000);
    check_fused(&fused, "fused XOR", (&outputs, &cpu_params));

    // The layered engine: XOR, and a mini-batch Adam classifier through the other kernels.
    let mut layered =
        pollster::block_on(GpuTrainer::new(gpu, &xor, &params, &data, config)).unwrap();
    layered.train(300).unwrap();
    let (outputs, cpu_params) = cpu_after(&xor, &params, &data, config, 300);
    pollster::block_on(layered.metrics()).unwrap();
    let evaluation = pollster::block_on(layered.evaluate()).unwrap();
    close("layered XOR: outputs", &evaluation.outputs, &outputs);
    let got = pollster::block_on(layered.params()).unwrap();
    close("layered XOR: parameters", &got, &cpu_params);
    let classifier = Network::build(
        vec![3, 8, 1],
        Activation::Relu,
        Activation::Sigmoid,
        Loss::Bce,
    )
    .unwrap();
    let set = small_set(Loss::Bce, 1);
    let adam = TrainConfig {
        optimizer: Optimizer::Adam { weight_decay: 0.1 },
        batch_size: Some(5),
        shuffle_seed: 3,
        ..TrainConfig::sgd(0.01)
    };
    let params = classifier.init_params(DEFAULT_SEED);
    let mut layered =
        pollster::block_on(GpuTrainer::new(gpu, &classifier, &params, &set, adam)).unwrap();
    layered.train(20).unwrap();
    let (outputs, cpu_params) = cpu_after(&classifier, &params, &set, adam, 20);
    let evaluation = pollster::block_on(layered.evaluate()).unwrap();
    close("layered Adam: outputs", &evaluation.outputs, &outputs);
    let got = pollster::block_on(layered.params()).unwrap();
    close("layered Adam: parameters", &got, &cpu_params);
    pollster::block_on(layered.optimizer_state()).unwrap();

    // A small sweep: seeds and learning rates side by side in the fused engine.
    let starts: Vec<Start> = (0..8)
        .map(|seed| Start {
            params: xor.init_params(seed),
            config: TrainConfig::sgd(0.1 + 0.05 * seed as f32),
        })
        .collect();
    let mut sweep = Trainer::new(Some(gpu), Engine::Fused, &xor, &starts, &data).unwrap();
    sweep.train(2000).unwrap();
    let progress = sweep.progress().unwrap();
    assert_eq!(progress.len(), starts.len());
    let all = sweep.all_params().unwrap();
    for (run, start) in starts.iter().enumerate() {
        let (outputs, cpu_params) = cpu_after(&xor, &start.params, &data, start.config, 2000);
        let evaluation = sweep.evaluate(run).unwrap();
        close(
            &format!("sweep run {run}: outputs"),
            &evaluation.outputs,
            &outputs,
        );
        close(
            &format!("sweep run {run}: parameters"),
            &all[run],
            &cpu_params,
        );
    }

    // The rows tier and the workgroup tier, each in both code forms, with shuffled mini-batches.
    let batches = TrainConfig {
        batch_size: Some(3),
        shuffle_seed: 7,
        ..TrainConfig::sgd(0.1)
    };
    let rows = gpu
        .rows_tier_refused()
        .is_none()
        .then_some(Tier::Rows { threads: 4 });
    for tier in rows.into_iter().chain([Tier::Workgroup { threads: 32 }]) {
        for form in [Form::Unrolled, Form::Looped] {
            for config in [config, batches] {
                let what = format!("fused {tier:?} {form:?}, batches {:?}", config.batch_size);
                let params = xor.init_params(DEFAULT_SEED);
                let starts = [Start {
                    params: params.clone(),
                    config,
                }];
                let mut fused = pollster::block_on(FusedTrainer::with_form(
                    gpu, &xor, &starts, &data, tier, form,
                ))
                .unwrap_or_else(|e| panic!("{what}: {e}"));
                fused.train(1000).unwrap();
                let (outputs, cpu_params) = cpu_after(&xor, &params, &data, config, 1000);
                check_fused(&fused, &what, (&outputs, &cpu_params));
            }
        }
    }

    gpu.check_device()
        .expect("no error outside the error scopes");
}

/// The layered engine's tolerance against the CPU (tests/training.rs), which every engine here meets.
fn close(what: &str, gpu: &[f32], cpu: &[f32]) {
    assert_close(what, gpu, cpu, 1e-4, 1e-3);
}

/// Reads run 0 of `fused` back every way (metrics, evaluation, parameters, optimizer state) and holds it
/// against the CPU's outputs and parameters.
fn check_fused(fused: &FusedTrainer, what: &str, (outputs, params): (&[f32], &[f32])) {
    let metrics = pollster::block_on(fused.metrics()).unwrap();
    assert!(
        metrics[0].loss.is_finite(),
        "{what}: loss {}",
        metrics[0].loss
    );
    let evaluation = pollster::block_on(fused.evaluate(0)).unwrap();
    close(&format!("{what}: outputs"), &evaluation.outputs, outputs);
    let got = pollster::block_on(fused.params(0)).unwrap();
    close(&format!("{what}: parameters"), &got, params);
    pollster::block_on(fused.optimizer_state(0)).unwrap();
}
