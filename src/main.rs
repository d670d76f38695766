//! The command line: with no subcommand, trains the tutorial's XOR network on the GPU and on the CPU
//! reference from the same weights and compares them; `train` and `predict` work with any data; `bench`
//! prints throughput figures.

mod cli;

use std::process::ExitCode;
use std::time::Instant;

use anyhow::bail;
use clap::{Parser, Subcommand, ValueEnum};
use serde_json::json;
use wgmlp::bench::{self, max_abs_diff, millis};
use wgmlp::gpu::AdapterSummary;
use wgmlp::{DEFAULT_SEED, Dataset, Gpu, Network, TrainConfig, Trainer};

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

    /// Learning rate
    #[arg(long, default_value_t = 0.1, value_parser = parse_lr)]
    lr: f32,

    /// Layer sizes from input to output; XOR needs 2 inputs and 1 output
    #[arg(long, default_value = "2,3,1", value_parser = parse_layers)]
    layers: Network,

    /// Seed of the initial weights
    #[arg(long, default_value_t = DEFAULT_SEED)]
    seed: u64,

    /// Where to train
    #[arg(long, value_enum, default_value_t = Backend::Both)]
    backend: Backend,

    /// Print one JSON object instead of a table
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Train a network on a built-in dataset or a CSV file
    #[command(allow_negative_numbers = true)]
    Train(Box<cli::train::TrainArgs>),

    /// Predict with a saved model, one row of CSV output per input row
    Predict(cli::predict::PredictArgs),

    /// Measure XOR training epochs/s and matmul GFLOP/s on the GPU and the CPU
    Bench {
        /// Epochs of XOR training to time on each side
        #[arg(long, default_value_t = 10000, value_parser = clap::value_parser!(u64).range(1..))]
        epochs: u64,

        /// Sides of the square matrices to multiply
        #[arg(long, default_value = "256,1024", value_delimiter = ',', value_parser = clap::value_parser!(u64).range(1..))]
        sizes: Vec<u64>,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Backend {
    Gpu,
    Cpu,
    Both,
}

fn parse_lr(text: &str) -> Result<f32, String> {
    let lr: f32 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    TrainConfig::sgd(lr).check().map_err(|e| e.to_string())?;
    Ok(lr)
}

fn parse_layers(text: &str) -> Result<Network, String> {
    Network::parse(text).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Bench { epochs, ref sizes }) => {
            let sizes: Vec<usize> = sizes.iter().map(|&s| s as usize).collect();
            run_bench(epochs as usize, &sizes, cli.json)
        }
        Some(Command::Train(ref args)) => cli::train::run(args, cli.json),
        Some(Command::Predict(ref args)) => cli::predict::run(args),
        None => run_xor(&cli),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// One side's result.
struct Run {
    outputs: Vec<f32>,
    loss: f64,
    setup_ms: f64,
    train_ms: f64,
}

fn run_xor(cli: &Cli) -> anyhow::Result<()> {
    let data = Dataset::xor();
    let network = &cli.layers;
    if network.inputs() != 2 || network.outputs() != 1 {
        bail!(
            "--layers {network} does not fit XOR: the first size must be 2 (two inputs) and the last 1 (one output)"
        );
    }
    let epochs = cli.epochs as usize;
    let config = TrainConfig::sgd(cli.lr);
    // The device first, so that a network too large for it fails before its weights are drawn.
    let opened = Instant::now();
    let gpu = match cli.backend {
        Backend::Cpu => None,
        _ => Some(pollster::block_on(Gpu::new())?),
    };
    Trainer::check_size(gpu.as_ref(), network, data.rows, &config)
        .map_err(cli::layers_error(network))?;
    let params = network.init_params(cli.seed);

    // Setup: opening the device and compiling the kernels (GPU), then laying out and uploading the network.
    let run_on = |gpu: Option<&Gpu>, opened: Instant| -> anyhow::Result<Run> {
        let mut trainer = Trainer::new(gpu, network, &params, &data, config)
            .map_err(cli::layers_error(network))?;
        let setup_ms = millis(opened.elapsed());
        let start = Instant::now();
        trainer.train(epochs)?;
        let train_ms = millis(start.elapsed());
        let result = trainer.evaluate()?;
        Ok(Run {
            outputs: result.outputs,
            loss: result.loss,
            setup_ms,
            train_ms,
        })
    };
    let gpu_run = gpu
        .as_ref()
        .map(|gpu| run_on(Some(gpu), opened))
        .transpose()?;
    let adapter = gpu.as_ref().map(|gpu| gpu.adapter().clone());
    let cpu_run = match cli.backend {
        Backend::Gpu => None,
        _ => Some(run_on(None, Instant::now())?),
    };

    let max_abs_diff = match (&gpu_run, &cpu_run) {
        (Some(g), Some(c)) => Some(max_abs_diff(&g.outputs, &c.outputs)),
        _ => None,
    };

    if cli.json {
        let report = json!({
            "adapter": adapter,
            "layers": network.sizes(),
            "epochs": epochs,
            // Through its decimal text, so that 0.1 reads as 0.1 and not as the f32 nearest to it.
            "lr": cli.lr.to_string().parse::<f64>()?,
            "seed": cli.seed,
            "gpu_outputs": gpu_run.as_ref().map(|r| &r.outputs),
            "cpu_outputs": cpu_run.as_ref().map(|r| &r.outputs),
            "max_abs_diff": max_abs_diff,
            "gpu_loss": gpu_run.as_ref().map(|r| r.loss),
            "cpu_loss": cpu_run.as_ref().map(|r| r.loss),
            "gpu_setup_ms": gpu_run.as_ref().map(|r| r.setup_ms),
            "gpu_train_ms": gpu_run.as_ref().map(|r| r.train_ms),
            "cpu_setup_ms": cpu_run.as_ref().map(|r| r.setup_ms),
            "cpu_train_ms": cpu_run.as_ref().map(|r| r.train_ms),
        });
        println!("{report:#}");
        return Ok(());
    }

    print_table(
        cli,
        &data,
        adapter.as_ref(),
        gpu_run.as_ref(),
        cpu_run.as_ref(),
        max_abs_diff,
    );
    Ok(())
}

fn print_table(
    cli: &Cli,
    data: &Dataset,
    adapter: Option<&AdapterSummary>,
    gpu: Option<&Run>,
    cpu: Option<&Run>,
    max_abs_diff: Option<f32>,
) {
    match adapter {
        Some(adapter) => println!("adapter: {adapter}"),
        None => println!("adapter: none (--backend cpu)"),
    }
    println!(
        "network {} · sigmoid · lr {} · {} epochs · seed {}\n",
        cli.layers, cli.lr, cli.epochs, cli.seed
    );
    let cell = |run: Option<&Run>, row: usize| {
        run.map_or("-".to_string(), |r| format!("{:.6}", r.outputs[row]))
    };
    println!("input   target   GPU output   CPU output");
    for row in 0..data.rows {
        let x = &data.inputs[row * 2..row * 2 + 2];
        println!(
            "{} {}     {}        {:<12} {}",
            x[0],
            x[1],
            data.targets[row],
            cell(gpu, row),
            cell(cpu, row)
        );
    }
    println!();
    if let Some(diff) = max_abs_diff {
        println!("max |GPU − CPU|: {diff:.3e}");
    }
    for (name, run) in [("GPU", gpu), ("CPU", cpu)] {
        if let Some(run) = run {
            println!(
                "{name}: loss ½·Σ(y − o)² = {:.6}, training {:.1} ms (setup {:.1} ms apart)",
                run.loss, run.train_ms, run.setup_ms
            );
        }
    }
}

fn run_bench(epochs: usize, sizes: &[usize], json: bool) -> anyhow::Result<()> {
    let gpu = pollster::block_on(Gpu::new())?;
    let report = pollster::block_on(bench::run(&gpu, epochs, sizes))?;
    if json {
        println!("{:#}", serde_json::to_value(&report)?);
        return Ok(());
    }
    println!("adapter: {}", report.adapter);
    let xor = &report.xor;
    println!(
        "XOR 2-3-1, {} epochs: GPU {:.0} epochs/s (setup {:.1} ms apart), CPU {:.0} epochs/s",
        xor.epochs, xor.gpu_epochs_per_s, xor.gpu_setup_ms, xor.cpu_epochs_per_s
    );
    for m in &report.matmul {
        println!(
            "matmul {0}×{0} f32: GPU {1:.2} GFLOP/s, CPU {2:.2} GFLOP/s (max |GPU − CPU| {3:.1e})",
            m.size, m.gpu_gflops, m.cpu_gflops, m.max_abs_diff
        );
    }
    Ok(())
}
