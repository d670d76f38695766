//! `train`: a network on a built-in dataset or a CSV file, on the GPU or the CPU reference, with a summary,
//! an optional held-out part, and the model saved for `predict` or for more training.

use std::borrow::Borrow;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use wgmlp::bench::millis;
use wgmlp::cpu::Evaluation;
use wgmlp::data::{Builtin, FeatureColumns, Schema, Table, class_of, split};
use wgmlp::engine::Chosen;
use wgmlp::gpu::{FusedTrainer, Tier};
use wgmlp::metrics::Scores;
use wgmlp::model::{Checkpoint, Model};
use wgmlp::plot::{self, LossCurve, Points};
use wgmlp::train::{divergence, saturation};
use wgmlp::{
    Activation, DEFAULT_SEED, Dataset, Engine, Error, Gpu, Loss, Network, Optimizer, Progress,
    Schedule, Start, TrainConfig, Trainer,
};

use super::sweep::{self, Outcome};

#[derive(Args)]
pub struct TrainArgs {
    /// A built-in dataset (xor, moons, circles, spirals), or a table (CSV, TSV, ...) with a header row; -
    /// reads standard input
    #[arg(long)]
    dataset: String,

    #[command(flatten)]
    format: super::TableFormat,

    /// The CSV column to predict [default: the last]
    #[arg(long, value_parser = super::parse_column_name)]
    target: Option<String>,

    /// The feature columns, e.g. a,b,c [default: every column but the target]; a text column of at most 20
    /// distinct values, fewer than half the rows, is one-hot encoded
    #[arg(long, value_delimiter = ',', value_parser = super::parse_column_name, conflicts_with = "ignore")]
    features: Vec<String>,

    /// Columns to leave out of the features, e.g. id,notes (instead of --features)
    #[arg(long, value_delimiter = ',', value_parser = super::parse_column_name)]
    ignore: Vec<String>,

    /// Points to generate for moons, circles and spirals
    #[arg(long, default_value_t = 400)]
    samples: usize,

    /// Standard deviation of the noise added to generated points
    #[arg(long, default_value_t = 0.1, value_parser = super::parse_f32)]
    noise: f32,

    /// Arms of the spirals dataset
    #[arg(long, default_value_t = 3)]
    classes: usize,

    /// Write the dataset (generated or read) to this CSV file as well; - for standard output
    #[arg(long)]
    export: Option<PathBuf>,

    /// Epochs to train (with --init: more epochs on top of those already trained)
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    epochs: u64,

    /// Learning rate [default: 0.1 for sgd, 0.01 for adam, 0.003 for adam on a CSV regression]; a list such as
    /// 0.01,0.03,0.1 trains --runs runs at each
    #[arg(long, value_delimiter = ',', value_parser = super::parse_lr)]
    lr: Vec<f32>,

    /// Learning-rate schedule: constant; step:EPOCHS:FACTOR multiplies the rate by FACTOR (above 0, at most 1)
    /// every EPOCHS epochs; cosine anneals it along half a cosine to 0 where the run ends (cosine:EPOCHS: at
    /// epoch EPOCHS). Each run of a sweep follows it from its own --lr; --save keeps it and --init resumes it
    #[arg(long, value_name = "SCHEDULE", default_value = "constant")]
    lr_schedule: String,

    /// Networks to train side by side from seeds seed, seed+1, ...; reports how many converge, keeps the best
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=crate::MAX_RUNS))]
    runs: u64,

    /// GPU engine: fused (a whole network's training in one dispatch), layered (a dispatch per op), or auto
    /// (fused where the network fits)
    #[arg(long, default_value_t = Engine::Auto)]
    engine: Engine,

    /// Layer sizes from input to output [default: inputs,16,16,outputs; 2,3,1 for xor]
    #[arg(long)]
    layers: Option<String>,

    /// Hidden activation: sigmoid, tanh, relu, leaky_relu, identity [default: tanh; sigmoid for sse on a
    /// built-in dataset]
    #[arg(long)]
    activation: Option<Activation>,

    /// Output activation: sigmoid, softmax, identity [default: the one the loss needs; sigmoid for sse on a
    /// built-in dataset, identity for a CSV regression]
    #[arg(long)]
    output_activation: Option<Activation>,

    /// Loss: sse, mse, bce, ce [default: sse for xor, bce for moons and circles, ce for spirals; for a CSV,
    /// ce where the target holds text, not numbers with missing values, else mse]
    #[arg(long)]
    loss: Option<Loss>,

    /// Optimizer: sgd or adam [default: adam for a CSV regression, else sgd]
    #[arg(long)]
    optimizer: Option<String>,

    /// Momentum of sgd [default: 0]
    #[arg(long, value_parser = super::parse_f32)]
    momentum: Option<f32>,

    /// Decoupled weight decay of adam (AdamW) [default: 0]
    #[arg(long, value_parser = super::parse_f32)]
    weight_decay: Option<f32>,

    /// Rows per step [default: all of them]
    #[arg(long)]
    batch_size: Option<usize>,

    /// Seed of the data, the split, the initial weights and the batch order
    #[arg(long, default_value_t = DEFAULT_SEED)]
    seed: u64,

    /// Where to train: auto takes the GPU, or the CPU where there is no adapter, or where the adapter is a
    /// software one (llvmpipe, WARP: the CPU emulating a GPU), which the CPU path outruns, except for a
    /// sweep of networks small enough for the fused engine to train side by side
    #[arg(long, value_enum, default_value_t = TrainBackend::Auto)]
    backend: TrainBackend,

    #[command(flatten)]
    device: super::AdapterChoice,

    /// Fraction of the rows held out to test on; without --validation they are also the validation set
    #[arg(long, default_value_t = 0.0, value_parser = super::parse_f32)]
    test_split: f32,

    /// A table of validation rows (the training file's columns, scaled as its training rows), evaluated at
    /// each log point; with --test-split as well, the split's rows are a test set evaluated only at the end
    #[arg(long, value_name = "FILE")]
    validation: Option<PathBuf>,

    /// Stop after N log points without a lower validation loss (--validation or --test-split) and keep the
    /// model of the best one, for --save and the summary
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    early_stop: Option<u64>,

    /// Also save to the --save path every N epochs, a checkpoint that --init resumes
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    checkpoint_every: Option<u64>,

    /// Scale each numeric feature, and a regression target, to mean 0 and deviation 1 on the training rows
    /// (the statistics are saved with the model; predictions are scaled back to the target's units)
    #[arg(long)]
    standardize: bool,

    /// Print the loss (and accuracy) every N epochs
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    log_every: Option<u64>,

    /// Save the model (with its optimizer state, so training can resume) to this safetensors file
    #[arg(long)]
    save: Option<PathBuf>,

    /// Start from a saved model: a checkpoint with the same settings resumes exactly, otherwise fine-tunes
    #[arg(long)]
    init: Option<PathBuf>,

    /// No progress bar and no log lines (the summary is still printed)
    #[arg(long)]
    quiet: bool,

    /// Draw the loss curve to this PNG file, and for a classifier of two numeric features the decision
    /// regions with the points
    #[arg(long)]
    plot: Option<PathBuf>,
}

