//! One interface over the three ways to train: the fused engine and the layered engine on the GPU, and the
//! CPU reference; for one run or for a sweep of many runs side by side.

use crate::cpu::{CpuEngine, Evaluation, FastCpuTrainer, measure};
use crate::gpu::FusedTrainer;
use crate::network::{Dataset, Network, named};
use crate::train::TrainConfig;
use crate::{Error, Gpu, GpuTrainer, Result};

/// Which engine trains on the GPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Engine {
    /// Fused where the network fits (one invocation's private memory, or one workgroup's), layered
    /// otherwise.
    #[default]
    Auto,
    /// A whole network's epochs in one dispatch (shaders/fused.wgsl).
    Fused,
    /// A dispatch per op per step (the kernels of shaders/*.wgsl); any size.
    Layered,
}

named!(
    Engine,
    "engine",
    Auto = "auto",
    Fused = "fused",
    Layered = "layered"
);

/// Where a run trains, once chosen: the name in reports and in the JSON's `"engine"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chosen {
    Fused,
    Layered,
    Cpu,
}

impl Chosen {
    pub fn name(self) -> &'static str {
        match self {
            Chosen::Fused => "fused",
            Chosen::Layered => "layered",
            Chosen::Cpu => "cpu",
        }
    }
}

/// One run: its initial parameters and its settings (runs of a sweep differ in seed and learning rate).
#[derive(Clone, Debug)]
pub struct Start {
    pub params: Vec<f32>,
    pub config: TrainConfig,
}

/// How a run stands on its training set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Progress {
    pub loss: f64,
    /// The share of rows classified right, for bce and ce.
    pub accuracy: Option<f64>,
    /// The largest |output − target| over every output of every row (NaN once the run has diverged).
    pub max_error: f32,
}

impl Progress {
    /// The tutorial's criterion, every output within 0.1 of its target; for a classifier, every row right.
    pub fn converged(&self) -> bool {
        self.accuracy
            .map_or(self.max_error < 0.1, |accuracy| accuracy == 1.0)
    }
}

/// Trains one or more runs of one network on one data set with the chosen engine.
pub struct Trainer<'gpu> {
    runs: Runs<'gpu>,
    network: Network,
    targets: Vec<f32>,
}

