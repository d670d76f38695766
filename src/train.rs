//! How training proceeds, shared by both trainers: the optimizer and its settings, the learning rate's
//! schedule, and the order in which each epoch visits the rows in mini-batches.

use std::fmt;
use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The update rule, PyTorch's formulas.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "name")]
pub enum Optimizer {
    /// v = μ·v + g, θ −= lr·v (plain gradient descent when μ = 0).
    Sgd { momentum: f32 },
    /// Adam with bias correction; `weight_decay` is decoupled as in AdamW: θ −= lr·λ·θ first.
    Adam { weight_decay: f32 },
}

impl Optimizer {
    pub const ADAM_BETA1: f32 = 0.9;
    pub const ADAM_BETA2: f32 = 0.999;
    pub const ADAM_EPSILON: f32 = 1e-8;

    /// Builds the optimizer a command line names: `sgd` (with `momentum`) or `adam` (with `weight_decay`),
    /// each 0 where not given. A setting of the other optimizer is an error: it would be ignored.
    pub fn parse(name: &str, momentum: Option<f32>, weight_decay: Option<f32>) -> Result<Self> {
        let optimizer = match (name, momentum, weight_decay) {
            ("sgd", momentum, None) => Optimizer::Sgd {
                momentum: momentum.unwrap_or(0.0),
            },
            ("adam", None, weight_decay) => Optimizer::Adam {
                weight_decay: weight_decay.unwrap_or(0.0),
            },
            ("sgd", _, Some(weight_decay)) => {
                return Err(Error::invalid(
                    "weight-decay",
                    crate::error::number(weight_decay),
                    "weight decay belongs to adam (AdamW); sgd has none: add --optimizer adam or leave it out",
                ));
            }
            ("adam", Some(momentum), _) => {
                return Err(Error::invalid(
                    "momentum",
                    crate::error::number(momentum),
                    "momentum belongs to sgd; adam keeps its own moments: add --optimizer sgd or leave it out",
                ));
            }
            _ => return Err(Error::invalid("optimizer", name, "choose sgd or adam")),
        };
        optimizer.check()?;
        Ok(optimizer)
    }

    fn check(self) -> Result<()> {
        match self {
            Optimizer::Sgd { momentum } if !(0.0..1.0).contains(&momentum) => Err(Error::invalid(
                "momentum",
                crate::error::number(momentum),
                "momentum must be at least 0 and below 1, e.g. 0.9",
            )),
            Optimizer::Adam { weight_decay }
                if !(weight_decay.is_finite() && weight_decay >= 0.0) =>
            {
                Err(Error::invalid(
                    "weight-decay",
                    crate::error::number(weight_decay),
                    "weight decay must be a finite number ≥ 0",
                ))
            }
            _ => Ok(()),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Optimizer::Sgd { .. } => "sgd",
            Optimizer::Adam { .. } => "adam",
        }
    }

    /// How many values of state the optimizer keeps per parameter (velocity; or the two moments).
    pub fn state_per_param(self) -> usize {
        match self {
            Optimizer::Sgd { .. } => 1,
            Optimizer::Adam { .. } => 2,
        }
    }
}

/// How the learning rate changes from epoch to epoch: the rate of epoch e (counted from 0) is the base rate
/// times [`Schedule::factor`]`(e)`, the same on every engine (`schedule_factor` in shaders/functions.wgsl
/// computes it operation for operation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "name")]
pub enum Schedule {
    /// The base rate throughout.
    #[default]
    Constant,
    /// The rate times `factor` every `every` epochs: lr·factor^⌊e/every⌋.
    Step { every: u32, factor: f32 },
    /// The rate annealed along half a cosine to 0 at epoch `horizon`, lr·½(1 + cos(π·e/horizon)), and 0 from
    /// there on: the run is meant to end at the horizon.
    Cosine { horizon: u32 },
}

