//! The CPU engine for small networks: the reference's steps with the rows of a batch side by side in SIMD
//! lanes, [`LANES`] rows to a [`Lane`]. A layer of a few units is then a few vector operations, where the
//! row-major loops pay a loop's overhead for every product of two or three numbers.
//!
//! A matrix of `units` values per row is stored unit-major: unit u of row r is lane r % LANES of
//! `m[u * groups + r / LANES]`, where `groups` is the batch's rows in lanes, rounded up. The lanes past the
//! batch's last row compute along with the others but stay in their lanes until the sums over rows, which
//! leave them out.

use super::{
    Evaluation, activation_backward, check_state_len, loss_backward, optimizer_step, vector_math,
};
use crate::Result;
use crate::network::{Activation, Dataset, LayerParams, Network, ParamLayout};
use crate::train::TrainConfig;
use std::ops::Range;

/// Rows a lane holds: one SSE or NEON register of f32, the width every x86-64 and Arm64 CPU has.
pub const LANES: usize = 4;

/// One value of a unit for [`LANES`] consecutive rows.
type Lane = [f32; LANES];

/// Networks whose widest layer has at most this many units train in lanes. Measured: XOR in 1.2 ms against
/// the fast trainer's 2.1; on moons (400 rows, Adam, 300 epochs) 2-8-8-1 relu in 7.0 ms against 10.2, tanh
/// in batches of 32 in 18.0 against 19.5, but tanh on the full batch in 16.4 against 13.5; from 2-12-12-1
/// on the fast trainer leads.
pub const WIDEST_LAYER: usize = 8;

/// Trains one run of a small network on the CPU, in f32, with the reference's results to rounding: the same
/// sums in the same order within a lane group (a batch of at most [`LANES`] rows sums as the reference
/// does), and the sigmoid and tanh of [`vector_math`], within 1.5 ulp of the C library's.
pub struct LaneTrainer {
    network: Network,
    config: TrainConfig,
    layout: ParamLayout,
    data: Dataset,
    /// The whole data set in lanes: what a full batch and [`LaneTrainer::evaluate`] read.
    inputs: Vec<Lane>,
    targets: Vec<Lane>,
    /// A mini-batch gathered in the epoch's row order.
    batch_inputs: Vec<Lane>,
    batch_targets: Vec<Lane>,
    /// Per weight layer: z, f(z) and the gradient of z, sized for the whole data set.
    pre: Vec<Vec<Lane>>,
    post: Vec<Vec<Lane>>,
    dpre: Vec<Vec<Lane>>,
    params: Vec<f32>,
    grads: Vec<f32>,
    state: Vec<f32>,
    step: u64,
    epoch: u64,
}

impl LaneTrainer {
    /// Whether `network` is small enough to train faster in lanes.
    pub fn suits(network: &Network) -> bool {
        network.sizes().iter().all(|&units| units <= WIDEST_LAYER)
    }

    /// A trainer of `network` from `params` on `data`.
    pub fn new(
        network: &Network,
        params: &[f32],
        data: &Dataset,
        config: TrainConfig,
    ) -> Result<Self> {
        // About the reference's memory: the same values, in lanes.
        let layout = super::CpuTrainer::<f32>::check_start(network, params, data, &config)?;
        let groups = data.rows.div_ceil(LANES);
        let per_layer = || -> Vec<Vec<Lane>> {
            network.sizes()[1..]
                .iter()
                .map(|&units| vec![[0.0; LANES]; units * groups])
                .collect()
        };
        let (inputs, targets) = (network.inputs(), network.outputs());
        Ok(LaneTrainer {
            inputs: to_lanes(&data.inputs, inputs),
            targets: to_lanes(&data.targets, targets),
            batch_inputs: vec![[0.0; LANES]; inputs * groups],
            batch_targets: vec![[0.0; LANES]; targets * groups],
            pre: per_layer(),
            post: per_layer(),
            dpre: per_layer(),
            params: params.to_vec(),
            grads: vec![0.0; layout.len],
            state: vec![0.0; layout.len * config.optimizer.state_per_param()],
            step: 0,
            epoch: 0,
            network: network.clone(),
            data: data.clone(),
            config,
            layout,
        })
    }