impl TrainArgs {
    /// The feature columns that --features or --ignore choose.
    fn feature_columns(&self) -> FeatureColumns {
        match (&self.features[..], &self.ignore[..]) {
            ([], []) => FeatureColumns::AllButTarget,
            ([], ignored) => FeatureColumns::AllBut(ignored.to_vec()),
            (features, _) => FeatureColumns::Only(features.to_vec()),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum TrainBackend {
    Auto,
    Gpu,
    Cpu,
}

pub fn run(args: &TrainArgs, json: bool) -> anyhow::Result<()> {
    let job = Job::prepare(args, |path| args.format.read(path))?;
    let Job {
        network, config, ..
    } = &job;
    let setup = Instant::now();
    let (gpu, note) = choose_device(args, &job, || args.device.open())?;
    let (seeds, starts): (Vec<u64>, Vec<Start>) = job.starts().into_iter().unzip();
    let mut trainer = job.trainer(gpu.as_ref(), &starts)?;
    let checkpoint = job.init.as_ref().and_then(|m| m.checkpoint.as_ref());
    let resumed = checkpoint.filter(|c| resumes(c, config, args.epochs));
    if let Some(checkpoint) = resumed {
        trainer.resume(checkpoint.epoch, &checkpoint.state)?;
    }
    let setup_ms = millis(setup.elapsed());
    // The fused engine's compile, part of the setup: zero where the process had its shaders already.
    let compile_ms = trainer
        .fused_variant()
        .map(|_| millis(trainer.compile_time()));
    let compiled = compile_ms.map_or(String::new(), |ms| {
        format!("; compiling the fused engine took {ms:.0} ms before")
    });

    let quiet = args.quiet || json;
    if !quiet {
        if let Some(note) = &note {
            say!("note: {note}")?;
        }
        let start = match (&job.init, resumed) {
            (_, Some(c)) => format!(" · resuming after epoch {}", c.epoch),
            (Some(_), None) => format!(
                " · fine-tuning the --init model{}",
                checkpoint.map_or(String::new(), |c| why_not_resumed(c, config, args.epochs))
            ),
            (None, None) => String::new(),
        };
        let lrs: Vec<String> = job.lrs.iter().map(f32::to_string).collect();
        let runs = if job.sweeps() {
            format!(" · {} run(s) per rate", args.runs)
        } else {
            String::new()
        };
        let schedule = match config.schedule {
            Schedule::Constant => String::new(),
            schedule => format!(" · lr schedule {schedule}"),
        };
        let device = match gpu.as_ref().map(Gpu::adapter) {
            Some(adapter) => format!("{} engine on {adapter}", trainer.engine().name()),
            None => "on the CPU".into(),
        };
        let validation = job.validation.as_ref().map_or(String::new(), |(_, set)| {
            format!(", {} validation rows", set.rows)
        });
        say!(
            "network {network} ({} parameters) · {} hidden · {} output · {} loss · {} · lr {}{schedule}{runs} · {} training rows, {} held out{validation}{start} · {device}",
            network.layout().len,
            network.hidden_activation(),
            network.output_activation(),
            network.loss(),
            config.optimizer.name(),
            lrs.join(","),
            job.train_set.rows,
            job.test_set.rows,
        )?;
        if !job.schema.categories.is_empty() {
            say!("inputs: {}", job.schema.describe_inputs())?;
        }
        for name in &job.row_ids {
            say!(
                "note: column {} numbers the rows, like a row ID, and is a feature; if it is an ID, \
                 --ignore {name} leaves it out",
                wgmlp::quote(name)
            )?;
        }
    }

    let first_epoch = trainer.epoch();
    let start_loss = job.start_loss(&starts[0])?;
    let Trained {
        progress,
        curve,
        timing,
        early_stop,
    } = job.train(&mut trainer, start_loss, quiet)?;
    let (train_ms, measure_ms) = (millis(timing.training), millis(timing.measuring));
    let outcomes = job.outcomes(&trainer, &progress, &seeds, &starts)?;
    let best = sweep::best(&outcomes);
    let best_config = starts[best].config;
    // With --early-stop the model kept is the best log point's, which the trainer has moved past.
    let (kept, evaluation) = match &early_stop {
        Some(stop) => {
            let (_, best) = stop.best();
            let evaluation = wgmlp::cpu::evaluate(network, &best.params, &job.train_set)?;
            (best.clone(), evaluation)
        }
        None => (Snapshot::of(&trainer, best)?, trainer.evaluate(best)?),
    };
    // A NaN can hide behind a finite loss (a relu layer that is never active passes nothing on), and a
    // bounded output can hide a step that overshot.
    let not_finite = kept.params.iter().position(|v| !v.is_finite());
    let saturated = || saturation(network, start_loss, evaluation.loss, &evaluation.outputs);
    let why = not_finite
        .map(|i| format!("parameter {i} became {}", kept.params[i]))
        .or_else(|| (!job.sweeps()).then(saturated).flatten());
    if let Some(what) = why {
        return Err(Error::Diverged {
            epoch: trainer.epoch(),
            what,
            lr: best_config.lr,
        }
        .into());
    }
    let held_out = |set: &Dataset| {
        (set.rows > 0)
            .then(|| wgmlp::cpu::evaluate(network, &kept.params, set))
            .transpose()
    };
    let test = held_out(&job.test_set)?;
    let validation = job.validation.as_ref().map(|(_, set)| set);
    let validated = validation.map(held_out).transpose()?.flatten();

    let model = job.model(kept, best_config);
    if let Some(path) = &args.plot {
        let curve = curve.of_run(best, job.curve_start(&starts[best])?);
        plot(path, &curve, &model, &job).with_context(|| format!("--plot {}", path.display()))?;
        if !quiet {
            say!("plotted {}", path.display())?;
        }
    }
    if let Some(path) = &args.save {
        model
            .save(path)
            .with_context(|| format!("--save {}", path.display()))?;
        if !quiet {
            let which = if job.sweeps() {
                format!(
                    " (the best run: seed {}, lr {})",
                    seeds[best], best_config.lr
                )
            } else if let Some(stop) = &early_stop {
                format!(" (epoch {}, the best)", stop.best().1.epoch)
            } else {
                String::new()
            };
            say!("saved {}{which}", path.display())?;
        }
    }

    let scores = |evaluation: &Evaluation, data: &Dataset| {
        Scores::new(&job.schema, network, evaluation, &data.targets)
    };
    let train_scores = scores(&evaluation, &job.train_set);
    let test_scores = test.as_ref().map(|t| scores(t, &job.test_set));
    let validation_scores = validated
        .as_ref()
        .zip(validation)
        .map(|(v, set)| scores(v, set));
    if json {
        let summary = json!({
            "backend": if gpu.is_some() { "gpu" } else { "cpu" },
            "note": note,
            "engine": trainer.engine().name(),
            "adapter": gpu.as_ref().map(Gpu::adapter),
            "dataset": args.dataset,
            "layers": network.sizes(),
            "parameters": network.layout().len,
            "loss": network.loss().name(),
            "optimizer": config.optimizer.name(),
            "lr_schedule": config.schedule.to_string(),
            "epochs": trainer.epoch(),
            "final_loss": evaluation.loss,
            "train_accuracy": train_scores.accuracy,
            "train_rmse": train_scores.rmse,
            "train_r2": train_scores.r2,
            "test_loss": test_scores.as_ref().map(|t| t.loss),
            "test_accuracy": test_scores.as_ref().and_then(|t| t.accuracy),
            "test_rmse": test_scores.as_ref().and_then(|t| t.rmse),
            "test_r2": test_scores.as_ref().and_then(|t| t.r2),
            "validation_loss": validation_scores.as_ref().map(|v| v.loss),
            "validation_accuracy": validation_scores.as_ref().and_then(|v| v.accuracy),
            "validation_rmse": validation_scores.as_ref().and_then(|v| v.rmse),
            "validation_r2": validation_scores.as_ref().and_then(|v| v.r2),
            "best_epoch": early_stop.as_ref().map(|stop| stop.best().1.epoch),
            "stopped_epoch": early_stop.as_ref().and_then(|stop| stop.stopped),
            "train_rows": job.train_set.rows,
            "test_rows": job.test_set.rows,
            "validation_rows": validation.map_or(0, |set| set.rows),
            "setup_ms": setup_ms,
            "compile_ms": compile_ms,
            "train_ms": train_ms,
            "measure_ms": measure_ms,
            "best_run": best,
            "runs": outcomes,
        });
        say!("{summary:#}")?;
    } else {
        let epochs = trainer.epoch() - first_epoch;
        let mut kept = String::new();
        if let Some(stop) = &early_stop {
            let (watched, _) = job
                .watched()
                .expect("--early-stop is refused without held-out rows");
            let (best_loss, best) = stop.best();
            let lowest = format!(
                "the lowest {watched} loss ({best_loss:.6}) was at epoch {}",
                best.epoch
            );
            match stop.stopped {
                Some(epoch) => say!(
                    "stopped early at epoch {epoch}: {} log points in a row without a lower {watched} loss; {lowest}",
                    stop.patience
                )?,
                None => say!("{lowest}")?,
            }
            kept = format!(", keeping epoch {}'s model", best.epoch);
        }
        if job.sweeps() {
            say!(
                "trained {} runs of {epochs} epochs in {train_ms:.0} ms (measuring {measure_ms:.0} ms apart{compiled})",
                outcomes.len()
            )?;
            for line in sweep::summary(&outcomes) {
                say!("  {line}")?;
            }
            let by = job
                .watched()
                .map_or("training".to_string(), |(name, _)| name.to_string());
            say!(
                "best run by {by} loss (seed {}, lr {}): {train_scores}",
                seeds[best],
                best_config.lr,
            )?;
        } else {
            say!(
                "trained {epochs} epochs in {train_ms:.0} ms (measuring {measure_ms:.0} ms apart{compiled}){kept}: {train_scores}"
            )?;
        }
        if let Some(test) = &test_scores {
            say!("held out: {test}")?;
        }
        if let Some(validation) = &validation_scores {
            say!("validation: {validation}")?;
        }
        if let Some(hint) = job.standardize_hint() {
            say!("note: {hint}")?;
        }
    }
    Ok(())
}

/// The device a run of `job` trains on, as --backend and --engine ask (none for the CPU), and the note that
/// says why where auto takes the CPU. `open` opens the adapter: `train` its own, the playground its shared one.
pub(super) fn choose_device<G: Borrow<Gpu>>(
    args: &TrainArgs,
    job: &Job,
    open: impl Fn() -> wgmlp::Result<G>,
) -> anyhow::Result<(Option<G>, Option<String>)> {
    if args.backend == TrainBackend::Cpu && args.engine != Engine::Auto {
        bail!(
            "--engine {} runs on the GPU; leave it out with --backend cpu",
            args.engine
        )
    }
    if args.backend == TrainBackend::Cpu && args.device.adapter.is_some() {
        bail!("--adapter chooses a GPU; leave it out with --backend cpu")
    }
    // An engine asked for by name needs the GPU.
    let backend = match args.backend {
        TrainBackend::Auto if args.engine != Engine::Auto => TrainBackend::Gpu,
        backend => backend,
    };
    let mut note = None;
    let mut gpu = match backend {
        TrainBackend::Gpu => Some(open()?),
        TrainBackend::Cpu => None,
        TrainBackend::Auto => match open() {
            Err(e @ Error::NoAdapter { .. }) => {
                note = Some(format!("{e}; training on the CPU"));
                None
            }
            opened => Some(opened?),
        },
    };
    // Before the weights are drawn, so that a network that can never fit fails at once.
    let (network, config) = (&job.network, &job.config);
    let device = gpu.as_ref().map(G::borrow);
    let runs = job.lrs.len() * args.runs as usize;
    let rows = job.train_set.rows;
    let on_gpu = Trainer::choose(device, args.engine, network, rows, config, runs);
    let cpu_can = || Trainer::choose(None, Engine::Auto, network, rows, config, runs).is_ok();
    // Auto takes the CPU where the adapter cannot train the network at all, and where it is a software one
    // (the CPU itself, emulating a GPU), except for a sweep in the fused engine's invocation-sized tiers,
    // which trains many networks side by side: otherwise the CPU path is faster there, and it compiles no
    // shader, which takes seconds on a software adapter.
    let cpu_is_faster = |gpu: &Gpu, chosen: Chosen| {
        let tier = || FusedTrainer::check_size(gpu, network, rows, config, runs).map(|v| v.tier);
        runs == 1 || chosen != Chosen::Fused || matches!(tier(), Ok(Tier::Workgroup { .. }))
    };
    let to_cpu = match (device, &on_gpu) {
        (Some(gpu), Err(e)) if backend == TrainBackend::Auto && cpu_can() => Some(format!(
            "{} cannot train this network ({e}): training on the CPU",
            gpu.adapter().name
        )),
        (Some(gpu), Ok(chosen))
            if backend == TrainBackend::Auto
                && gpu.is_software()
                && cpu_is_faster(gpu, *chosen)
                && cpu_can() =>
        {
            let what = match runs {
                1 => "a single network",
                _ => "a sweep of networks this large",
            };
            Some(format!(
                "{} is a software adapter (the CPU emulates a GPU): training on the CPU, which is \
                 faster here for {what}; --backend gpu trains on the adapter",
                gpu.adapter().name
            ))
        }
        _ => None,
    };
    match to_cpu {
        Some(reason) => {
            note = Some(reason);
            gpu = None;
        }
        None => drop(on_gpu.map_err(super::layers_error(network))?),
    }
    Ok((gpu, note))
}

/// Values from which on unscaled data earns the advice to --standardize it.
const LARGE_VALUE: f32 = 1000.0;

/// Why a checkpoint is fine-tuned rather than resumed: the settings in which the command differs from it,
/// and for a cosine cut short, the `--epochs` that would finish it.
fn why_not_resumed(checkpoint: &Checkpoint, config: &TrainConfig, epochs: u64) -> String {
    let saved = checkpoint.config();
    let mut differences = Vec::new();
    let mut differ = |what: &str, command: String, saved: String| {
        if command != saved {
            differences.push(format!("{what} {command}, not {saved}"));
        }
    };
    differ("lr", config.lr.to_string(), saved.lr.to_string());
    differ(
        "optimizer",
        format!("{:?}", config.optimizer),
        format!("{:?}", saved.optimizer),
    );
    differ(
        "lr schedule",
        config.schedule.to_string(),
        saved.schedule.to_string(),
    );
    let batch = |size: Option<usize>| size.map_or("all rows".into(), |s| s.to_string());
    differ(
        "batch size",
        batch(config.batch_size),
        batch(saved.batch_size),
    );
    differ(
        "seed",
        config.shuffle_seed.to_string(),
        saved.shuffle_seed.to_string(),
    );
    let mut reasons = Vec::new();
    if !differences.is_empty() {
        reasons.push(format!(
            "its checkpoint differs: {}",
            differences.join("; ")
        ));
    }
    if let (Schedule::Cosine { horizon }, Schedule::Cosine { .. }) =
        (saved.schedule, config.schedule)
    {
        let left = u64::from(horizon).saturating_sub(checkpoint.epoch);
        if left == 0 {
            reasons.push(format!("its cosine ended at epoch {horizon}"));
        } else if epochs != left {
            reasons.push(format!(
                "its cosine ends at epoch {horizon}: --epochs {left} resumes it"
            ));
        }
    }
    match reasons.is_empty() {
        true => String::new(),
        false => format!(" ({})", reasons.join("; ")),
    }
}

/// Everything a run needs before it touches a device: the data split and scaled, the network, the settings.
pub(super) struct Job<'a> {
    args: &'a TrainArgs,
    init: Option<Model>,
    pub(super) network: Network,
    pub(super) schema: Schema,
    /// The first run's settings; runs of a sweep differ from it in the learning rate and the seed.
    pub(super) config: TrainConfig,
    lrs: Vec<f32>,
    train_table: Table,
    pub(super) train_set: Dataset,
    test_table: Table,
    pub(super) test_set: Dataset,
    /// The --validation file's rows, read with the training rows' schema and scaling.
    validation: Option<(Table, Dataset)>,
    /// Features that number the rows like an ID, taken in only because no columns were chosen.
    row_ids: Vec<String>,
}

impl<'a> Job<'a> {
    /// Reads and checks everything the options name; `read` reads the --dataset file (the playground hands
    /// over an upload).
    pub(super) fn prepare(
        args: &'a TrainArgs,
        read: impl FnOnce(&Path) -> wgmlp::Result<Table>,
    ) -> anyhow::Result<Self> {
        let builtin = Builtin::parse(&args.dataset);
        let dataset = PathBuf::from(&args.dataset);
        let inputs: Vec<(&str, &PathBuf)> = builtin
            .is_none()
            .then_some(("--dataset", &dataset))
            .into_iter()
            .chain(args.init.as_ref().map(|init| ("--init", init)))
            .chain(args.validation.as_ref().map(|file| ("--validation", file)))
            .collect();
        let outputs = [
            ("--plot", args.plot.as_ref()),
            ("--export", args.export.as_ref()),
        ];
        super::check_outputs_spare_inputs(&inputs, &outputs)?;
        // --save may replace --init's file: the model is read whole before training and the save is atomic,
        // so a checkpoint resumes in place.
        let mut spared = inputs;
        spared.retain(|(option, _)| *option != "--init");
        super::check_outputs_spare_inputs(&spared, &[("--save", args.save.as_ref())])?;
        if args.dataset == "-" && args.validation.as_deref() == Some(Path::new("-")) {
            bail!(
                "--dataset - and --validation - both read standard input, which holds one table; save one of \
                 them to a file"
            );
        }
        let table = match builtin {
            Some(_) if args.format.delimiter.is_some() => {
                bail!("--delimiter reads a file; leave it out with a built-in dataset")
            }
            Some(builtin) => builtin.generate(args.samples, args.noise, args.classes, args.seed)?,
            None => read(args.dataset.as_ref())?,
        };
        if let Some(path) = &args.export {
            super::write_output("--export", path, &table.csv_bytes()?)?;
        }
        let init = args
            .init
            .as_ref()
            .map(|path| Model::load(path))
            .transpose()?;
        let (network, mut schema) = match &init {
            Some(model) => {
                check_matches_model(args, model, &table)?;
                (model.network.clone(), model.schema.clone())
            }
            None => design(args, builtin, &table)?,
        };
        let chose_columns = args.feature_columns() != FeatureColumns::AllButTarget;
        let row_ids = match (&init, chose_columns) {
            (None, false) => schema.row_numbering_features(&table),
            _ => Vec::new(),
        };
        let row_ids = row_ids.into_iter().map(str::to_string).collect();
        let regression = builtin.is_none() && !network.loss().is_classification();
        let (train_rows, test_rows) = split(table.rows.len(), args.test_split, args.seed)?;
        let (train_table, test_table) = (table.select(&train_rows), table.select(&test_rows));
        if init.is_none() && args.standardize {
            // A bounded output (sigmoid) could never reach a target scaled to mean 0 and deviation 1.
            let scale_target = network.output_activation() == Activation::Identity;
            schema.fit_standardize(&train_table, scale_target)?;
        }
        let default_optimizer = if regression { "adam" } else { "sgd" };
        let optimizer = Optimizer::parse(
            args.optimizer.as_deref().unwrap_or(default_optimizer),
            args.momentum,
            args.weight_decay,
        )?;
        // A CSV regression fits noisy values: a smaller step generalises better (tried on housing-like tables).
        let default_lr = match (optimizer, regression) {
            (Optimizer::Adam { .. }, true) => 0.003,
            (Optimizer::Adam { .. }, false) => 0.01,
            (Optimizer::Sgd { .. }, _) => 0.1,
        };
        let lrs = if args.lr.is_empty() {
            vec![default_lr]
        } else {
            args.lr.clone()
        };
        let mut config = TrainConfig {
            lr: lrs[0],
            optimizer,
            schedule: Schedule::Constant,
            batch_size: args.batch_size,
            shuffle_seed: args.seed,
        };
        config.schedule = schedule(args, &config, init.as_ref())?;
        for &lr in &lrs {
            TrainConfig { lr, ..config }.check()?;
        }
        if init.is_some() && (args.runs > 1 || lrs.len() > 1) {
            bail!("--init continues one model; leave out --runs and the list of --lr values");
        }
        let validation = match &args.validation {
            Some(path) => {
                let context = || format!("--validation {}", path.display());
                let table = args.format.read(path).with_context(context)?;
                let needed: Vec<&String> = schema.features.iter().chain([&schema.target]).collect();
                let role = format!(
                    "which the training table has (validation rows need its columns {})",
                    wgmlp::quote_list(&needed)
                );
                table.columns(&needed, &role).with_context(context)?;
                let set = schema
                    .dataset(&table, network.loss())
                    .with_context(context)?;
                Some((table, set))
            }
            None => None,
        };
        let job = Job {
            train_set: schema.dataset(&train_table, network.loss())?,
            test_set: schema.dataset(&test_table, network.loss())?,
            args,
            init,
            network,
            schema,
            config,
            lrs,
            train_table,
            test_table,
            validation,
            row_ids,
        };
        job.check_workflow()?;
        Ok(job)
    }

    /// Refuses --early-stop and --checkpoint-every where they cannot work.
    fn check_workflow(&self) -> anyhow::Result<()> {
        let args = self.args;
        if let Some(n) = args.early_stop {
            if self.watched().is_none() {
                bail!(
                    "--early-stop {n} watches the loss on rows held out from training; add --validation \
                     FILE.csv or --test-split 0.2"
                );
            }
            if self.sweeps() {
                bail!(
                    "--early-stop {n} follows one run; leave out --runs and the list of --lr values"
                );
            }
        }
        if let Some(n) = args.checkpoint_every {
            if args.save.is_none() {
                bail!(
                    "--checkpoint-every {n} saves to the --save path; add --save FILE.safetensors"
                );
            }
            if self.sweeps() {
                bail!(
                    "--checkpoint-every {n} saves one run to resume with --init, which continues one \
                     model; leave out --runs and the list of --lr values"
                );
            }
        }
        Ok(())
    }

    /// The rows evaluated at each log point, and what they are called: the --validation file's, or else the
    /// --test-split rows.
    fn watched(&self) -> Option<(&'static str, &Dataset)> {
        match &self.validation {
            Some((_, set)) => Some(("validation", set)),
            None => (self.test_set.rows > 0).then_some(("held-out", &self.test_set)),
        }
    }

    /// Every run's seed and start: --init's parameters, or weights drawn from the run's seed.
    pub(super) fn starts(&self) -> Vec<(u64, Start)> {
        let init_params = self.init.as_ref().map(|m| &m.params[..]);
        let runs = self.args.runs as usize;
        sweep::starts(
            &self.network,
            init_params,
            self.config,
            self.args.seed,
            &self.lrs,
            runs,
        )
    }

    /// A trainer of `starts` on `gpu` (the CPU without one), with the engine --engine asks for.
    pub(super) fn trainer<'g>(
        &self,
        gpu: Option<&'g Gpu>,
        starts: &[Start],
    ) -> anyhow::Result<Trainer<'g>> {
        let network = &self.network;
        Trainer::new(gpu, self.args.engine, network, starts, &self.train_set)
            .map_err(super::layers_error(network))
    }