impl Schedule {
    /// Reads `constant`, `step:EPOCHS:FACTOR` or `cosine[:EPOCHS]` (`--lr-schedule`). A cosine without its
    /// EPOCHS anneals to `end`, the epoch the run ends at; one with them must not end before the run.
    pub fn parse(text: &str, end: u64) -> Result<Self> {
        let invalid = |reason: String| Error::invalid("lr-schedule", text, reason);
        // Text that is not a number reads as 0 or NaN, which `problem` names.
        let whole = |value: &str| value.parse::<u32>().unwrap_or(0);
        let parts: Vec<&str> = text.split(':').collect();
        let schedule = match parts[..] {
            ["constant"] => Schedule::Constant,
            ["step", every, factor] => Schedule::Step {
                every: whole(every),
                factor: factor.parse().unwrap_or(f32::NAN),
            },
            ["cosine"] => Schedule::Cosine {
                horizon: u32::try_from(end).map_err(|_| {
                    invalid(format!(
                        "the run ends at epoch {end}; a cosine anneals over at most {} epochs",
                        u32::MAX
                    ))
                })?,
            },
            ["cosine", horizon] => Schedule::Cosine {
                horizon: whole(horizon),
            },
            _ => {
                return Err(invalid(
                    "choose constant, step:EPOCHS:FACTOR (e.g. step:100:0.5) or cosine (to 0 at the \
                     run's end; cosine:EPOCHS to 0 at that epoch)"
                        .into(),
                ));
            }
        };
        if let Some(reason) = schedule.problem() {
            return Err(invalid(reason));
        }
        if let Schedule::Cosine { horizon } = schedule
            && end > u64::from(horizon)
        {
            return Err(invalid(format!(
                "the run ends at epoch {end}, past the cosine's end, where the rate has reached 0: \
                 train fewer --epochs, or leave out :{horizon} to anneal to the run's end"
            )));
        }
        Ok(schedule)
    }

    /// Checks a schedule built in code: a period of at least one epoch, a step's factor in (0, 1].
    pub fn check(self) -> Result<()> {
        match self.problem() {
            Some(reason) => Err(Error::invalid("lr-schedule", self, reason)),
            None => Ok(()),
        }
    }

    fn problem(self) -> Option<String> {
        let period = |what: &str, example: &str| {
            format!(
                "{what} must be a whole number from 1 to {}, e.g. {example}",
                u32::MAX
            )
        };
        match self {
            Schedule::Step { every: 0, .. } => Some(period("the step's EPOCHS", "step:100:0.5")),
            Schedule::Step { factor, .. } if !(factor > 0.0 && factor <= 1.0) => Some(
                "the step's FACTOR must be a number above 0 and at most 1, e.g. step:100:0.5 halves \
                 the rate every 100 epochs"
                    .into(),
            ),
            Schedule::Cosine { horizon: 0 } => Some(period("the cosine's EPOCHS", "cosine:1000")),
            _ => None,
        }
    }

    /// What the base rate is multiplied by at epoch `epoch`: 1, factor^⌊epoch/every⌋, or ½(1 + cos(π·e/T)).
    /// (A period of 0, which [`Schedule::check`] refuses, counts as 1 here.)
    pub fn factor(self, epoch: u64) -> f32 {
        match self {
            Schedule::Constant => 1.0,
            Schedule::Step { every, factor } => power(factor, epoch / u64::from(every.max(1))),
            Schedule::Cosine { horizon } => {
                let (epoch, horizon) = (u32::try_from(epoch).unwrap_or(u32::MAX), horizon.max(1));
                cosine_factor(epoch, horizon, cosine_angle(horizon))
            }
        }
    }

    /// The learning rate at `epoch` of a run whose base rate is `base_lr`.
    pub fn rate(self, base_lr: f32, epoch: u64) -> f32 {
        base_lr * self.factor(epoch)
    }
}

/// The schedule as `--lr-schedule` writes it, a cosine with its horizon.
impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Schedule::Constant => write!(f, "constant"),
            Schedule::Step { every, factor } => write!(f, "step:{every}:{factor}"),
            Schedule::Cosine { horizon } => write!(f, "cosine:{horizon}"),
        }
    }
}

/// base^exponent by squaring, from the exponent's lowest bit up: only multiplications, each rounded alike
/// on every device, so the GPU's `power` gives the same bits.
fn power(base: f32, mut exponent: u64) -> f32 {
    let (mut result, mut square) = (1.0f32, base);
    while exponent > 0 {
        if exponent & 1 == 1 {
            result *= square;
        }
        square *= square;
        exponent >>= 1;
    }
    result
}

