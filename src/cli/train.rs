//! `train`: a network on a built-in dataset or a CSV file, on the GPU or the CPU reference, with a summary,
//! an optional held-out part, and the model saved for `predict` or for more training.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use wgmlp::bench::millis;
use wgmlp::cpu::Evaluation;
use wgmlp::data::{Builtin, Schema, Table, accuracy, class_of, split};
use wgmlp::engine::Chosen;
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
    /// A built-in dataset (xor, moons, circles, spirals) or a CSV file with a header row
    #[arg(long)]
    dataset: String,

    /// The CSV column to predict [default: the last]
    #[arg(long)]
    target: Option<String>,

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

    /// Learning rate [default: 0.1 for sgd, 0.01 for adam]; a list such as 0.01,0.03,0.1 trains --runs runs
    /// at each
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

    /// Hidden activation: sigmoid, tanh, relu, leaky_relu, identity [default: sigmoid with sse, else tanh]
    #[arg(long)]
    activation: Option<Activation>,

    /// Output activation: sigmoid, softmax, identity [default: the one the loss needs; sigmoid for sse]
    #[arg(long)]
    output_activation: Option<Activation>,

    /// Loss: sse, mse, bce, ce [default: sse for xor, bce for moons and circles, ce for spirals, mse for CSV]
    #[arg(long)]
    loss: Option<Loss>,

    /// Optimizer: sgd or adam
    #[arg(long, default_value = "sgd")]
    optimizer: String,

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
    /// software one (llvmpipe, WARP) and the network too large for the fused engine, which the CPU path
    /// then trains many times faster
    #[arg(long, value_enum, default_value_t = TrainBackend::Auto)]
    backend: TrainBackend,

    /// Fraction of the rows held out to test on
    #[arg(long, default_value_t = 0.0, value_parser = super::parse_f32)]
    test_split: f32,

    /// Scale each feature to mean 0 and deviation 1 (the statistics are saved with the model)
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

    /// Draw the loss curve to this PNG file, and for two features the decision regions with the points
    #[arg(long)]
    plot: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum TrainBackend {
    Auto,
    Gpu,
    Cpu,
}

