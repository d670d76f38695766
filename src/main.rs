//! The command line: with no subcommand, trains the tutorial's XOR network on the GPU and on the CPU
//! reference from the same weights and compares them; `train` and `predict` work with any data; `bench`
//! prints throughput figures; `adapters` lists the GPUs wgpu finds.

/// `println!` that hands a failed write (a closed pipe, a full disk) back as an error instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*).map_err($crate::cli::stdout_failed)
    }};
}

mod cli;

use cli::sweep::{self, Outcome};

use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::bail;
use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use serde_json::json;
use wgmlp::bench::{self, BenchPlan, max_abs_diff, millis};
use wgmlp::engine::Chosen;
use wgmlp::train::{divergence, saturation};
use wgmlp::{DEFAULT_SEED, Dataset, Engine, Gpu, Network, Start, TrainConfig, Trainer};

/// The most runs one command trains side by side.
const MAX_RUNS: u64 = 1 << 22;

#[derive(Parser)]
#[command(
    version,
    allow_negative_numbers = true,
    about = "Train a small MLP on the GPU with WGSL compute shaders, checked against a CPU reference"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// Training epochs (full-batch steps)
    #[arg(long, default_value_t = 10000, value_parser = clap::value_parser!(u64).range(1..))]
    epochs: u64,

    /// Learning rate; a list such as 0.05,0.1,0.5 trains --runs runs at each
    #[arg(long, default_value = "0.1", value_delimiter = ',', value_parser = cli::parse_lr)]
    lr: Vec<f32>,

    /// Networks to train side by side, with seeds seed, seed+1, ... (a sweep reports how many converge)
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=MAX_RUNS))]
    runs: u64,

    /// GPU engine: fused (a whole network's training in one dispatch), layered (a dispatch per op), or auto
    #[arg(long, default_value_t = Engine::Auto)]
    engine: Engine,

    /// Layer sizes from input to output; XOR needs 2 inputs and 1 output
    #[arg(long, default_value = "2,3,1", value_parser = parse_layers)]
    layers: Network,

    /// Seed of the initial weights
    #[arg(long, default_value_t = DEFAULT_SEED)]
    seed: u64,

    /// Where to train
    #[arg(long, value_enum, default_value_t = Backend::Both)]
    backend: Backend,

    #[command(flatten)]
    device: cli::AdapterChoice,

    /// Print the results as JSON instead of text
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Train a network on a built-in dataset or a CSV file
    #[command(allow_negative_numbers = true)]
    Train(Box<cli::train::TrainArgs>),

    /// Predict with a saved model, one row of CSV output per input row (with --json, a JSON object per row)
    Predict(cli::predict::PredictArgs),

    /// List the GPU adapters wgpu finds, marking the one that the demo, train and bench would open
    Adapters(cli::AdapterChoice),
    /// Serve a local web page that trains small networks live: decision regions, loss curves, sweeps
    Playground(cli::playground::PlaygroundArgs),

    /// Score a saved model on a CSV file with the target column: loss and accuracy with a confusion matrix,
    /// or loss, RMSE and R² for regression
    Evaluate(cli::evaluate::EvaluateArgs),

    /// Measure XOR training on each engine, sweeps, moons, an MLP step, predict and matmul GFLOP/s on the GPU
    /// and the CPU
    Bench {
        /// Epochs of XOR training to time on each engine and in each sweep
        #[arg(long, default_value_t = 10000, value_parser = clap::value_parser!(u64).range(1..))]
        epochs: u64,

        /// Sizes of the XOR sweeps the fused engine trains side by side
        #[arg(long, default_value = "1,1024,65536", value_delimiter = ',', value_parser = clap::value_parser!(u64).range(1..=MAX_RUNS))]
        sweeps: Vec<u64>,

        /// Epochs of each network whose compile and training times are measured on each engine (XOR,
        /// moons' 2-16-16-1, spirals' 2-24-24-3, a 2-64-64-1)
        #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
        moons_epochs: u64,

        /// Epochs of the MLP (784-256-256-10, relu, softmax-ce, Adam, batch 256) on its 1024 rows
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1000))]
        mlp_epochs: u64,

        /// Rows that predict runs a 2-16-16-1 network on, on the CPU
        #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
        predict_rows: u64,

        /// Sides of the square matrices to multiply
        #[arg(long, default_value = "256,1024", value_delimiter = ',', value_parser = clap::value_parser!(u64).range(1..))]
        sizes: Vec<u64>,

        #[command(flatten)]
        device: cli::AdapterChoice,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Backend {
    Gpu,
    Cpu,
    Both,
}