/// The angle a cosine schedule over `horizon` epochs turns in one epoch, π/(2·horizon): the parameter the
/// GPU takes, rounded once here.
pub(crate) fn cosine_angle(horizon: u32) -> f32 {
    std::f32::consts::FRAC_PI_2 / horizon as f32
}

/// ½(1 + cos(π·epoch/horizon)), 0 from the horizon on, with `angle` = π/(2·horizon). It is
/// 1 − sin²(angle·epoch) near the start and sin²(angle·(horizon − epoch)) near the end, so the sine is only
/// taken up to π/4, where a short series is exact to f32's precision: a GPU's `cos` may be off by 2^-11, all
/// of the rate near the end.
fn cosine_factor(epoch: u32, horizon: u32, angle: f32) -> f32 {
    let left = horizon - epoch.min(horizon);
    let near = left.min(horizon - left);
    let x = near as f32 * angle;
    let x2 = x * x;
    let sine = x
        * (1.0
            + x2 * (-1.0 / 6.0
                + x2 * (1.0 / 120.0 + x2 * (-1.0 / 5040.0 + x2 * (1.0 / 362880.0)))));
    let sine2 = sine * sine;
    if left <= horizon - left {
        sine2
    } else {
        1.0 - sine2
    }
}

/// Everything about a training run but the network and the data.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainConfig {
    /// The base learning rate, which `schedule` scales epoch by epoch.
    pub lr: f32,
    pub optimizer: Optimizer,
    pub schedule: Schedule,
    /// Rows per step; `None` trains on the whole set at once (full batch, the rows in their own order).
    pub batch_size: Option<usize>,
    /// Seeds the order in which each epoch visits the rows.
    pub shuffle_seed: u64,
}

impl TrainConfig {
    /// Full-batch gradient descent at learning rate `lr`: the tutorial's.
    pub fn sgd(lr: f32) -> Self {
        TrainConfig {
            lr,
            optimizer: Optimizer::Sgd { momentum: 0.0 },
            schedule: Schedule::Constant,
            batch_size: None,
            shuffle_seed: 0,
        }
    }

    /// Checks the numbers: a finite positive learning rate, a batch of at least one row.
    pub fn check(&self) -> Result<()> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::invalid(
                "lr",
                crate::error::number(self.lr),
                "the learning rate must be a finite number greater than 0, e.g. 0.1",
            ));
        }
        if let Optimizer::Adam { weight_decay } = self.optimizer
            && self.lr * weight_decay >= 1.0
        {
            return Err(Error::invalid(
                "weight-decay",
                crate::error::number(weight_decay),
                format!(
                    "each step takes lr·λ = {} of every weight away, the whole weight or more, so the weights \
                     flip and grow; with --lr {} keep it below 1/lr = {}",
                    crate::error::number(self.lr * weight_decay),
                    crate::error::number(self.lr),
                    crate::error::number(1.0 / self.lr)
                ),
            ));
        }
        if self.batch_size == Some(0) {
            return Err(Error::invalid(
                "batch-size",
                0,
                "a batch needs at least one row",
            ));
        }
        self.schedule.check()?;
        self.optimizer.check()
    }

    /// The optimizer steps of the first `epochs` epochs over `rows` rows: where a resumed run's step count
    /// (Adam's t) starts.
    pub fn steps_before(&self, epochs: u64, rows: usize) -> u64 {
        epochs * self.batches(rows).len() as u64
    }

    /// The steps of one epoch over `rows` rows: row ranges of the epoch's order, the last one possibly short.
    pub fn batches(&self, rows: usize) -> Vec<Range<usize>> {
        let size = self.batch_size.unwrap_or(rows).clamp(1, rows.max(1));
        (0..rows)
            .step_by(size)
            .map(|start| start..(start + size).min(rows))
            .collect()
    }

    /// Whether epochs visit the rows in a shuffled order (only mini-batches do: a full batch sums every row
    /// anyway, and keeping the rows in place keeps the tutorial's numbers).
    pub fn shuffles(&self, rows: usize) -> bool {
        self.batch_size.is_some_and(|size| size < rows)
    }

    /// The row that position `position` of epoch `epoch` visits: a shuffled order for mini-batches, the rows
    /// in place otherwise. It depends only on the seed, the epoch and the position, so a run resumed at any
    /// epoch continues exactly, and the GPU computes the same rows (`shuffled_row` in shaders/functions.wgsl).
    pub fn row_at(&self, epoch: u64, rows: usize, position: usize) -> usize {
        if self.shuffles(rows) {
            shuffled_row(
                self.shuffle_seed,
                epoch as u32,
                rows as u32,
                position as u32,
            ) as usize
        } else {
            position
        }
    }

    /// The order in which epoch `epoch` (counted from 0) visits `rows` rows.
    pub fn epoch_order(&self, epoch: u64, rows: usize) -> Vec<u32> {
        (0..rows)
            .map(|position| self.row_at(epoch, rows, position) as u32)
            .collect()
    }
}