    /// Runs `epochs` epochs; each visits every row once, a mini-batch per step.
    pub fn train(&mut self, epochs: usize) {
        let config = self.config;
        let count = self.data.rows;
        let batches = config.batches(count);
        let shuffles = config.shuffles(count);
        for _ in 0..epochs {
            let lr = config.schedule.rate(config.lr, self.epoch);
            for batch in &batches {
                let rows = batch.len();
                if shuffles {
                    self.gather(batch.clone());
                }
                let x = match shuffles {
                    true => &self.batch_inputs,
                    false => &self.inputs,
                };
                forward(
                    &mut self.pre,
                    &mut self.post,
                    &self.network,
                    &self.layout,
                    &self.params,
                    x,
                    rows,
                );
                self.backward(shuffles, rows);
                self.step += 1;
                // One share: a small network's update is not worth a thread.
                let shares = 1;
                let (params, state) = (&mut self.params, &mut self.state);
                optimizer_step(
                    config.optimizer,
                    self.step,
                    lr,
                    params,
                    &self.grads,
                    state,
                    shares,
                );
            }
            self.epoch += 1;
        }
    }

    /// Copies the rows at `positions` of the epoch's order into the batch, in lanes.
    fn gather(&mut self, positions: Range<usize>) {
        let groups = positions.len().div_ceil(LANES);
        let (inputs, outputs) = (self.network.inputs(), self.network.outputs());
        for (i, position) in positions.enumerate() {
            let row = self.config.row_at(self.epoch, self.data.rows, position);
            let (group, lane) = (i / LANES, i % LANES);
            for (src, dst, width) in [
                (&self.data.inputs, &mut self.batch_inputs, inputs),
                (&self.data.targets, &mut self.batch_targets, outputs),
            ] {
                for (unit, &value) in src[row * width..][..width].iter().enumerate() {
                    dst[unit * groups + group][lane] = value;
                }
            }
        }
    }

    /// The loss gradient, then per layer from the last: dZ, dW = Aᵀ·dZ, db = Σ_rows dZ, dA_prev = dZ·Wᵀ.
    fn backward(&mut self, shuffled: bool, rows: usize) {
        let groups = rows.div_ceil(LANES);
        let (x, y) = match shuffled {
            true => (&self.batch_inputs, &self.batch_targets),
            false => (&self.inputs, &self.targets),
        };
        let last = self.layout.layers.len() - 1;
        let loss = self.network.loss();
        let outputs = self.network.outputs();
        let scale = loss.gradient_scale(rows, outputs);
        // bce and ce give dZ directly; sse and mse give dO, which the activation's derivative turns into dZ.
        let output_slope = match loss.includes_output_activation() {
            true => Activation::Identity,
            false => self.network.activation(last),
        };
        let n = outputs * groups;
        let (post, dz) = (&self.post[last][..n], &mut self.dpre[last][..n]);
        for ((dz, o), y) in dz.iter_mut().zip(post).zip(&y[..n]) {
            let mut d = [0.0; LANES];
            loss_backward(&mut d, o, y, scale);
            activation_backward(dz, &d, o, output_slope);
        }
        for (l, layer) in self.layout.layers.iter().enumerate().rev() {
            let (below, this) = self.dpre.split_at_mut(l);
            let dz = &this[0][..layer.outputs * groups];
            let input = match l {
                0 => &x[..layer.inputs * groups],
                _ => &self.post[l - 1][..layer.inputs * groups],
            };
            let (dweight, dbias) = (layer.weight.clone(), layer.bias.clone());
            weight_backward(&mut self.grads[dweight], input, dz, layer, rows);
            bias_backward(&mut self.grads[dbias], dz, rows);
            if l > 0 {
                let weight = &self.params[layer.weight.clone()];
                let f = self.network.activation(l - 1);
                input_backward(&mut below[l - 1], dz, weight, input, f, layer, groups);
            }
        }
    }