fn parse_layers(text: &str) -> Result<Network, String> {
    Network::parse(text).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let cli = parse_command_line();
    let result = match cli.command {
        Some(Command::Bench {
            epochs,
            ref sweeps,
            moons_epochs,
            mlp_epochs,
            predict_rows,
            sizes: ref matmul_sizes,
            ref device,
        }) => {
            let sizes = |list: &[u64]| list.iter().map(|&s| s as usize).collect();
            let plan = BenchPlan {
                xor_epochs: epochs as usize,
                sweeps: sizes(sweeps),
                moons_epochs: moons_epochs as usize,
                mlp_epochs: mlp_epochs as usize,
                predict_rows: predict_rows as usize,
                matmul_sizes: sizes(matmul_sizes),
            };
            run_bench(&plan, device, cli.json)
        }
        Some(Command::Train(ref args)) => cli::train::run(args, cli.json),
        Some(Command::Predict(ref args)) => cli::predict::run(args, cli.json),
        Some(Command::Adapters(ref device)) => list_adapters(device, cli.json),
        Some(Command::Evaluate(ref args)) => cli::evaluate::run(args, cli.json),
        Some(Command::Playground(ref args)) => cli::playground::run(args),
        None => run_xor(&cli),
    };
    // Lines are flushed as they are written; this catches what a caller wrote without a line end.
    let result = result.and_then(|()| std::io::stdout().flush().map_err(cli::stdout_failed));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader has gone (`wgmlp … | head`): it wanted no more, so stop quietly, as other tools do.
        Err(error) if closed_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Whether `error` comes from writing to a pipe whose reader has closed it.
fn closed_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The command line, refusing the demo's own options before a subcommand: they would be dropped without a
/// word (`wgmlp --epochs 5 train` would train `train`'s default epochs).
fn parse_command_line() -> Cli {
    let mut command = Cli::command();
    let matches = command.get_matches_mut();
    if let Some((subcommand, _)) = matches.subcommand() {
        let typed = command.get_arguments().find(|arg| {
            !arg.is_global_set()
                && matches.value_source(arg.get_id().as_str()) == Some(ValueSource::CommandLine)
        });
        if let Some(arg) = typed {
            let name = arg.get_long().unwrap_or(arg.get_id().as_str());
            // Moving it after the subcommand helps only where the subcommand has an option of that name.
            let takes_it = (command.find_subcommand(subcommand))
                .is_some_and(|sub| sub.get_arguments().any(|a| a.get_long() == Some(name)));
            let advice = match takes_it {
                true => format!("which `{subcommand}` does not read; put it after `{subcommand}`"),
                false => format!("and `{subcommand}` has no --{name}; leave it out"),
            };
            let message =
                format!("--{name} before `{subcommand}` is an option of the XOR demo, {advice}");
            command.error(ErrorKind::ArgumentConflict, message).exit();
        }
    }
    Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit())
}

/// Stops a single run that diverged on either side: a loss grown by orders of magnitude, or every output
/// pinned at 0 or 1 with no loss gained (a NaN shows as such in the table).
fn check_diverged(
    network: &Network,
    start: &Start,
    data: &Dataset,
    epochs: u64,
    sides: [&Option<Side>; 2],
) -> anyhow::Result<()> {
    let start_loss = wgmlp::cpu::evaluate(network, &start.params, data)?.loss;
    for side in sides.into_iter().flatten() {
        let what = divergence(start_loss, side.loss)
            .or_else(|| saturation(network, start_loss, side.loss, &side.outputs));
        if let Some(what) = what {
            return Err(wgmlp::Error::Diverged {
                epoch: epochs,
                what,
                lr: start.config.lr,
            }
            .into());
        }
    }
    Ok(())
}

/// One side's result: every run's outcome, run 0's outputs, and the times.
struct Side {
    engine: Chosen,
    outcomes: Vec<Outcome>,
    outputs: Vec<f32>,
    loss: f64,
    setup_ms: f64,
    train_ms: f64,
}

impl Side {
    /// "GPU (fused engine)", or "CPU".
    fn label(&self, name: &str) -> String {
        match self.engine {
            Chosen::Cpu => name.to_string(),
            engine => format!("{name} ({} engine)", engine.name()),
        }
    }
}

