//! Many runs at once (`--runs N`, `--lr A,B,C`): their starting points, and the report of how many
//! converged per learning rate. Shared by the XOR demo and `train`.

use serde::Serialize;
use wgmlp::{Network, Progress, Start, TrainConfig};

/// Run i of a learning rate draws its weights and its row order from seed + i, so it is the single run with
/// that seed. Runs are grouped by learning rate, in the order given.
pub fn starts(
    network: &Network,
    params: Option<&[f32]>,
    config: TrainConfig,
    seed: u64,
    lrs: &[f32],
    runs: usize,
) -> Vec<(u64, Start)> {
    lrs.iter()
        .flat_map(|&lr| {
            (0..runs as u64).map(move |i| {
                let seed = seed.wrapping_add(i);
                let params = params.map_or_else(|| network.init_params(seed), <[f32]>::to_vec);
                let config = TrainConfig {
                    lr,
                    shuffle_seed: seed,
                    ..config
                };
                (seed, Start { params, config })
            })
        })
        .collect()
}

/// How one run of a sweep ended (the `"runs"` of the JSON).
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    pub seed: u64,
    pub lr: f64,
    pub loss: f64,
    pub accuracy: Option<f64>,
    /// The tutorial's criterion (see [`Progress::converged`]), where it means something: for classifiers,
    /// and for targets of 0 and 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub converged: Option<bool>,
    /// The loss on the held-out rows (validation or test split), where there are some: what ranks runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_out_loss: Option<f64>,
}

impl Outcome {
    /// The outcome of a run that ended at `progress`; `judged` says whether the convergence criterion applies.
    pub fn new(seed: u64, lr: f32, progress: &Progress, judged: bool) -> Self {
        Outcome {
            seed,
            lr: decimal(lr),
            loss: progress.loss,
            accuracy: progress.accuracy,
            converged: judged.then(|| progress.converged()),
            held_out_loss: None,
        }
    }
}

/// An f32 through its shortest decimal text, so that 0.1 reads as 0.1 in JSON and not as the f32 nearest it.
pub fn decimal(value: f32) -> f64 {
    value
        .to_string()
        .parse()
        .expect("an f32's decimal text parses as f64")
}

/// The run with the lowest held-out loss where there are held-out rows, else the lowest final loss (a
/// diverged run, whose loss is NaN, never).
pub fn best(outcomes: &[Outcome]) -> usize {
    let lowest = outcomes
        .iter()
        .enumerate()
        .min_by(|a, b| ranked(a.1).total_cmp(&ranked(b.1)));
    lowest.map_or(0, |(i, _)| i)
}

/// A run's loss for ranking: a diverged run (NaN) after every other.
fn ranked(outcome: &Outcome) -> f64 {
    let loss = outcome.held_out_loss.unwrap_or(outcome.loss);
    if loss.is_nan() { f64::INFINITY } else { loss }
}

/// One line per learning rate: how many converged (where that is judged), the final losses' min, median and
/// max, the best held-out loss, the best seed.
pub fn summary(outcomes: &[Outcome]) -> Vec<String> {
    let mut lrs: Vec<f64> = Vec::new();
    for outcome in outcomes {
        if !lrs.contains(&outcome.lr) {
            lrs.push(outcome.lr);
        }
    }
    lrs.iter()
        .map(|&lr| {
            let group: Vec<&Outcome> = outcomes.iter().filter(|o| o.lr == lr).collect();
            let converged = group
                .iter()
                .map(|o| o.converged)
                .collect::<Option<Vec<bool>>>()
                .map(|all| all.iter().filter(|&&c| c).count());
            let mut losses: Vec<f64> = group.iter().map(|o| o.loss).collect();
            losses.sort_by(f64::total_cmp);
            let n = losses.len();
            let median = if n % 2 == 1 {
                losses[n / 2]
            } else {
                (losses[n / 2 - 1] + losses[n / 2]) / 2.0
            };
            let best_seed = group
                .iter()
                .min_by(|a, b| ranked(a).total_cmp(&ranked(b)))
                .map_or(0, |o| o.seed);
            let converged = converged.map_or(String::new(), |c| {
                format!("{c} of {n} converged ({:.1}%) · ", 100.0 * c as f64 / n as f64)
            });
            let held_out = group
                .iter()
                .filter_map(|o| o.held_out_loss)
                .filter(|l| !l.is_nan())
                .min_by(f64::total_cmp)
                .map_or(String::new(), |l| format!(" · best held-out loss {l:.6}"));
            format!(
                "lr {lr}: {converged}final loss min {:.6}, median {median:.6}, max {:.6}{held_out} · best seed {}",
                losses[0],
                losses[n - 1],
                best_seed,
            )
        })
        .collect()
}