    /// How each run stands at `progress`; in a sweep, with its loss on the rows it did not train on, where
    /// there are some, which ranks the runs ([`sweep::best`]).
    pub(super) fn outcomes(
        &self,
        trainer: &Trainer,
        progress: &[Progress],
        seeds: &[u64],
        starts: &[Start],
    ) -> anyhow::Result<Vec<Outcome>> {
        let judged = self.judges_convergence();
        let mut outcomes: Vec<Outcome> = progress
            .iter()
            .zip(seeds.iter().zip(starts))
            .map(|(progress, (&seed, start))| Outcome::new(seed, start.config.lr, progress, judged))
            .collect();
        if let (true, Some((_, watched))) = (self.sweeps(), self.watched()) {
            for (outcome, params) in outcomes.iter_mut().zip(trainer.all_params()?) {
                outcome.held_out_loss =
                    Some(wgmlp::cpu::evaluate(&self.network, &params, watched)?.loss);
            }
        }
        Ok(outcomes)
    }

    /// Every row of the run, part by part: its table, its dataset, and whether it is held out from training
    /// (the test split and the validation file).
    pub(super) fn parts(&self) -> impl Iterator<Item = (&Table, &Dataset, bool)> {
        [
            (&self.train_table, &self.train_set, false),
            (&self.test_table, &self.test_set, true),
        ]
        .into_iter()
        .chain(
            self.validation
                .iter()
                .map(|(table, set)| (table, set, true)),
        )
    }