fn run_xor(cli: &Cli) -> anyhow::Result<()> {
    let data = Dataset::xor();
    let network = &cli.layers;
    if network.inputs() != 2 || network.outputs() != 1 {
        bail!(
            "--layers {network} does not fit XOR: the first size must be 2 (two inputs) and the last 1 (one output)"
        );
    }
    if cli.backend == Backend::Cpu && cli.engine != Engine::Auto {
        bail!(
            "--engine {} runs on the GPU; leave it out with --backend cpu",
            cli.engine
        );
    }
    if cli.backend == Backend::Cpu && cli.device.adapter.is_some() {
        bail!("--adapter chooses a GPU; leave it out with --backend cpu");
    }
    let epochs = cli.epochs as usize;
    let runs = cli.runs as usize;
    let sweep = runs > 1 || cli.lr.len() > 1;
    let config = TrainConfig::sgd(cli.lr[0]);
    // The device first, so that a network too large for it fails before its weights are drawn.
    let opened = Instant::now();
    let gpu = match cli.backend {
        Backend::Cpu => None,
        _ => Some(cli.device.open()?),
    };
    let all_runs = runs * cli.lr.len();
    Trainer::choose(
        gpu.as_ref(),
        cli.engine,
        network,
        data.rows,
        &config,
        all_runs,
    )
    .map_err(cli::layers_error(network))?;
    let starts = sweep::starts(network, None, config, cli.seed, &cli.lr, runs);

    // Setup: opening the device and compiling the kernels a run uses (GPU), then laying out and uploading the
    // network.
    let run_on = |gpu: Option<&Gpu>,
                  starts: &[(u64, Start)],
                  opened: Instant|
     -> anyhow::Result<Side> {
        let (seeds, starts): (Vec<u64>, Vec<Start>) = starts.iter().cloned().unzip();
        let engine = if gpu.is_some() {
            cli.engine
        } else {
            Engine::Auto
        };
        let mut trainer = Trainer::new(gpu, engine, network, &starts, &data)
            .map_err(cli::layers_error(network))?;
        let setup_ms = millis(opened.elapsed());
        let start = Instant::now();
        trainer.train(epochs)?;
        let train_ms = millis(start.elapsed());
        let outcomes = trainer
            .progress()?
            .iter()
            .zip(seeds.iter().zip(&starts))
            .map(|(progress, (&seed, start))| Outcome::new(seed, start.config.lr, progress, true))
            .collect();
        let first = trainer.evaluate(0)?;
        Ok(Side {
            engine: trainer.engine(),
            outcomes,
            outputs: first.outputs,
            loss: first.loss,
            setup_ms,
            train_ms,
        })
    };
    let gpu_side = gpu
        .as_ref()
        .map(|gpu| run_on(Some(gpu), &starts, opened))
        .transpose()?;
    let adapter = gpu.as_ref().map(|gpu| gpu.adapter().clone());
    // Beside a GPU sweep the CPU trains run 0 alone, as the check that both compute the same numbers.
    let cpu_side = match cli.backend {
        Backend::Gpu => None,
        Backend::Cpu => Some(run_on(None, &starts, Instant::now())?),
        Backend::Both => Some(run_on(None, &starts[..1], Instant::now())?),
    };
    if !sweep {
        check_diverged(
            network,
            &starts[0].1,
            &data,
            cli.epochs,
            [&gpu_side, &cpu_side],
        )?;
    }

    let max_abs_diff = match (&gpu_side, &cpu_side) {
        (Some(g), Some(c)) => Some(max_abs_diff(&g.outputs, &c.outputs)),
        _ => None,
    };

    if cli.json {
        let side = |side: &Option<Side>, f: fn(&Side) -> serde_json::Value| side.as_ref().map(f);
        let sweep_side = gpu_side.as_ref().or(cpu_side.as_ref());
        let report = json!({
            "adapter": adapter,
            "engine": sweep_side.map(|s| s.engine.name()),
            "layers": network.sizes(),
            "epochs": epochs,
            "lr": cli.lr.iter().map(|&lr| sweep::decimal(lr)).collect::<Vec<_>>(),
            "seed": cli.seed,
            "gpu_outputs": side(&gpu_side, |s| json!(s.outputs)),
            "cpu_outputs": side(&cpu_side, |s| json!(s.outputs)),
            "max_abs_diff": max_abs_diff,
            "gpu_loss": side(&gpu_side, |s| json!(s.loss)),
            "cpu_loss": side(&cpu_side, |s| json!(s.loss)),
            "gpu_setup_ms": side(&gpu_side, |s| json!(s.setup_ms)),
            "gpu_train_ms": side(&gpu_side, |s| json!(s.train_ms)),
            "cpu_setup_ms": side(&cpu_side, |s| json!(s.setup_ms)),
            "cpu_train_ms": side(&cpu_side, |s| json!(s.train_ms)),
            "runs": sweep_side.map(|s| &s.outcomes),
        });
        say!("{report:#}")?;
        return Ok(());
    }

    match adapter.as_ref() {
        Some(adapter) => say!("adapter: {adapter}")?,
        None => say!("adapter: none (--backend cpu)")?,
    }
    let lrs: Vec<String> = cli.lr.iter().map(f32::to_string).collect();
    say!(
        "network {network} · sigmoid · lr {} · {epochs} epochs · seed {}{}\n",
        lrs.join(","),
        cli.seed,
        if sweep {
            format!(
                " · {runs} run(s) per rate, seeds {}..={}",
                cli.seed,
                cli.seed.wrapping_add(cli.runs - 1)
            )
        } else {
            String::new()
        }
    )?;
    if sweep {
        print_sweep(gpu_side.as_ref(), cpu_side.as_ref(), max_abs_diff)
    } else {
        print_table(&data, gpu_side.as_ref(), cpu_side.as_ref(), max_abs_diff)
    }
}

