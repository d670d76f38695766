//! One playground session: the page's settings turned into the `wgmlp train` command they stand for, and a
//! thread that trains that command's run a chunk at a time, publishing a frame (epoch, losses, decision
//! regions) after each chunk.
//!
//! The settings go through `train`'s own option parser and `Job`, so the page gets the command line's
//! defaults and errors, and "Copy command" reproduces the run exactly.

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{oneshot, watch};
use wgmlp::data::{Builtin, Table, class_of};
use wgmlp::plot::Grid;
use wgmlp::train::divergence;
use wgmlp::{Gpu, Start, Trainer};

use crate::cli::sweep;
use crate::cli::train::{Job, Snapshot, TrainArgs, choose_device};

/// The options the page may set, as `train` spells them. Nothing that names a file on the server
/// (--save, --init, --export, --plot, --validation) is among them: the only data is what the page uploads.
const OPTIONS: &[&str] = &[
    "dataset",
    "samples",
    "noise",
    "classes",
    "test_split",
    "target",
    "features",
    "layers",
    "activation",
    "output_activation",
    "loss",
    "optimizer",
    "momentum",
    "weight_decay",
    "lr",
    "batch_size",
    "seed",
    "runs",
    "backend",
    "engine",
];

/// What the playground trains at most: points to generate, runs of a sweep, parameters of a network. The page
/// is for small networks, and a setting beyond these would tie up the machine, not teach anything.
const MAX_SAMPLES: usize = 10_000;
const MAX_RUNS: usize = 1024;
const MAX_PARAMETERS: usize = 100_000;

/// Cells per side of the grid on which the page draws decision regions: coarse, since it is sent several
/// times a second (the page smooths it).
pub(super) const GRID_SIDE: usize = 32;

/// How many runs of a sweep have their regions drawn, as small multiples.
const SHOWN_RUNS: usize = 6;

/// Points of the loss curve kept; beyond it every other one is dropped (the first kept), so a long run's
/// frames stay small.
const CURVE_POINTS: usize = 512;

/// How often a running session publishes a frame.
const TICK: Duration = Duration::from_millis(100);

/// A running session with nobody watching it (its page closed) pauses after this long.
const UNWATCHED: Duration = Duration::from_secs(5);

/// The request that creates a session: `train`'s options by name (without dashes), and a CSV file where
/// `dataset` is not a built-in one.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub settings: BTreeMap<String, String>,
    pub upload: Option<Upload>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upload {
    pub name: String,
    pub csv: String,
}

/// What the page asks of a session.
pub enum Command {
    /// Train on, `epochs_per_second` at most (as fast as the device goes without it).
    Start {
        epochs_per_second: Option<f64>,
    },
    Pause,
    /// Train one epoch and stop.
    Step,
    /// Back to the first epoch, from the same weights.
    Reset,
    /// The model as `train --save` writes it.
    Save(oneshot::Sender<Result<Vec<u8>, String>>),
}

/// The `train` command line of a request: the options in the order given by [`OPTIONS`], and the uploaded
/// table where there is one, read in memory.
pub struct Plan {
    options: Vec<(&'static str, String)>,
    upload: Option<Table>,
}

impl Plan {
    pub fn new(request: Request) -> anyhow::Result<Plan> {
        let Request {
            mut settings,
            upload,
        } = request;
        if let Some(unknown) = settings.keys().find(|k| !OPTIONS.contains(&k.as_str())) {
            bail!(
                "unknown setting {}; the playground takes {}",
                wgmlp::quote(unknown),
                OPTIONS.join(", ")
            );
        }
        settings.retain(|_, value| !value.trim().is_empty());
        for (option, limit) in [("samples", MAX_SAMPLES), ("runs", MAX_RUNS)] {
            let too_many = |v: &String| v.trim().parse::<usize>().is_ok_and(|n| n > limit);
            if let Some(value) = settings.get(option).filter(|v| too_many(v)) {
                bail!("--{option} {value}: the playground takes at most {limit}");
            }
        }
        let dataset = settings.get("dataset").map(String::as_str).unwrap_or("");
        let upload = match (Builtin::parse(dataset), upload) {
            (Some(_), None) => None,
            (Some(_), Some(_)) => bail!(
                "dataset {} is a built-in one, but a file was uploaded too; choose one or the other",
                wgmlp::quote(dataset)
            ),
            (None, None) => bail!(
                "dataset {}: choose xor, moons, circles or spirals, or upload a CSV file",
                wgmlp::quote(dataset)
            ),
            (None, Some(upload)) => {
                let name = file_name(&upload.name);
                let table = Table::parse(upload.csv.as_bytes(), &name, None)?;
                settings.insert("dataset".into(), name);
                Some(table)
            }
        };
        let options = OPTIONS
            .iter()
            .filter_map(|&option| settings.remove(option).map(|value| (option, value)))
            .collect();
        Ok(Plan { options, upload })
    }