    /// Outputs, logits and loss over the whole data set under the current parameters.
    pub fn evaluate(&mut self) -> Evaluation {
        let rows = self.data.rows;
        let (network, layout) = (&self.network, &self.layout);
        forward(
            &mut self.pre,
            &mut self.post,
            network,
            layout,
            &self.params,
            &self.inputs,
            rows,
        );
        let last = layout.layers.len() - 1;
        let outputs = network.outputs();
        let to_rows = |m: &[Lane]| from_lanes(m, rows, outputs);
        Evaluation::new(
            network,
            to_rows(&self.post[last]),
            to_rows(&self.pre[last]),
            &self.data.targets,
        )
    }

    pub fn params(&self) -> &[f32] {
        &self.params
    }

    /// The optimizer's state (velocity, or both Adam moments), laid out like the parameters one after another.
    pub fn optimizer_state(&self) -> Vec<f32> {
        self.state.clone()
    }

    /// Epochs trained so far.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Continues a run saved after `epoch` epochs with the optimizer's `state`.
    pub fn resume(&mut self, epoch: u64, state: &[f32]) -> Result<()> {
        check_state_len(self.state.len(), state.len())?;
        self.state = state.to_vec();
        self.step = self.config.steps_before(epoch, self.data.rows);
        self.epoch = epoch;
        Ok(())
    }
}

/// Z = A·W + b, A' = f(Z), layer by layer over the first `rows` rows of `x` (in lanes).
fn forward(
    pre: &mut [Vec<Lane>],
    post: &mut [Vec<Lane>],
    network: &Network,
    layout: &ParamLayout,
    params: &[f32],
    x: &[Lane],
    rows: usize,
) {
    let groups = rows.div_ceil(LANES);
    for (l, layer) in layout.layers.iter().enumerate() {
        let (before, after) = post.split_at_mut(l);
        let input = match l {
            0 => &x[..layer.inputs * groups],
            _ => &before[l - 1][..layer.inputs * groups],
        };
        let z = &mut pre[l][..layer.outputs * groups];
        let weight = &params[layer.weight.clone()];
        let bias = &params[layer.bias.clone()];
        let a = &mut after[0][..layer.outputs * groups];
        let f = network.activation(l);
        for j in 0..layer.outputs {
            for g in 0..groups {
                let mut sum = [0.0; LANES];
                for i in 0..layer.inputs {
                    sum = add(
                        sum,
                        input[i * groups + g].map(|a| a * weight[i * layer.outputs + j]),
                    );
                }
                let u = j * groups + g;
                z[u] = sum.map(|s| s + bias[j]);
                if f != Activation::Softmax {
                    a[u] = activate(z[u], f);
                }
            }
        }
        if f == Activation::Softmax {
            softmax_forward(a, z, groups);
        }
    }
}

/// f(z) for an element-wise activation, a lane at a time.
#[inline(always)]
fn activate(z: Lane, f: Activation) -> Lane {
    let mut a = [0.0; LANES];
    vector_math::activation_forward(&mut a, &z, f);
    a
}

/// dweight[inputs×outputs] = Σ_rows input[inputs, rows] · dz[outputs, rows] over the batch's `rows` rows.
/// (Index loops: a slice's chunks of a length known only at run time cost a division each, as much as a
/// small layer's whole product.)
fn weight_backward(
    dweight: &mut [f32],
    input: &[Lane],
    dz: &[Lane],
    layer: &LayerParams,
    rows: usize,
) {
    let groups = rows.div_ceil(LANES);
    for i in 0..layer.inputs {
        for j in 0..layer.outputs {
            let products = |g| mul(input[i * groups + g], dz[j * groups + g]);
            dweight[i * layer.outputs + j] = row_sum(rows, products);
        }
    }
}