    /// Whether "converged" (every output within 0.1 of its target, or every row classified right) means
    /// something here: for classifiers, and for targets of 0 and 1 such as XOR's, not for a price.
    pub(super) fn judges_convergence(&self) -> bool {
        self.network.loss().is_classification()
            || self.train_set.targets.iter().all(|&t| t == 0.0 || t == 1.0)
    }

    /// Whether more than one run trains.
    pub(super) fn sweeps(&self) -> bool {
        self.args.runs > 1 || self.lrs.len() > 1
    }

    /// The loss of the first run before training: what divergence is measured against.
    pub(super) fn start_loss(&self, first: &Start) -> anyhow::Result<f64> {
        let loss = wgmlp::cpu::evaluate(&self.network, &first.params, &self.train_set)?.loss;
        if !loss.is_finite() {
            return Err(self.diverged(0, format!("the loss is {loss} before any training")));
        }
        Ok(loss)
    }

    /// The error for a run that diverged: where the data holds values whose square overflows f32, they are
    /// the cause, not the learning rate; where it holds large values unscaled, scaling them is the cure.
    pub(super) fn diverged(&self, epoch: u64, what: String) -> anyhow::Error {
        let largest = self.largest_value();
        if largest > f32::MAX.sqrt() {
            return anyhow::anyhow!(
                "training diverged by epoch {epoch}: {what}: values as large as {largest:e} in {} overflow \
                 single precision (f32) once squared; scale the features (--standardize) or the target",
                self.train_table.source
            );
        }
        match self.standardize_hint() {
            Some(hint) => anyhow::anyhow!(
                "training diverged by epoch {epoch}: {what}; {hint} (or try a smaller --lr, now {})",
                self.config.lr
            ),
            None => Error::Diverged {
                epoch,
                what,
                lr: self.config.lr,
            }
            .into(),
        }
    }