    /// The arguments after `wgmlp train`, `--option=value` each (so that a value never reads as an option).
    fn args(&self) -> impl Iterator<Item = String> + '_ {
        let options = self.options.iter();
        options.map(|(option, value)| format!("--{}={value}", option.replace('_', "-")))
    }

    /// The command that trains this run for `epochs` epochs and saves it, for a shell.
    fn command(&self, epochs: u64) -> String {
        let mut words = vec!["wgmlp".to_string(), "train".to_string()];
        for (option, value) in &self.options {
            words.push(format!("--{}", option.replace('_', "-")));
            words.push(shell_word(value));
        }
        words.push(format!("--epochs {}", epochs.max(1)));
        words.push("--save model.safetensors".into());
        words.join(" ")
    }
}

/// An uploaded file's name as the command line shows it: its last component, with only letters, digits and
/// `._-` (others become `_`), never a built-in dataset's name nor an option.
fn file_name(uploaded: &str) -> String {
    let last = uploaded.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last
        .chars()
        .map(|c| match c.is_ascii_alphanumeric() || "._-".contains(c) {
            true => c,
            false => '_',
        })
        .collect();
    let cleaned = cleaned.trim_start_matches(['-', '.']);
    match cleaned.is_empty() || Builtin::parse(cleaned).is_some() {
        true => "upload.csv".to_string(),
        false => cleaned.to_string(),
    }
}

