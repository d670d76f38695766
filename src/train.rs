//! How training proceeds, shared by both trainers: the optimizer and its settings, and the order in which
//! each epoch visits the rows in mini-batches.

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

/// Everything about a training run but the network and the data.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainConfig {
    pub lr: f32,
    pub optimizer: Optimizer,
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
        self.optimizer.check()
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