    /// The largest magnitude among the training inputs and targets, as the network sees them.
    fn largest_value(&self) -> f32 {
        self.train_set
            .inputs
            .iter()
            .chain(&self.train_set.targets)
            .fold(0.0f32, |m, v| m.max(v.abs()))
    }

    /// Where unscaled data holds values far from 1, which networks learn slowly or not at all, the advice
    /// to scale it.
    fn standardize_hint(&self) -> Option<String> {
        let largest = self.largest_value();
        (self.schema.standardize.is_none() && largest >= LARGE_VALUE).then(|| {
            let what = if self.schema.classes.is_some() {
                "the features"
            } else {
                "the features and the target"
            };
            format!(
                "{} holds values as large as {largest:e}; --standardize scales {what} to mean 0 and \
                 deviation 1, which networks learn far better",
                self.train_table.source
            )
        })
    }

    /// Trains `--epochs` more epochs (fewer where --early-stop ends the run), checking the loss as it goes:
    /// at the log points, and for --plot and --checkpoint-every between them.
    fn train(
        &self,
        trainer: &mut Trainer,
        start_loss: f64,
        quiet: bool,
    ) -> anyhow::Result<Trained> {
        let args = self.args;
        let first_epoch = trainer.epoch();
        if first_epoch.checked_add(args.epochs).is_none() {
            bail!(
                "--epochs {} on top of {first_epoch} trained ones is too many",
                args.epochs
            );
        }
        // The loss is checked a hundred times a run (every epoch of a shorter one), so that a divergence is
        // caught near where it happened and the progress bar and the plot have points to show. The engines
        // measure it on the device where they can; the fused engine reads back three numbers a run.
        let check_every = args.epochs.div_ceil(CHECKS);
        let log_every = args.log_every.unwrap_or(check_every);
        // The plot's curve keeps those points whatever --log-every says, so --plot adds stops to a run only
        // beside a --log-every of its own.
        let sample_every = args.plot.is_some().then_some(check_every);
        let bar = progress_bar(args.epochs, quiet);
        let log_lines = args.log_every.is_some() && !quiet;
        // The held-out rows are evaluated (a read of the parameters, a forward pass on the CPU) where their
        // loss is shown or used, and for a single run: a sweep reports the best run's at the end.
        let watched = self.watched().filter(|_| !self.sweeps());
        let watch_at_log_points = log_lines || !bar.is_hidden() || args.early_stop.is_some();
        let mut curve = Curve {
            first_epoch,
            ..Curve::default()
        };
        let mut timing = Timing::default();
        let mut early_stop = args.early_stop.map(EarlyStop::new);
        loop {
            let done = trainer.epoch() - first_epoch;
            let due = |every: Option<u64>| every.map(|e| (done / e + 1).saturating_mul(e));
            let next = [
                due(Some(log_every)),
                due(sample_every),
                due(args.checkpoint_every),
            ]
            .into_iter()
            .flatten()
            .fold(args.epochs, u64::min);
            let started = Instant::now();
            trainer.train((next - done) as usize)?;
            let trained = Instant::now();
            timing.training += trained - started;
            let at = |every: Option<u64>| every.is_some_and(|e| next.is_multiple_of(e));
            let last = next == args.epochs;
            let log_point = last || at(Some(log_every));
            let progress = trainer.progress()?;
            let epoch = trainer.epoch();
            let diverged = divergence(start_loss, progress[0].loss).filter(|_| !self.sweeps());
            if let Some(what) = diverged {
                bar.abandon();
                return Err(self.diverged(epoch, what));
            }
            let held_out = match watched {
                Some((_, set)) if sample_every.is_some() || log_point && watch_at_log_points => {
                    let params = trainer.params(0)?;
                    Some((wgmlp::cpu::evaluate(&self.network, &params, set)?, params))
                }
                _ => None,
            };
            let mut status = self.status(&progress);
            if let (Some((name, set)), Some((evaluation, _))) = (watched, &held_out) {
                let scores = Scores::new(&self.schema, &self.network, evaluation, &set.targets);
                status += &format!(" · {name} {scores}");
            }
            bar.set_position(next);
            bar.set_message(status.clone());
            if log_point && log_lines {
                log(&bar, format!("epoch {epoch}: {status}"))?;
            }
            if sample_every.is_some() {
                let losses = progress.iter().map(|p| p.loss).collect();
                curve.push(epoch, losses, held_out.as_ref().map(|(e, _)| e.loss));
            }
            if at(args.checkpoint_every) && !last {
                self.save_checkpoint(Snapshot::of(trainer, 0)?)?;
                if log_lines {
                    log(&bar, format!("epoch {epoch}: checkpoint saved"))?;
                }
            }
            let mut stopped = false;
            if let (true, Some(stop), Some((evaluation, params))) =
                (log_point, &mut early_stop, held_out)
            {
                stopped = stop.observe(evaluation.loss, || {
                    let state = trainer.optimizer_state(0)?;
                    Ok(Snapshot {
                        epoch,
                        params,
                        state,
                    })
                })?;
                if stopped && !last {
                    stop.stopped = Some(epoch);
                }
            }
            timing.measuring += trained.elapsed();
            if last || stopped {
                bar.finish_and_clear();
                return Ok(Trained {
                    progress,
                    curve,
                    timing,
                    early_stop,
                });
            }
        }
    }