/// A value quoted for a POSIX shell where it holds anything beyond a plain word.
fn shell_word(value: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "._,:+-/=".contains(c);
    if value.chars().all(plain) {
        value.to_string()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

/// `train`'s options, parsed as the command line parses them.
#[derive(Parser)]
#[command(name = "wgmlp train", allow_negative_numbers = true)]
pub(super) struct TrainCommand {
    #[command(flatten)]
    pub(super) args: TrainArgs,
}

/// Opens (once) the GPU adapter that sessions share.
pub type SharedGpu = fn() -> wgmlp::Result<&'static Gpu>;

/// A session as the server holds it: where to send commands, and the frames (JSON) its thread publishes.
pub struct Session {
    commands: Mutex<Sender<Command>>,
    frames: Arc<watch::Sender<String>>,
}

impl Session {
    /// Starts a session's thread for `plan` and waits until it is ready to train. The reply is what the page
    /// draws once (the network, the points, the grid), or the error that stopped it, as `train` words it.
    pub async fn start(plan: Plan, gpu: SharedGpu) -> anyhow::Result<(Session, serde_json::Value)> {
        let (ready, is_ready) = oneshot::channel();
        let (commands, received) = std::sync::mpsc::channel();
        let frames = Arc::new(watch::channel(String::new()).0);
        let published = Arc::clone(&frames);
        std::thread::Builder::new()
            .name("playground session".into())
            .spawn(move || run(plan, gpu, ready, &received, &published))
            .context("cannot start a session's thread")?;
        let introduction = is_ready
            .await
            .context("the session's thread ended before it was ready")??;
        let commands = Mutex::new(commands);
        Ok((Session { commands, frames }, introduction))
    }

    /// Sends `command`; false where the session's thread has ended.
    pub fn send(&self, command: Command) -> bool {
        let commands = (self.commands.lock()).expect("sending a command cannot panic");
        commands.send(command).is_ok()
    }

    /// The frames from the latest on, for one page.
    pub fn watch(&self) -> watch::Receiver<String> {
        self.frames.subscribe()
    }

    /// Whether a page is watching.
    pub fn watched(&self) -> bool {
        self.frames.receiver_count() > 0
    }
}

/// A session's thread: prepares the run (answering `ready`), then serves commands until the session is
/// dropped.
fn run(
    mut plan: Plan,
    gpu: SharedGpu,
    ready: oneshot::Sender<anyhow::Result<serde_json::Value>>,
    commands: &Receiver<Command>,
    frames: &watch::Sender<String>,
) {
    let upload = plan.upload.take();
    let args = match parse(&plan) {
        Ok(args) => args,
        Err(error) => return drop(ready.send(Err(error))),
    };
    let lab = Lab::new(&plan, &args, upload, gpu);
    let first = lab.and_then(|mut lab| {
        let frame = lab.frame(&State::default())?;
        Ok((lab, frame))
    });
    match first {
        Ok((mut lab, frame)) => {
            frames.send_replace(frame);
            if ready.send(Ok(lab.introduction.take())).is_ok() {
                lab.serve(commands, frames);
            }
        }
        Err(error) => drop(ready.send(Err(error))),
    }
}

/// `train`'s options from the plan, parsed as the command line parses them; an error is clap's first line.
fn parse(plan: &Plan) -> anyhow::Result<TrainArgs> {
    let argv = ["wgmlp train".to_string()].into_iter().chain(plan.args());
    TrainCommand::try_parse_from(argv)
        .map(|command| command.args)
        .map_err(|error| {
            let text = error.render().to_string();
            let first = text.lines().next().unwrap_or_default();
            anyhow::anyhow!("{}", first.trim_start_matches("error: "))
        })
}

/// Where a session's training stands between frames.
#[derive(Default)]
struct State {
    running: bool,
    /// Epochs per second between the last two frames.
    rate: f64,
    /// Why training stopped, where it stopped on its own (a divergence, a device error).
    error: Option<String>,
}

/// The run a session trains, with what its frames show.
struct Lab<'a> {
    plan: &'a Plan,
    job: Job<'a>,
    gpu: Option<&'static Gpu>,
    seeds: Vec<u64>,
    starts: Vec<Start>,
    trainer: Trainer<'static>,
    start_loss: f64,
    grid: Grid,
    /// What the page draws once; taken when the session is ready.
    introduction: serde_json::Value,
    /// The loss at points along the run: epoch, training rows' loss, held-out rows' loss.
    curve: Vec<(u64, f64, Option<f64>)>,
}

impl<'a> Lab<'a> {
    fn new(
        plan: &'a Plan,
        args: &'a TrainArgs,
        upload: Option<Table>,
        gpu: SharedGpu,
    ) -> anyhow::Result<Lab<'a>> {
        let job = Job::prepare(args, |path| {
            upload.ok_or_else(|| {
                wgmlp::Error::invalid("dataset", path.display(), "upload the CSV file with it")
            })
        })?;
        let (network, schema) = (&job.network, &job.schema);
        if schema.inputs() != 2 {
            bail!(
                "the playground draws two inputs, but the data has {}; choose two columns with --features",
                schema.describe_inputs()
            );
        }
        let parameters = network.layout().len;
        if parameters > MAX_PARAMETERS {
            bail!(
                "--layers {network} has {parameters} parameters; the playground trains at most {MAX_PARAMETERS}"
            );
        }
        let (gpu, note) = choose_device(args, &job, gpu)?;
        let (seeds, starts): (Vec<u64>, Vec<Start>) = job.starts().into_iter().unzip();
        let trainer = job.trainer(gpu, &starts)?;
        let start_loss = job.start_loss(&starts[0])?;

        // Every row as a point: its raw features, what it is coloured by (its target for one output, else
        // its class), and whether it is held out.
        let outputs = network.outputs();
        let (mut x1, mut x2, mut value, mut held_out) = (vec![], vec![], vec![], vec![]);
        for (table, set, held) in job.parts() {
            let raw = schema.raw_features(table)?;
            x1.extend(raw.chunks(2).map(|p| p[0]));
            x2.extend(raw.chunks(2).map(|p| p[1]));
            value.extend(set.targets.chunks(outputs).map(|row| match row {
                [target] => *target,
                row => class_of(wgmlp::Loss::Ce, row).unwrap_or_default() as f32,
            }));
            held_out.extend(std::iter::repeat_n(held, set.rows));
        }
        let grid = Grid::around(&x1, &x2, GRID_SIDE);
        let (low, high) =
            (value.iter()).fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        let introduction = json!({
            "network": network.to_string(),
            "parameters": parameters,
            "hidden_activation": network.hidden_activation().to_string(),
            "output_activation": network.output_activation().to_string(),
            "loss": network.loss().name(),
            "optimizer": job.config.optimizer.name(),
            "engine": trainer.engine().name(),
            "device": gpu.map_or("the CPU".to_string(), |gpu| gpu.adapter().to_string()),
            "note": note,
            "runs": starts.len(),
            "train_rows": job.train_set.rows,
            "held_out_rows": job.test_set.rows,
            "outputs": outputs,
            "classes": schema.classes,
            "grid": grid,
            "range": [low, high],
            "points": { "x1": x1, "x2": x2, "value": value, "held_out": held_out },
        });
        Ok(Lab {
            plan,
            job,
            gpu,
            seeds,
            starts,
            trainer,
            start_loss,
            grid,
            introduction,
            curve: Vec::new(),
        })
    }

    /// Answers commands and trains while running, a frame after each chunk of epochs, until the session is
    /// dropped.
    fn serve(&mut self, commands: &Receiver<Command>, frames: &watch::Sender<String>) {
        let mut state = State::default();
        let mut speed = None;
        // Epochs a chunk, at full speed: grown or shrunk so that a chunk takes about a tick.
        let mut chunk = 1usize;
        let mut next_tick = Instant::now();
        let mut last_frame = (Instant::now(), self.trainer.epoch());
        let mut unwatched_since: Option<Instant> = None;
        loop {
            let received = match state.running {
                true => commands.recv_timeout(next_tick.saturating_duration_since(Instant::now())),
                false => commands.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            let outcome = match received {
                Err(RecvTimeoutError::Disconnected) => return,
                Ok(Command::Save(reply)) => {
                    let _ = reply.send(self.model_bytes().map_err(|e| format!("{e:#}")));
                    continue;
                }
                Ok(Command::Start { epochs_per_second }) => {
                    speed = epochs_per_second.filter(|r| r.is_finite() && *r > 0.0);
                    state.running = state.error.is_none();
                    next_tick = Instant::now();
                    last_frame = (Instant::now(), self.trainer.epoch());
                    Ok(())
                }
                Ok(Command::Pause) => {
                    state.running = false;
                    Ok(())
                }
                Ok(Command::Step) => {
                    state.running = false;
                    match state.error {
                        None => self.train(1),
                        Some(_) => Ok(()),
                    }
                }
                Ok(Command::Reset) => {
                    state = State::default();
                    self.reset()
                }
                Err(RecvTimeoutError::Timeout) => {
                    let epochs = match speed {
                        Some(rate) => (rate * TICK.as_secs_f64()).round().max(1.0) as usize,
                        None => chunk,
                    };
                    let began = Instant::now();
                    let trained = self.train(epochs);
                    let took = began.elapsed();
                    next_tick = match speed {
                        Some(rate) => began + Duration::from_secs_f64(epochs as f64 / rate),
                        None => {
                            if took < TICK / 2 {
                                chunk = chunk.saturating_mul(2);
                            } else if took > TICK && chunk > 1 {
                                chunk /= 2;
                            }
                            Instant::now()
                        }
                    };
                    let (then, epoch) = last_frame;
                    let epoch_now = self.trainer.epoch();
                    state.rate = (epoch_now - epoch) as f64 / then.elapsed().as_secs_f64();
                    last_frame = (Instant::now(), epoch_now);
                    trained
                }
            };
            if let Err(error) = outcome {
                state.running = false;
                state.error = Some(format!("{error:#}"));
            }
            match self.frame(&state) {
                Ok(frame) => frames.send_replace(frame),
                Err(error) => {
                    state.running = false;
                    state.error = Some(format!("{error:#}"));
                    frames.send_replace(self.error_frame(&state))
                }
            };
            // A page that closed leaves no one watching: its session stops using the machine.
            let unwatched = frames.receiver_count() == 0;
            unwatched_since = unwatched.then(|| unwatched_since.unwrap_or_else(Instant::now));
            if unwatched_since.is_some_and(|since| since.elapsed() > UNWATCHED) {
                state.running = false;
            }
        }
    }

    /// Trains every run `epochs` more epochs; an error where a single run diverged, as `train` gives it.
    fn train(&mut self, epochs: usize) -> anyhow::Result<()> {
        self.trainer.train(epochs)?;
        if self.job.sweeps() {
            return Ok(());
        }
        let loss = self.trainer.progress()?[0].loss;
        match divergence(self.start_loss, loss) {
            Some(what) => Err(self.job.diverged(self.trainer.epoch(), what)),
            None => Ok(()),
        }
    }

    /// Back to the first epoch: the same weights, a new trainer.
    fn reset(&mut self) -> anyhow::Result<()> {
        self.trainer = self.job.trainer(self.gpu, &self.starts)?;
        self.curve.clear();
        Ok(())
    }

    /// The model `train --save` writes for the command the page shows: in a sweep, its best run.
    fn model_bytes(&mut self) -> anyhow::Result<Vec<u8>> {
        if self.trainer.epoch() == 0 {
            bail!("train at least one epoch before saving the model");
        }
        let progress = self.trainer.progress()?;
        let outcomes = (self.job).outcomes(&self.trainer, &progress, &self.seeds, &self.starts)?;
        let best = sweep::best(&outcomes);
        let snapshot = Snapshot::of(&self.trainer, best)?;
        let model = self.job.model(snapshot, self.starts[best].config);
        Ok(model.to_bytes("the model")?)
    }

    /// Where training stands, as the page draws it: the epoch, the losses and their curve, how many runs have
    /// converged, and the decision regions of the first few runs on the grid (one value per cell and
    /// output, to three decimals).
    fn frame(&mut self, state: &State) -> anyhow::Result<String> {
        let network = &self.job.network;
        let epoch = self.trainer.epoch();
        let progress = self.trainer.progress()?;
        let first = self.trainer.params(0)?;
        let held_out = (self.job.test_set.rows > 0)
            .then(|| wgmlp::cpu::evaluate(network, &first, &self.job.test_set))
            .transpose()?
            .map(|evaluation| evaluation.loss);
        if self.curve.last().is_none_or(|&(last, _, _)| last < epoch) {
            self.curve.push((epoch, progress[0].loss, held_out));
            if self.curve.len() > CURVE_POINTS {
                let thinned = self.curve.iter().copied().enumerate();
                self.curve = thinned
                    .filter(|(i, _)| i % 2 == 0)
                    .map(|(_, p)| p)
                    .collect();
            }
        }
        let judged = self.job.judges_convergence();
        let centres = self.job.schema.standardized(self.grid.centres());
        let cells = self.grid.side * self.grid.side;
        let regions = (0..progress.len().min(SHOWN_RUNS))
            .map(|run| {
                let params = self.trainer.params(run)?;
                let values = wgmlp::cpu::predict(network, &params, &centres, cells)?;
                let rounded: Vec<f32> = values
                    .iter()
                    .map(|v| (v * 1000.0).round() / 1000.0)
                    .collect();
                Ok(json!({
                    "seed": self.seeds[run],
                    "loss": progress[run].loss,
                    "converged": judged.then(|| progress[run].converged()),
                    "values": rounded,
                }))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let frame = json!({
            "epoch": epoch,
            "running": state.running,
            "epochs_per_second": state.rate,
            "error": state.error,
            "loss": progress[0].loss,
            "accuracy": progress[0].accuracy,
            "held_out_loss": held_out,
            "runs": progress.len(),
            "converged": judged.then(|| progress.iter().filter(|p| p.converged()).count()),
            "best_loss": progress.iter().map(|p| p.loss).filter(|l| !l.is_nan()).reduce(f64::min),
            "curve": {
                "epochs": self.curve.iter().map(|p| p.0).collect::<Vec<_>>(),
                "train": self.curve.iter().map(|p| p.1).collect::<Vec<_>>(),
                "held_out": self.curve.iter().map(|p| p.2).collect::<Vec<_>>(),
            },
            "regions": regions,
            "command": self.plan.command(epoch),
        });
        Ok(frame.to_string())
    }

    /// A frame that only says training stopped, where even measuring it failed.
    fn error_frame(&self, state: &State) -> String {
        let epoch = self.trainer.epoch();
        json!({ "epoch": epoch, "running": false, "error": state.error, "command": self.plan.command(epoch) })
            .to_string()
    }
}