pub fn run(args: &TrainArgs, json: bool) -> anyhow::Result<()> {
    let job = Job::prepare(args)?;
    let Job {
        network, config, ..
    } = &job;
    let setup = Instant::now();
    if args.backend == TrainBackend::Cpu && args.engine != Engine::Auto {
        bail!(
            "--engine {} runs on the GPU; leave it out with --backend cpu",
            args.engine
        )
    }
    // An engine asked for by name needs the GPU.
    let backend = match args.backend {
        TrainBackend::Auto if args.engine != Engine::Auto => TrainBackend::Gpu,
        backend => backend,
    };
    let mut note = None;
    let mut gpu = match backend {
        TrainBackend::Gpu => Some(pollster::block_on(Gpu::new())?),
        TrainBackend::Cpu => None,
        TrainBackend::Auto => match pollster::block_on(Gpu::new()) {
            Err(e @ Error::NoAdapter { .. }) => {
                note = Some(format!("{e}; training on the CPU"));
                None
            }
            opened => Some(opened?),
        },
    };
    // Before the weights are drawn, so that a network that can never fit fails at once.
    let runs = job.lrs.len() * args.runs as usize;
    let rows = job.train_set.rows;
    let on_gpu = Trainer::choose(gpu.as_ref(), args.engine, network, rows, config, runs);
    let cpu_can = || Trainer::choose(None, Engine::Auto, network, rows, config, runs).is_ok();
    // Auto takes the CPU where the adapter cannot train the network at all, and where it is a software one
    // that would run the layered engine, which the CPU path outruns many times over.
    let to_cpu = match (&gpu, &on_gpu) {
        (Some(gpu), Err(e)) if backend == TrainBackend::Auto && cpu_can() => Some(format!(
            "{} cannot train this network ({e}): training on the CPU",
            gpu.adapter().name
        )),
        (Some(gpu), Ok(Chosen::Layered))
            if backend == TrainBackend::Auto && gpu.is_software() && cpu_can() =>
        {
            Some(format!(
                "{} is a software adapter (the CPU emulates a GPU): training on the CPU, which is \
                 faster here for a network the fused engine cannot hold; --backend gpu trains on the \
                 adapter",
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
    let engine = args.engine;
    let init_params = job.init.as_ref().map(|m| &m.params[..]);
    let starts = sweep::starts(
        network,
        init_params,
        *config,
        args.seed,
        &job.lrs,
        args.runs as usize,
    );
    let (seeds, starts): (Vec<u64>, Vec<Start>) = starts.into_iter().unzip();
    let mut trainer = Trainer::new(gpu.as_ref(), engine, network, &starts, &job.train_set)
        .map_err(super::layers_error(network))?;
    let checkpoint = job.init.as_ref().and_then(|m| m.checkpoint.as_ref());
    let resumed = checkpoint.filter(|c| c.config() == *config);
    if let Some(checkpoint) = resumed {
        trainer.resume(checkpoint.epoch, &checkpoint.state)?;
    }
    let setup_ms = millis(setup.elapsed());

    let quiet = args.quiet || json;
    if !quiet {
        if let Some(adapter) = gpu.as_ref().map(Gpu::adapter) {
            say!("adapter: {adapter}")?;
        }
        if let Some(note) = &note {
            say!("note: {note}")?;
        }
        let start = match (&job.init, resumed) {
            (_, Some(c)) => format!(" · resuming after epoch {}", c.epoch),
            (Some(_), None) => " · fine-tuning the --init model".into(),
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
        say!(
            "network {network} · {} hidden · {} output · {} loss · {} · lr {}{schedule}{runs} · {} engine · {} training rows, {} held out{start}",
            network.hidden_activation(),
            network.output_activation(),
            network.loss(),
            config.optimizer.name(),
            lrs.join(","),
            trainer.engine().name(),
            job.train_set.rows,
            job.test_set.rows,
        )?;
    }

    let first_epoch = trainer.epoch();
    let start_loss = job.start_loss(&starts[0])?;
    let (progress, curve, timing) = job.train(&mut trainer, start_loss, quiet)?;
    let (train_ms, measure_ms) = (millis(timing.training), millis(timing.measuring));
    let outcomes: Vec<Outcome> = progress
        .iter()
        .zip(seeds.iter().zip(&starts))
        .map(|(progress, (&seed, start))| Outcome::new(seed, start.config.lr, progress))
        .collect();
    let best = sweep::best(&outcomes);
    let best_config = starts[best].config;
    let evaluation = trainer.evaluate(best)?;
    let final_params = trainer.params(best)?;
    // A NaN can hide behind a finite loss (a relu layer that is never active passes nothing on), and a
    // bounded output can hide a step that overshot.
    let not_finite = final_params.iter().position(|v| !v.is_finite());
    let saturated = || saturation(network, start_loss, evaluation.loss, &evaluation.outputs);
    let why = not_finite
        .map(|i| format!("parameter {i} became {}", final_params[i]))
        .or_else(|| (!job.sweeps()).then(saturated).flatten());
    if let Some(what) = why {
        return Err(Error::Diverged {
            epoch: trainer.epoch(),
            what,
            lr: best_config.lr,
        }
        .into());
    }
    let test = (job.test_set.rows > 0)
        .then(|| wgmlp::cpu::evaluate(network, &final_params, &job.test_set))
        .transpose()?;

    let mut model = Model {
        network: network.clone(),
        params: final_params,
        schema: job.schema.clone(),
        checkpoint: None,
    };
    if let Some(path) = &args.plot {
        plot(
            path,
            &curve.of_run(best),
            &model,
            &job.train_table,
            &job.train_set,
        )
        .with_context(|| format!("--plot {}", path.display()))?;
        if !quiet {
            say!("plotted {}", path.display())?;
        }
    }
    if let Some(path) = &args.save {
        model.checkpoint = Some(Checkpoint {
            epoch: trainer.epoch(),
            lr: best_config.lr,
            optimizer: best_config.optimizer,
            schedule: best_config.schedule,
            batch_size: best_config.batch_size,
            shuffle_seed: best_config.shuffle_seed,
            state: trainer.optimizer_state(best)?,
        });
        model
            .save(path)
            .with_context(|| format!("--save {}", path.display()))?;
        if !quiet {
            let which = if job.sweeps() {
                format!(
                    " (the best run: seed {}, lr {})",
                    seeds[best], best_config.lr
                )
            } else {
                String::new()
            };
            say!("saved {}{which}", path.display())?;
        }
    }

    let (loss, outputs) = (network.loss(), network.outputs());
    if json {
        let summary = json!({
            "backend": if gpu.is_some() { "gpu" } else { "cpu" },
            "note": note,
            "engine": trainer.engine().name(),
            "adapter": gpu.as_ref().map(Gpu::adapter),
            "dataset": args.dataset,
            "layers": network.sizes(),
            "loss": loss.name(),
            "optimizer": config.optimizer.name(),
            "lr_schedule": config.schedule.to_string(),
            "epochs": trainer.epoch(),
            "final_loss": evaluation.loss,
            "train_accuracy": accuracy(loss, &evaluation.outputs, &job.train_set.targets, outputs),
            "test_loss": test.as_ref().map(|t| t.loss),
            "test_accuracy": test.as_ref().and_then(|t| accuracy(loss, &t.outputs, &job.test_set.targets, outputs)),
            "train_rows": job.train_set.rows,
            "test_rows": job.test_set.rows,
            "setup_ms": setup_ms,
            "train_ms": train_ms,
            "measure_ms": measure_ms,
            "best_run": best,
            "runs": outcomes,
        });
        say!("{summary:#}")?;
    } else {
        let epochs = trainer.epoch() - first_epoch;
        if job.sweeps() {
            say!(
                "trained {} runs of {epochs} epochs in {train_ms:.0} ms (measuring {measure_ms:.0} ms apart)",
                outcomes.len()
            )?;
            for line in sweep::summary(&outcomes) {
                say!("  {line}")?;
            }
            say!(
                "best run (seed {}, lr {}): {}",
                seeds[best],
                best_config.lr,
                describe(&evaluation, &job.train_set, network)
            )?;
        } else {
            say!(
                "trained {epochs} epochs in {train_ms:.0} ms (measuring {measure_ms:.0} ms apart): {}",
                describe(&evaluation, &job.train_set, network)
            )?;
        }
        if let Some(test) = &test {
            say!("held out: {}", describe(test, &job.test_set, network))?;
        }
    }
    Ok(())
}

/// Everything a run needs before it touches a device: the data split and scaled, the network, the settings.
struct Job<'a> {
    args: &'a TrainArgs,
    init: Option<Model>,
    network: Network,
    schema: Schema,
    /// The first run's settings; runs of a sweep differ from it in the learning rate and the seed.
    config: TrainConfig,
    lrs: Vec<f32>,
    train_table: Table,
    train_set: Dataset,
    test_set: Dataset,
}

impl<'a> Job<'a> {
    fn prepare(args: &'a TrainArgs) -> anyhow::Result<Self> {
        let builtin = Builtin::parse(&args.dataset);
        let dataset = PathBuf::from(&args.dataset);
        let inputs: Vec<(&str, &PathBuf)> = builtin
            .is_none()
            .then_some(("--dataset", &dataset))
            .into_iter()
            .chain(args.init.as_ref().map(|init| ("--init", init)))
            .collect();
        let outputs = [
            ("--save", args.save.as_ref()),
            ("--plot", args.plot.as_ref()),
            ("--export", args.export.as_ref()),
        ];
        super::check_outputs_spare_inputs(&inputs, &outputs)?;
        let table = match builtin {
            Some(builtin) => builtin.generate(args.samples, args.noise, args.classes, args.seed)?,
            None => Table::read_csv(args.dataset.as_ref())?,
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
                check_matches_model(args, model)?;
                (model.network.clone(), model.schema.clone())
            }
            None => design(args, builtin, &table)?,
        };
        let (train_rows, test_rows) = split(table.rows.len(), args.test_split, args.seed)?;
        let (train_table, test_table) = (table.select(&train_rows), table.select(&test_rows));
        if init.is_none() && args.standardize {
            schema.fit_standardize(&train_table)?;
        }
        let optimizer = Optimizer::parse(&args.optimizer, args.momentum, args.weight_decay)?;
        let default_lr = if matches!(optimizer, Optimizer::Adam { .. }) {
            0.01
        } else {
            0.1
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
        Ok(Job {
            train_set: schema.dataset(&train_table, network.loss())?,
            test_set: schema.dataset(&test_table, network.loss())?,
            args,
            init,
            network,
            schema,
            config,
            lrs,
            train_table,
        })
    }

    /// Whether more than one run trains.
    fn sweeps(&self) -> bool {
        self.args.runs > 1 || self.lrs.len() > 1
    }

    /// Trains `--epochs` more epochs, checking the loss as it goes; gives every run's last check and the
    /// curve of all checks.
    /// The loss of the first run before training: what divergence is measured against.
    fn start_loss(&self, first: &Start) -> anyhow::Result<f64> {
        let loss = wgmlp::cpu::evaluate(&self.network, &first.params, &self.train_set)?.loss;
        if !loss.is_finite() {
            return Err(self.diverged(0, format!("the loss is {loss} before any training")));
        }
        Ok(loss)
    }

    /// The error for a run that diverged: where the data holds values whose square overflows f32, they are
    /// the cause, not the learning rate.
    fn diverged(&self, epoch: u64, what: String) -> anyhow::Error {
        let largest = self
            .train_set
            .inputs
            .iter()
            .chain(&self.train_set.targets)
            .fold(0.0f32, |m, v| m.max(v.abs()));
        if largest > f32::MAX.sqrt() {
            return anyhow::anyhow!(
                "training diverged by epoch {epoch}: {what}: values as large as {largest:e} in {} overflow \
                 single precision (f32) once squared; scale the features (--standardize) or the target",
                self.train_table.source
            );
        }
        Error::Diverged {
            epoch,
            what,
            lr: self.config.lr,
        }
        .into()
    }

    fn train(
        &self,
        trainer: &mut Trainer,
        start_loss: f64,
        quiet: bool,
    ) -> anyhow::Result<(Vec<Progress>, Curve, Timing)> {
        let args = self.args;
        let first_epoch = trainer.epoch();
        let last_epoch = first_epoch.checked_add(args.epochs).ok_or_else(|| {
            anyhow::anyhow!(
                "--epochs {} on top of {first_epoch} trained ones is too many",
                args.epochs
            )
        })?;
        // The loss is checked at least a hundred times a run, so that a divergence is caught near where it
        // happened and the progress bar and the plot have points to show. The engines measure it on the
        // device where they can; the fused engine reads back three numbers a run.
        let every = args.log_every.unwrap_or(args.epochs.div_ceil(100));
        let bar = progress_bar(args.epochs, quiet);
        let mut curve = Curve::default();
        let mut timing = Timing::default();
        loop {
            let now = every.min(last_epoch - trainer.epoch());
            let started = Instant::now();
            trainer.train(now as usize)?;
            let trained = Instant::now();
            timing.training += trained - started;
            let progress = trainer.progress()?;
            let epoch = trainer.epoch();
            let diverged = divergence(start_loss, progress[0].loss).filter(|_| !self.sweeps());
            if let Some(what) = diverged {
                bar.abandon();
                return Err(self.diverged(epoch, what));
            }
            let status = self.status(&progress);
            bar.set_position(epoch - first_epoch);
            bar.set_message(status.clone());
            if args.log_every.is_some() && !quiet {
                // A hidden bar swallows its println.
                let line = format!("epoch {epoch}: {status}");
                if bar.is_hidden() {
                    say!("{line}")?
                } else {
                    bar.println(line)
                }
            }
            if args.plot.is_some() {
                // The held-out curve is drawn for a single run.
                let test = (self.test_set.rows > 0 && !self.sweeps()).then(|| {
                    wgmlp::cpu::evaluate(&self.network, &trainer.params(0)?, &self.test_set)
                });
                let losses = progress.iter().map(|p| p.loss).collect();
                curve.push(epoch, losses, test.transpose()?.map(|t| t.loss));
            }
            timing.measuring += trained.elapsed();
            if epoch >= last_epoch {
                bar.finish_and_clear();
                return Ok((progress, curve, timing));
            }
        }
    }

    /// "loss 0.123, accuracy 97.5%" for one run; for a sweep, how many have converged and the best loss.
    fn status(&self, progress: &[Progress]) -> String {
        if let [one] = progress {
            return match one.accuracy {
                Some(acc) => format!("loss {:.6}, accuracy {:.1}%", one.loss, 100.0 * acc),
                None => format!("loss {:.6}", one.loss),
            };
        }
        let converged = progress.iter().filter(|p| p.converged()).count();
        let best = progress
            .iter()
            .map(|p| p.loss)
            .filter(|l| !l.is_nan())
            .fold(f64::INFINITY, f64::min);
        format!(
            "{converged} of {} converged, best loss {best:.6}",
            progress.len()
        )
    }
}

/// Where a run's time went: training (every engine waits for its device before this is read), and
/// measuring the loss at the log points, with the held-out evaluation and the readbacks.
#[derive(Default)]
struct Timing {
    training: std::time::Duration,
    measuring: std::time::Duration,
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

/// The losses the plot draws: one point per check, of every run.
#[derive(Default)]
struct Curve {
    epochs: Vec<u64>,
    /// Per check, every run's loss.
    train: Vec<Vec<f64>>,
    test: Vec<f64>,
}

/// One run's curve.
struct RunCurve {
    epochs: Vec<u64>,
    train: Vec<f64>,
    test: Vec<f64>,
}

impl Curve {
    fn push(&mut self, epoch: u64, train: Vec<f64>, test: Option<f64>) {
        self.epochs.push(epoch);
        self.train.push(train);
        self.test.extend(test);
    }

    fn of_run(&self, run: usize) -> RunCurve {
        RunCurve {
            epochs: self.epochs.clone(),
            train: self.train.iter().map(|losses| losses[run]).collect(),
            test: self.test.clone(),
        }
    }
}

/// The loss curve, and for a classifier of two features its decision regions over the training points.
fn plot(
    path: &std::path::Path,
    curve: &RunCurve,
    model: &Model,
    table: &Table,
    data: &Dataset,
) -> anyhow::Result<()> {
    let loss_curve = LossCurve {
        epochs: &curve.epochs,
        train: &curve.train,
        test: (!curve.test.is_empty()).then_some(&curve.test[..]),
    };
    let network = &model.network;
    let (Some(classes), 2) = (&model.schema.classes, network.inputs()) else {
        return Ok(plot::draw(path, &loss_curve, None)?);
    };
    let loss = network.loss();
    let raw = model.schema.raw_features(table)?;
    let (x1, x2): (Vec<f32>, Vec<f32>) = raw.chunks(2).map(|p| (p[0], p[1])).unzip();
    let class_of = |row: &[f32]| class_of(loss, row).expect("a classifier's rows have a class");
    let class: Vec<usize> = data
        .targets
        .chunks(network.outputs())
        .map(class_of)
        .collect();
    let points = Points {
        x1: &x1,
        x2: &x2,
        class: &class,
        classes: classes.len(),
    };
    let classify = |grid: &[f32]| -> wgmlp::Result<Vec<usize>> {
        let outputs = model.predict(&model.schema.standardized(grid.to_vec()), grid.len() / 2)?;
        Ok(outputs.chunks(network.outputs()).map(class_of).collect())
    };
    Ok(plot::draw(path, &loss_curve, Some((&points, &classify)))?)
}

/// "loss 0.123, accuracy 97.5%" for a classifier, "loss 0.123" otherwise.
fn describe(evaluation: &Evaluation, data: &Dataset, network: &Network) -> String {
    match accuracy(
        network.loss(),
        &evaluation.outputs,
        &data.targets,
        network.outputs(),
    ) {
        Some(acc) => format!("loss {:.6}, accuracy {:.1}%", evaluation.loss, 100.0 * acc),
        None => format!("loss {:.6}", evaluation.loss),
    }
}

/// The network and schema from the options and the data, with defaults that suit the dataset.
fn design(
    args: &TrainArgs,
    builtin: Option<Builtin>,
    table: &Table,
) -> anyhow::Result<(Network, Schema)> {
    let loss = args.loss.unwrap_or(match builtin {
        Some(Builtin::Xor) => Loss::Sse,
        Some(Builtin::Moons | Builtin::Circles) => Loss::Bce,
        Some(Builtin::Spirals) => Loss::Ce,
        None => Loss::Mse,
    });
    let schema = Schema::infer(table, args.target.as_deref(), loss)?;
    schema.check_classes(loss)?;
    let (inputs, outputs) = (schema.features.len(), schema.outputs(loss));
    let sizes = match &args.layers {
        Some(text) => Network::parse_sizes(text)?,
        None if builtin == Some(Builtin::Xor) => vec![2, 3, 1],
        None => vec![inputs, 16, 16, outputs],
    };
    let (first, last) = (sizes[0], sizes[sizes.len() - 1]);
    if first != inputs || last != outputs {
        let features = schema.features.join(", ");
        bail!(
            "--layers {}: the data has {inputs} feature(s) ({features}) and needs {outputs} output(s) for the {loss} loss, \
             so the first size must be {inputs} and the last {outputs}",
            args.layers.as_deref().unwrap_or_default()
        );
    }
    let hidden = args.activation.unwrap_or(if loss == Loss::Sse {
        Activation::Sigmoid
    } else {
        Activation::Tanh
    });
    let output = args.output_activation.unwrap_or(match loss {
        Loss::Sse | Loss::Bce => Activation::Sigmoid,
        Loss::Ce => Activation::Softmax,
        Loss::Mse => Activation::Identity,
    });
    Ok((Network::build(sizes, hidden, output, loss)?, schema))
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
            c.config()
                == TrainConfig {
                    schedule,
                    ..*config
                }
        })
    });
    let first_epoch = resumes.map_or(0, |c| c.epoch);
    Ok(ending_at(first_epoch.saturating_add(args.epochs))?)
}

/// With --init the model fixes the architecture; options that would change it are an error, not ignored.
fn check_matches_model(args: &TrainArgs, model: &Model) -> anyhow::Result<()> {
    let network = &model.network;
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
        ("--standardize", args.standardize),
        (
            "--target",
            args.target
                .as_ref()
                .is_some_and(|t| *t != model.schema.target),
        ),
    ];
    if let Some((option, _)) = conflicts.iter().find(|(_, conflict)| *conflict) {
        bail!(
            "{option} differs from the model given to --init (network {network}, {} loss); leave it out",
            network.loss()
        );
    }
    Ok(())
}