    /// Saves run 0 as it stands to the --save path, for --checkpoint-every.
    fn save_checkpoint(&self, snapshot: Snapshot) -> anyhow::Result<()> {
        let path = (self.args.save.as_ref()).expect("--checkpoint-every is refused without --save");
        self.model(snapshot, self.config)
            .save(path)
            .with_context(|| format!("--checkpoint-every: saving to {}", path.display()))
    }

    /// The model of a run's snapshot, with the checkpoint that resumes it: what --save and
    /// --checkpoint-every write. `config` is the run's.
    pub(super) fn model(&self, snapshot: Snapshot, config: TrainConfig) -> Model {
        Model {
            network: self.network.clone(),
            params: snapshot.params,
            schema: self.schema.clone(),
            checkpoint: Some(Checkpoint {
                epoch: snapshot.epoch,
                lr: config.lr,
                optimizer: config.optimizer,
                schedule: config.schedule,
                batch_size: config.batch_size,
                shuffle_seed: config.shuffle_seed,
                state: snapshot.state,
            }),
        }
    }

    /// The first point of a run's curve: its loss before this training, on the training rows and on the
    /// held-out ones (for a single run, as during training).
    fn curve_start(&self, start: &Start) -> anyhow::Result<(f64, Option<f64>)> {
        let loss = |set| wgmlp::cpu::evaluate(&self.network, &start.params, set).map(|e| e.loss);
        let watched = self.watched().filter(|_| !self.sweeps());
        Ok((
            loss(&self.train_set)?,
            watched.map(|(_, set)| loss(set)).transpose()?,
        ))
    }