fn print_table(
    data: &Dataset,
    gpu: Option<&Side>,
    cpu: Option<&Side>,
    max_abs_diff: Option<f32>,
) -> anyhow::Result<()> {
    let cell = |side: Option<&Side>, row: usize| {
        side.map_or("-".to_string(), |s| format!("{:.6}", s.outputs[row]))
    };
    say!("input   target   GPU output   CPU output")?;
    for row in 0..data.rows {
        let x = &data.inputs[row * 2..row * 2 + 2];
        say!(
            "{} {}     {}        {:<12} {}",
            x[0],
            x[1],
            data.targets[row],
            cell(gpu, row),
            cell(cpu, row)
        )?;
    }
    say!()?;
    if let Some(diff) = max_abs_diff {
        say!("max |GPU − CPU|: {diff:.3e}")?;
    }
    for (name, side) in [("GPU", gpu), ("CPU", cpu)] {
        if let Some(side) = side {
            say!(
                "{}: loss ½·Σ(y − o)² = {:.6}, training {:.1} ms (setup {:.1} ms apart)",
                side.label(name),
                side.loss,
                side.train_ms,
                side.setup_ms
            )?;
        }
    }
    Ok(())
}

fn print_sweep(
    gpu: Option<&Side>,
    cpu: Option<&Side>,
    max_abs_diff: Option<f32>,
) -> anyhow::Result<()> {
    for (name, side) in [("GPU", gpu), ("CPU", cpu)] {
        let Some(side) = side else { continue };
        say!(
            "{}: {} run(s) in {:.1} ms (setup {:.1} ms apart)",
            side.label(name),
            side.outcomes.len(),
            side.train_ms,
            side.setup_ms
        )?;
        if gpu.is_none() || name == "GPU" {
            for line in sweep::summary(&side.outcomes) {
                say!("  {line}")?;
            }
        }
    }
    if let Some(diff) = max_abs_diff {
        say!("run 0 on both sides: max |GPU − CPU| of the outputs {diff:.3e}")?;
    }
    Ok(())
}

/// Every adapter wgpu finds, one a line, with a star on the one that `--adapter` (or the environment)
/// chooses.
fn list_adapters(device: &cli::AdapterChoice, json: bool) -> anyhow::Result<()> {
    let found = pollster::block_on(wgmlp::gpu::adapters(device.adapter.as_deref()))?;
    if json {
        say!("{:#}", json!({ "adapters": found }))?;
        return Ok(());
    }
    for found in &found {
        say!("{} {}", if found.chosen { "*" } else { " " }, found.adapter)?;
    }
    say!(
        "* the adapter the demo, train and bench open (--adapter, WGPU_ADAPTER_NAME, WGPU_BACKEND and WGPU_POWER_PREF choose it)"
    )
}