/// How many times its starting value the loss may grow before a run counts as diverged.
pub const DIVERGENCE_GROWTH: f64 = 1e4;

/// Why a run that started at loss `start` has diverged by loss `now`, where it has: a loss that is no
/// longer a number, or one grown by orders of magnitude. Growth is counted from at least 1, so that a
/// resumed run near a perfect fit (a start of 1e-7, say) may still move by a little.
pub fn divergence(start: f64, now: f64) -> Option<String> {
    if !now.is_finite() {
        Some(format!("the loss became {now}"))
    } else if now > DIVERGENCE_GROWTH * start.max(1.0) {
        Some(format!(
            "the loss grew from {start:.6} to {now:e}, more than {DIVERGENCE_GROWTH:e} times"
        ))
    } else {
        None
    }
}

/// Why a run has diverged where its outputs say so: a sigmoid or softmax output pinned at exactly 0 or 1 on
/// every row, with a loss no better than where it started, is a step that overshot, not a fit.
pub fn saturation(
    network: &crate::Network,
    start: f64,
    now: f64,
    outputs: &[f32],
) -> Option<String> {
    let bounded = matches!(
        network.output_activation(),
        crate::Activation::Sigmoid | crate::Activation::Softmax
    );
    let pinned = !outputs.is_empty() && outputs.iter().all(|&o| o == 0.0 || o == 1.0);
    // A loss that is 0 is a perfect fit, pinned or not.
    (bounded && pinned && now > 0.0 && now >= start).then(|| {
        format!("every output is pinned at 0 or 1 and the loss ({now:.6}) is no better than at the start ({start:.6})")
    })
}

/// Rounds of the order's shuffle: enough to scatter the rows of a batch over the whole set.
pub const SHUFFLE_ROUNDS: u32 = 24;

/// A bijection of [0, rows) keyed by (seed, epoch): 24 rounds of the swap-or-not shuffle (Hoang, Morris and
/// Rogaway). It works on any number of rows in a fixed number of steps, with no loop whose length depends
/// on the data, and integer arithmetic makes it the same on every device.
pub fn shuffled_row(seed: u64, epoch: u32, rows: u32, position: u32) -> u32 {
    let key = hash32(hash32(hash32(seed as u32) ^ (seed >> 32) as u32) ^ epoch);
    (0..SHUFFLE_ROUNDS).fold(position, |x, round| swap_or_not(x, rows, key, round))
}

/// One round: x is paired with k − x (mod rows), and a bit keyed on the pair decides whether both swap, so
/// the round is a bijection.
fn swap_or_not(x: u32, rows: u32, key: u32, round: u32) -> u32 {
    let k = hash32(key ^ round.wrapping_mul(0x9E37_79B9)) % rows;
    let partner = if k >= x { k - x } else { k + (rows - x) };
    let pair = x.max(partner);
    if hash32(pair ^ key ^ round.wrapping_mul(0x85EB_CA6B)) & 1 == 1 {
        partner
    } else {
        x
    }
}

/// A 32-bit integer mix with good avalanche (Chris Wellons' lowbias32), the order's keyed hash.
pub fn hash32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7FEB_352D);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846C_A68B);
    x ^ (x >> 16)
}

/// The checks both trainers make before they build anything; gives the parameter layout.
pub(crate) fn check_run(
    network: &crate::Network,
    data: &crate::Dataset,
    config: &TrainConfig,
) -> Result<crate::network::ParamLayout> {
    config.check()?;
    data.check_fits(network)?;
    Ok(network.layout())
}