    /// "loss 0.123, accuracy 97.5%" for one run; for a sweep, how many have converged and the best loss.
    fn status(&self, progress: &[Progress]) -> String {
        if let [one] = progress {
            return match one.accuracy {
                Some(acc) => format!("loss {:.6}, accuracy {:.1}%", one.loss, 100.0 * acc),
                None => format!("loss {:.6}", one.loss),
            };
        }
        let best = progress
            .iter()
            .map(|p| p.loss)
            .filter(|l| !l.is_nan())
            .fold(f64::INFINITY, f64::min);
        if !self.judges_convergence() {
            return format!("{} runs, best loss {best:.6}", progress.len());
        }
        let converged = progress.iter().filter(|p| p.converged()).count();
        format!(
            "{converged} of {} converged, best loss {best:.6}",
            progress.len()
        )
    }
}

/// Where a run's time went: training (every engine waits for its device before this is read), and
/// measuring the loss at the log points, with the held-out evaluation, the readbacks and checkpoints.
#[derive(Default)]
struct Timing {
    training: std::time::Duration,
    measuring: std::time::Duration,
}

/// What the training loop ends with.
struct Trained {
    /// Every run's last check.
    progress: Vec<Progress>,
    curve: Curve,
    timing: Timing,
    early_stop: Option<EarlyStop>,
}

/// A run's parameters and optimizer state after `epoch` epochs: what a checkpoint holds.
#[derive(Clone)]
pub(super) struct Snapshot {
    epoch: u64,
    params: Vec<f32>,
    state: Vec<f32>,
}

impl Snapshot {
    pub(super) fn of(trainer: &Trainer, run: usize) -> wgmlp::Result<Self> {
        Ok(Snapshot {
            epoch: trainer.epoch(),
            params: trainer.params(run)?,
            state: trainer.optimizer_state(run)?,
        })
    }
}

/// --early-stop: the log point with the lowest held-out loss so far, and how many have passed since.
struct EarlyStop {
    patience: u64,
    best: Option<(f64, Snapshot)>,
    since_best: u64,
    /// The epoch the run stopped at, where that was before --epochs.
    stopped: Option<u64>,
}

impl EarlyStop {
    fn new(patience: u64) -> Self {
        EarlyStop {
            patience,
            best: None,
            since_best: 0,
            stopped: None,
        }
    }

    /// Takes a log point's held-out loss, and the run's state from `snapshot` where that loss is the lowest
    /// yet; true once `patience` log points in a row have brought no lower one.
    fn observe(
        &mut self,
        loss: f64,
        snapshot: impl FnOnce() -> wgmlp::Result<Snapshot>,
    ) -> wgmlp::Result<bool> {
        if self.best.as_ref().is_none_or(|(best, _)| loss < *best) {
            self.best = Some((loss, snapshot()?));
            self.since_best = 0;
        } else {
            self.since_best += 1;
        }
        Ok(self.since_best >= self.patience)
    }

    /// The lowest held-out loss, and the run's state at it.
    fn best(&self) -> (f64, &Snapshot) {
        let (loss, snapshot) = (self.best.as_ref())
            .expect("the last epoch is a log point, and --early-stop observes every log point");
        (*loss, snapshot)
    }
}

/// A bar of epochs with the latest loss and accuracy, drawn only on a terminal.
fn progress_bar(epochs: u64, quiet: bool) -> ProgressBar {
    if quiet || !std::io::stdout().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(epochs), ProgressDrawTarget::stdout());
    let style =
        ProgressStyle::with_template("{bar:30} epoch {pos}/{len} · {msg} · {elapsed} (eta {eta})")
            .expect("the progress template is valid");
    bar.set_style(style);
    bar
}

/// Prints a line above the progress bar, or alone where the bar is hidden (a hidden bar swallows its
/// println).
fn log(bar: &ProgressBar, line: String) -> anyhow::Result<()> {
    if bar.is_hidden() {
        say!("{line}")
    } else {
        bar.println(line);
        Ok(())
    }
}

/// How many times a run checks its loss (and the plot samples it), at most: every epoch of a shorter run.
const CHECKS: u64 = 100;

/// The losses the plot draws: one point per sample, of every run.
#[derive(Default)]
struct Curve {
    /// Where training started: the epoch of the point before the first sample.
    first_epoch: u64,
    epochs: Vec<u64>,
    /// Per sample, every run's loss.
    train: Vec<Vec<f64>>,
    held_out: Vec<f64>,
}

/// One run's curve.
struct RunCurve {
    epochs: Vec<u64>,
    train: Vec<f64>,
    held_out: Vec<f64>,
}

impl Curve {
    fn push(&mut self, epoch: u64, train: Vec<f64>, held_out: Option<f64>) {
        self.epochs.push(epoch);
        self.train.push(train);
        self.held_out.extend(held_out);
    }

    /// Run `run`'s curve, from its losses before training (on the training rows, and the held-out ones).
    fn of_run(&self, run: usize, (train, held_out): (f64, Option<f64>)) -> RunCurve {
        let epochs = std::iter::once(self.first_epoch).chain(self.epochs.iter().copied());
        let trained = self.train.iter().map(|losses| losses[run]);
        RunCurve {
            epochs: epochs.collect(),
            train: std::iter::once(train).chain(trained).collect(),
            held_out: held_out
                .into_iter()
                .chain(self.held_out.iter().copied())
                .collect(),
        }
    }
}

/// The loss curve, and for a classifier of two numeric features its decision regions, on axes named after
/// them, with the training points and the held-out ones (test split and validation file) marked apart.
fn plot(path: &std::path::Path, curve: &RunCurve, model: &Model, job: &Job) -> anyhow::Result<()> {
    let held_out_name = job.watched().map(|(name, _)| format!("{name} rows"));
    let loss_curve = LossCurve {
        epochs: &curve.epochs,
        train: &curve.train,
        held_out: held_out_name
            .as_deref()
            .filter(|_| !curve.held_out.is_empty())
            .map(|name| (name, &curve.held_out[..])),
    };
    let (network, schema) = (&model.network, &model.schema);
    // A region's axes are the two features' values: a one-hot category is no axis.
    let (Some(classes), [x1_name, x2_name], true) = (
        &schema.classes,
        &schema.features[..],
        schema.categories.is_empty(),
    ) else {
        return Ok(plot::draw(path, &loss_curve, None)?);
    };
    let loss = network.loss();
    let class_of = |row: &[f32]| class_of(loss, row).expect("a classifier's rows have a class");
    let (mut x1, mut x2, mut class, mut held_out) = (vec![], vec![], vec![], vec![]);
    for (table, set, held) in job.parts() {
        let raw = schema.raw_features(table)?;
        x1.extend(raw.chunks(2).map(|p| p[0]));
        x2.extend(raw.chunks(2).map(|p| p[1]));
        class.extend(set.targets.chunks(network.outputs()).map(class_of));
        held_out.extend(std::iter::repeat_n(held, set.rows));
    }
    let points = Points {
        x1: &x1,
        x2: &x2,
        class: &class,
        held_out: &held_out,
        classes,
        names: [x1_name, x2_name],
    };
    let classify = |grid: &[f32]| -> wgmlp::Result<Vec<usize>> {
        let outputs = model.predict(&schema.standardized(grid.to_vec()), grid.len() / 2)?;
        Ok(outputs.chunks(network.outputs()).map(class_of).collect())
    };
    Ok(plot::draw(path, &loss_curve, Some((&points, &classify)))?)
}