fn run_bench(plan: &BenchPlan, device: &cli::AdapterChoice, json: bool) -> anyhow::Result<()> {
    let gpu = device.open()?;
    let report = pollster::block_on(bench::run(&gpu, plan))?;
    if json {
        say!("{:#}", serde_json::to_value(&report)?)?;
        return Ok(());
    }
    say!("adapter: {}", report.adapter)?;
    let xor = &report.xor;
    say!(
        "XOR 2-3-1, {} epochs (best of {} runs, layered 1): fused {:.1} ms ({:.0} epochs/s, setup {:.1} ms apart), layered {:.1} ms ({:.0} epochs/s, {} dispatches an epoch), CPU {:.1} ms ({:.0} epochs/s; reference {:.1} ms)",
        xor.epochs,
        wgmlp::bench::XOR_RUNS,
        xor.fused_train_ms,
        xor.fused_epochs_per_s,
        xor.fused_setup_ms,
        xor.layered_train_ms,
        xor.layered_epochs_per_s,
        xor.layered_dispatches_per_epoch,
        xor.cpu_train_ms,
        xor.cpu_epochs_per_s,
        xor.cpu_reference_train_ms
    )?;
    for sweep in &report.sweeps {
        say!(
            "XOR sweep, {} networks × {} epochs: {:.1} ms, {:.3e} network-epochs/s, {:.1}% converged",
            sweep.networks,
            sweep.epochs,
            sweep.train_ms,
            sweep.network_epochs_per_s,
            100.0 * sweep.converged
        )?;
    }
    for n in &report.networks {
        let fused = match (&n.fused, n.fused_compile_ms, n.fused_train_ms) {
            (Ok(variant), Some(compile), Some(train)) => format!(
                "fused ({variant}) compile {compile:.0} ms, train {train:.1} ms{}",
                n.fused_accuracy
                    .map(|a| format!(" (accuracy {:.1}%)", 100.0 * a))
                    .unwrap_or_default()
            ),
            (Err(reason), ..) => format!("fused: not taken ({reason})"),
            _ => "fused: no figures".into(),
        };
        say!(
            "{} ({}), {} rows, {} epochs: {fused}; layered setup {:.0} ms, train {:.1} ms; CPU {:.1} ms",
            n.network,
            n.optimizer,
            n.rows,
            n.epochs,
            n.layered_setup_ms,
            n.layered_train_ms,
            n.cpu_train_ms
        )?;
    }
    let mlp = &report.mlp;
    say!(
        "MLP 784-256-256-10 (relu, softmax-ce, adam, batch {}): GPU layered {:.0} samples/s ({:.0} dispatches a step), CPU {:.0} samples/s, CPU reference {:.0} samples/s",
        mlp.batch,
        mlp.gpu_samples_per_s,
        mlp.gpu_dispatches_per_step,
        mlp.cpu_samples_per_s,
        mlp.cpu_reference_samples_per_s
    )?;
    let ops: Vec<String> = mlp
        .gpu_profile
        .iter()
        .map(|op| {
            let [rows, cols, inner] = op.shape;
            format!("{} {rows}×{cols}×{inner} {:.2}", op.kernel, op.ms)
        })
        .collect();
    say!(
        "  GPU step {:.2} ms; each dispatch alone (ms): {} (sum {:.2})",
        mlp.gpu_step_ms,
        ops.join(", "),
        mlp.gpu_profile.iter().map(|op| op.ms).sum::<f64>()
    )?;
    say!(
        "predict 2-16-16-1 on {} rows (CPU, forward only): {:.1} ms",
        report.predict.rows,
        report.predict.ms
    )?;
    for m in &report.matmul {
        say!(
            "matmul {0}×{0} f32: GPU {1:.2} GFLOP/s, CPU {2:.2} GFLOP/s, CPU reference {3:.2} GFLOP/s (max |GPU − CPU reference| {4:.1e})",
            m.size,
            m.gpu_gflops,
            m.cpu_fast_gflops,
            m.cpu_gflops,
            m.max_abs_diff
        )?;
        let versions: Vec<String> = m
            .gpu_versions
            .iter()
            .map(|v| format!("{} {:.2}", v.kernel, v.gflops))
            .collect();
        say!("  GPU versions (GFLOP/s): {}", versions.join(", "))?;
    }
    Ok(())
}