/// dbias[outputs] = Σ_rows dz[outputs, rows] over the batch's `rows` rows
fn bias_backward(dbias: &mut [f32], dz: &[Lane], rows: usize) {
    let groups = rows.div_ceil(LANES);
    for (j, db) in dbias.iter_mut().enumerate() {
        *db = row_sum(rows, |g| dz[j * groups + g]);
    }
}

/// The sum of one unit's values over the first `rows` rows, `lane(g)` giving its lane group g: summed lane
/// by lane over the groups, then across the lanes in row order, so that up to [`LANES`] rows add in the
/// reference's order. The lanes past the last row are left out by a choice, not a product with zero: a
/// padding lane may hold a NaN (0·∞ from a zero input) that must not reach a gradient.
fn row_sum(rows: usize, lane: impl Fn(usize) -> Lane) -> f32 {
    let Some(last) = rows.div_ceil(LANES).checked_sub(1) else {
        return 0.0;
    };
    let used = rows - last * LANES;
    let whole = (0..last).fold([0.0; LANES], |sum, g| add(sum, lane(g)));
    let end = lane(last);
    let sum: Lane = std::array::from_fn(|k| {
        if k < used {
            whole[k] + end[k]
        } else {
            whole[k]
        }
    });
    sum.iter().fold(0.0, |total, &v| total + v)
}

/// dinput[inputs, rows] = (Σ_outputs dz[outputs, rows] · weight[inputs×outputs]) ⊙ f′, the gradient of the
/// layer below's pre-activation, with f′ from that layer's output `input`
fn input_backward(
    dinput: &mut [Lane],
    dz: &[Lane],
    weight: &[f32],
    input: &[Lane],
    f: Activation,
    layer: &LayerParams,
    groups: usize,
) {
    for i in 0..layer.inputs {
        for g in 0..groups {
            let mut sum = [0.0; LANES];
            for j in 0..layer.outputs {
                let w = weight[i * layer.outputs + j];
                sum = add(sum, dz[j * groups + g].map(|d| d * w));
            }
            let u = i * groups + g;
            activation_backward(&mut dinput[u], &sum, &input[u], f);
        }
    }
}

/// a = softmax(z) along each row's units: `super::softmax_forward` with a lane of rows at a time.
fn softmax_forward(a: &mut [Lane], z: &[Lane], groups: usize) {
    for g in 0..groups {
        let units = || (g..z.len()).step_by(groups);
        let max = units().fold([f32::NEG_INFINITY; LANES], |m, u| {
            std::array::from_fn(|k| m[k].max(z[u][k]))
        });
        let mut sum = [0.0; LANES];
        for u in units() {
            a[u] = std::array::from_fn(|k| (z[u][k] - max[k]).exp());
            sum = add(sum, a[u]);
        }
        for u in units() {
            a[u] = std::array::from_fn(|k| a[u][k] / sum[k]);
        }
    }
}

fn add(a: Lane, b: Lane) -> Lane {
    std::array::from_fn(|k| a[k] + b[k])
}

fn mul(a: Lane, b: Lane) -> Lane {
    std::array::from_fn(|k| a[k] * b[k])
}

/// `values`, rows of `units`, in lanes (the lanes past the last row zero).
fn to_lanes(values: &[f32], units: usize) -> Vec<Lane> {
    let rows = values.len() / units.max(1);
    let groups = rows.div_ceil(LANES);
    let mut lanes = vec![[0.0; LANES]; units * groups];
    for (r, row) in values.chunks_exact(units).enumerate() {
        for (u, &v) in row.iter().enumerate() {
            lanes[u * groups + r / LANES][r % LANES] = v;
        }
    }
    lanes
}

/// The first `rows` rows of a matrix of `units` in lanes, row-major.
fn from_lanes(lanes: &[Lane], rows: usize, units: usize) -> Vec<f32> {
    let groups = rows.div_ceil(LANES);
    (0..rows * units)
        .map(|i| lanes[(i % units) * groups + (i / units) / LANES][(i / units) % LANES])
        .collect()
}