/// The network and schema from the options and the data, with defaults that suit the dataset.
fn design(
    args: &TrainArgs,
    builtin: Option<Builtin>,
    table: &Table,
) -> anyhow::Result<(Network, Schema)> {
    let target = args.target.as_deref();
    let loss = match (args.loss, builtin) {
        (Some(loss), _) => loss,
        (None, Some(Builtin::Xor)) => Loss::Sse,
        (None, Some(Builtin::Moons | Builtin::Circles)) => Loss::Bce,
        (None, Some(Builtin::Spirals)) => Loss::Ce,
        (None, None) => Schema::default_loss(table, target)?,
    };
    let schema = Schema::infer(table, target, &args.feature_columns(), loss)?;
    schema.check_classes(loss)?;
    let (inputs, outputs) = (schema.inputs(), schema.outputs(loss));
    let sizes = match &args.layers {
        Some(text) => Network::parse_sizes(text)?,
        None if builtin == Some(Builtin::Xor) => vec![2, 3, 1],
        None => vec![inputs, 16, 16, outputs],
    };
    let (first, last) = (sizes[0], sizes[sizes.len() - 1]);
    if first != inputs || last != outputs {
        bail!(
            "--layers {}: the data has {} and needs {outputs} output(s) for the {loss} loss, so the first size \
             must be {inputs} and the last {outputs}",
            args.layers.as_deref().unwrap_or_default(),
            schema.describe_inputs()
        );
    }
    let hidden = args.activation.unwrap_or(match (builtin, loss) {
        (Some(_), Loss::Sse) => Activation::Sigmoid,
        _ => Activation::Tanh,
    });
    let output = args.output_activation.unwrap_or(match loss {
        Loss::Sse if builtin.is_none() => Activation::Identity,
        Loss::Sse | Loss::Bce => Activation::Sigmoid,
        Loss::Ce => Activation::Softmax,
        Loss::Mse => Activation::Identity,
    });
    if !loss.is_classification() && output == Activation::Sigmoid {
        let targets = schema.targets(table, loss)?;
        if let Some(value) = targets.iter().find(|v| !(0.0..=1.0).contains(*v)) {
            bail!(
                "--output-activation sigmoid: its outputs lie between 0 and 1, but the target {} holds {value}; \
                 use --output-activation identity",
                wgmlp::quote(&schema.target)
            );
        }
    }
    Ok((Network::build(sizes, hidden, output, loss)?, schema))
}

/// Whether `epochs` more of `config` continue `checkpoint` exactly: the same settings, and no further than
/// where its cosine ends.
fn resumes(checkpoint: &Checkpoint, config: &TrainConfig, epochs: u64) -> bool {
    let within = match config.schedule {
        Schedule::Cosine { horizon } => {
            checkpoint.epoch.saturating_add(epochs) <= u64::from(horizon)
        }
        _ => true,
    };
    checkpoint.config() == *config && within
}

/// The schedule `--lr-schedule` names. A plain cosine anneals to the epoch the run ends at, `--epochs` after
/// the one it starts at: the checkpoint's where the command resumes it (its settings, that cosine included,
/// equal the checkpoint's), else 0.
fn schedule(
    args: &TrainArgs,
    config: &TrainConfig,
    init: Option<&Model>,
) -> anyhow::Result<Schedule> {
    let ending_at = |end: u64| Schedule::parse(&args.lr_schedule, end);
    let checkpoint = init.and_then(|model| model.checkpoint.as_ref());
    let resumes = checkpoint.filter(|c| {
        ending_at(c.epoch.saturating_add(args.epochs)).is_ok_and(|schedule| {
            let config = TrainConfig {
                schedule,
                ..*config
            };
            resumes(c, &config, args.epochs)
        })
    });
    let first_epoch = resumes.map_or(0, |c| c.epoch);
    Ok(ending_at(first_epoch.saturating_add(args.epochs))?)
}

/// With --init the model fixes the architecture and the columns; options that would change them are an
/// error, not ignored. Those that repeat the model's own settings are welcome, so that the command that made
/// a model also resumes it.
fn check_matches_model(args: &TrainArgs, model: &Model, table: &Table) -> anyhow::Result<()> {
    let network = &model.network;
    let schema = &model.schema;
    let columns = args.feature_columns();
    let features_differ = || -> anyhow::Result<bool> {
        if columns == FeatureColumns::AllButTarget {
            return Ok(false);
        }
        // The same columns in another order read the same inputs: features are found by name.
        let chosen = columns.names(table, &schema.target)?;
        let saved = &schema.features;
        Ok(chosen.len() != saved.len() || chosen.iter().any(|c| !saved.contains(c)))
    };
    let conflicts = [
        (
            "--layers",
            args.layers
                .as_ref()
                .is_some_and(|l| Network::parse_sizes(l).ok().as_deref() != Some(network.sizes())),
        ),
        (
            "--activation",
            args.activation
                .is_some_and(|a| a != network.hidden_activation()),
        ),
        (
            "--output-activation",
            args.output_activation
                .is_some_and(|a| a != network.output_activation()),
        ),
        ("--loss", args.loss.is_some_and(|l| l != network.loss())),
        (
            "--standardize",
            args.standardize && schema.standardize.is_none(),
        ),
        (
            "--target",
            args.target.as_ref().is_some_and(|t| *t != schema.target),
        ),
        (
            if args.features.is_empty() {
                "--ignore"
            } else {
                "--features"
            },
            features_differ()?,
        ),
    ];
    if let Some((option, _)) = conflicts.iter().find(|(_, conflict)| *conflict) {
        bail!(
            "{option} differs from the model given to --init (network {network}, {} loss, {}{}); leave it out",
            network.loss(),
            schema.describe_inputs(),
            if schema.standardize.is_some() {
                ", standardized"
            } else {
                ""
            }
        );
    }
    Ok(())
}