enum Runs<'gpu> {
    // Boxed: the one fused trainer is far larger than a list of the others.
    Fused(Box<FusedTrainer<'gpu>>),
    Layered(Vec<GpuTrainer<'gpu>>),
    Cpu(Vec<CpuEngine>),
}

impl<'gpu> Trainer<'gpu> {
    /// The engine that will train `runs` runs of `network` on `rows` rows: on the CPU without a GPU, else
    /// as `engine` asks, after checking that the network fits. Callers ask this before they draw weights.
    pub fn choose(
        gpu: Option<&Gpu>,
        engine: Engine,
        network: &Network,
        rows: usize,
        config: &TrainConfig,
        runs: usize,
    ) -> Result<Chosen> {
        let Some(gpu) = gpu else {
            return match engine {
                Engine::Auto => FastCpuTrainer::<f32>::check_size(network, rows, config, runs)
                    .map(|()| Chosen::Cpu),
                _ => Err(Error::invalid(
                    "engine",
                    engine,
                    "the engines are GPU engines; leave --engine out to train on the CPU",
                )),
            };
        };
        let fused = || FusedTrainer::check_size(gpu, network, rows, config, runs);
        let layered = || GpuTrainer::check_size(gpu, network, rows, config);
        match engine {
            Engine::Fused => fused().map(|_| Chosen::Fused),
            Engine::Layered => layered().map(|()| Chosen::Layered),
            // Only where its shaders compile in about a second; asked for, it takes longer ones too.
            Engine::Auto => fused()
                .and_then(|variant| FusedTrainer::check_compile(gpu, network, variant))
                .map(|()| Chosen::Fused)
                .or_else(|_| layered().map(|()| Chosen::Layered)),
        }
    }

    /// A trainer for every start in `starts`, on the engine [`Trainer::choose`] picks.
    pub fn new(
        gpu: Option<&'gpu Gpu>,
        engine: Engine,
        network: &Network,
        starts: &[Start],
        data: &Dataset,
    ) -> Result<Self> {
        let Some(first) = starts.first() else {
            return Err(Error::invalid("runs", 0, "train at least one run"));
        };
        let chosen = Trainer::choose(gpu, engine, network, data.rows, &first.config, starts.len())?;
        let runs = match (chosen, gpu) {
            (Chosen::Fused, Some(gpu)) => Runs::Fused(Box::new(pollster::block_on(
                FusedTrainer::new(gpu, network, starts, data),
            )?)),
            (Chosen::Layered, Some(gpu)) => Runs::Layered(
                starts
                    .iter()
                    .map(|s| {
                        pollster::block_on(GpuTrainer::new(gpu, network, &s.params, data, s.config))
                    })
                    .collect::<Result<_>>()?,
            ),
            _ => Runs::Cpu(
                starts
                    .iter()
                    .map(|s| CpuEngine::new(network, &s.params, data, s.config))
                    .collect::<Result<_>>()?,
            ),
        };
        Ok(Trainer {
            runs,
            network: network.clone(),
            targets: data.targets.clone(),
        })
    }

    /// The engine that trains.
    pub fn engine(&self) -> Chosen {
        match self.runs {
            Runs::Fused(_) => Chosen::Fused,
            Runs::Layered(_) => Chosen::Layered,
            Runs::Cpu(_) => Chosen::Cpu,
        }
    }

    /// What compiling the fused engine's shaders took (zero where this process had them already, and for
    /// the other engines, whose kernels compile at their first use in the process).
    pub fn compile_time(&self) -> std::time::Duration {
        match &self.runs {
            Runs::Fused(t) => t.compile_time(),
            _ => std::time::Duration::ZERO,
        }
    }

    /// The fused engine's tier and code form, where it trains.
    pub fn fused_variant(&self) -> Option<crate::gpu::Variant> {
        match &self.runs {
            Runs::Fused(t) => Some(t.variant()),
            _ => None,
        }
    }

    pub fn runs(&self) -> usize {
        match &self.runs {
            Runs::Fused(t) => t.networks(),
            Runs::Layered(ts) => ts.len(),
            Runs::Cpu(ts) => ts.len(),
        }
    }

    /// Trains every run `epochs` more epochs; returns once they have run.
    pub fn train(&mut self, epochs: usize) -> Result<()> {
        match &mut self.runs {
            Runs::Fused(t) => t.train(epochs),
            Runs::Layered(ts) => {
                for t in ts.iter_mut() {
                    t.train(epochs)?;
                }
                ts.first().map_or(Ok(()), |t| t.gpu().wait())
            }
            Runs::Cpu(ts) => {
                // The runs are independent: a share of them a core.
                let share = ts.len().div_ceil(crate::cpu::cores());
                crate::cpu::in_parallel(ts.chunks_mut(share), |runs| {
                    runs.iter_mut().for_each(|t| t.train(epochs))
                });
                Ok(())
            }
        }
    }

    /// Where every run stands on the whole training set under its current parameters: the GPU engines
    /// measure on the device and read back three numbers a run; the CPU measures its own evaluation.
    pub fn progress(&mut self) -> Result<Vec<Progress>> {
        let (loss, outputs) = (self.network.loss(), self.network.outputs());
        let rows = self.targets.len() / outputs;
        let metrics = match &mut self.runs {
            Runs::Fused(t) => pollster::block_on(t.metrics())?,
            Runs::Layered(ts) => ts
                .iter()
                .map(|t| pollster::block_on(t.metrics()))
                .collect::<Result<_>>()?,
            Runs::Cpu(ts) => ts
                .iter_mut()
                .map(|t| {
                    let e = t.evaluate();
                    measure(loss, &e.logits, &e.outputs, &self.targets, outputs)
                })
                .collect(),
        };
        Ok(metrics
            .into_iter()
            .map(|m| Progress {
                loss: m.loss,
                accuracy: loss
                    .is_classification()
                    .then(|| m.correct as f64 / rows.max(1) as f64),
                max_error: m.max_error,
            })
            .collect())
    }

    /// Outputs, logits and loss of run `run` over the whole data set.
    pub fn evaluate(&mut self, run: usize) -> Result<Evaluation> {
        self.check_run(run)?;
        match &mut self.runs {
            Runs::Fused(t) => pollster::block_on(t.evaluate(run)),
            Runs::Layered(ts) => pollster::block_on(ts[run].evaluate()),
            Runs::Cpu(ts) => Ok(ts[run].evaluate()),
        }
    }

    /// The parameters of run `run`, laid out as [`Network::layout`] says.
    pub fn params(&self, run: usize) -> Result<Vec<f32>> {
        self.check_run(run)?;
        match &self.runs {
            Runs::Fused(t) => pollster::block_on(t.params(run)),
            Runs::Layered(ts) => pollster::block_on(ts[run].params()),
            Runs::Cpu(ts) => Ok(ts[run].params().to_vec()),
        }
    }

    /// The parameters of every run, as [`Trainer::params`] gives each (the fused engine's in one readback).
    pub fn all_params(&self) -> Result<Vec<Vec<f32>>> {
        match &self.runs {
            Runs::Fused(t) => pollster::block_on(t.all_params()),
            _ => (0..self.runs()).map(|run| self.params(run)).collect(),
        }
    }

    /// The optimizer's state of run `run`, laid out like the parameters one after another.
    pub fn optimizer_state(&self, run: usize) -> Result<Vec<f32>> {
        self.check_run(run)?;
        match &self.runs {
            Runs::Fused(t) => pollster::block_on(t.optimizer_state(run)),
            Runs::Layered(ts) => pollster::block_on(ts[run].optimizer_state()),
            Runs::Cpu(ts) => Ok(ts[run].optimizer_state()),
        }
    }

    /// Continues every run from a checkpoint saved after `epoch` epochs with the optimizer's `state`.
    pub fn resume(&mut self, epoch: u64, state: &[f32]) -> Result<()> {
        match &mut self.runs {
            Runs::Fused(t) => t.resume(epoch, state),
            Runs::Layered(ts) => ts.iter_mut().try_for_each(|t| t.resume(epoch, state)),
            Runs::Cpu(ts) => ts.iter_mut().try_for_each(|t| t.resume(epoch, state)),
        }
    }

    /// Epochs trained so far (the same for every run).
    pub fn epoch(&self) -> u64 {
        match &self.runs {
            Runs::Fused(t) => t.epoch(),
            Runs::Layered(ts) => ts[0].epoch(),
            Runs::Cpu(ts) => ts[0].epoch(),
        }
    }

    fn check_run(&self, run: usize) -> Result<()> {
        if run < self.runs() {
            return Ok(());
        }
        Err(Error::invalid(
            "runs",
            run,
            format!("there are {} run(s)", self.runs()),
        ))
    }
}
