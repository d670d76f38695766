//! The CPU engine for small networks: the reference's steps with the rows of a batch side by side in SIMD
//! lanes, [`LANES`] rows to a [`Lane`]. A layer of a few units is then a few vector operations, where the
//! row-major loops pay a loop's overhead for every product of two or three numbers.
//!
//! A matrix of `units` values per row is stored unit-major: unit u of row r is lane r % LANES of
//! `m[u * groups + r / LANES]`, where `groups` is the batch's rows in lanes, rounded up. The lanes past the
//! batch's last row compute along with the others but stay in their lanes until the sums over rows, which
//! leave them out.

use super::{
    Evaluation, activation_backward, activation_forward, check_params_len, check_state_len,
    loss_backward, optimizer_step,
};
use crate::Result;
use crate::network::{Activation, Dataset, LayerParams, Network, ParamLayout};
use crate::train::{TrainConfig, check_run};
use std::ops::Range;

/// Rows a lane holds: one SSE or NEON register of f32, the width every x86-64 and Arm64 CPU has.
pub const LANES: usize = 4;

/// One value of a unit for [`LANES`] consecutive rows.
type Lane = [f32; LANES];

/// Networks whose widest layer has at most this many units train faster in lanes than the fast trainer
/// (measured on the XOR and moons sets: 2-8-8-1 gains a little, 2-12-12-1 loses).
pub const WIDEST_LAYER: usize = 8;

/// Trains one run of a small network on the CPU, in f32, with the reference's results to rounding: the same
/// sums in the same order within a lane group (a batch of at most [`LANES`] rows sums as the reference
/// does), and a sigmoid whose e^x is within an ulp of the C library's.
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
        let layout = check_run(network, data, &config)?;
        check_params_len(&layout, params.len())?;
        // About the reference's memory: the same values, in lanes.
        super::CpuTrainer::<f32>::check_size(network, data.rows, &config, 1)?;
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
                optimizer_step(
                    config.optimizer,
                    self.step,
                    lr,
                    &mut self.params,
                    &self.grads,
                    &mut self.state,
                    1,
                );
            }
            self.epoch += 1;
        }
    }

    /// Copies the rows at `positions` of the epoch's order into the batch, in lanes.
    fn gather(&mut self, positions: Range<usize>) {
        let groups = positions.len().div_ceil(LANES);
        for (i, position) in positions.enumerate() {
            let row = self.config.row_at(self.epoch, self.data.rows, position);
            let (group, lane) = (i / LANES, i % LANES);
            for (src, dst) in [
                (&self.data.inputs, &mut self.batch_inputs),
                (&self.data.targets, &mut self.batch_targets),
            ] {
                let width = src.len() / self.data.rows;
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
        self.step = epoch * self.config.batches(self.data.rows).len() as u64;
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
    if f == Activation::Sigmoid {
        return z.map(|z| 1.0 / (1.0 + exp(-z)));
    }
    let mut a = [0.0; LANES];
    activation_forward(&mut a, &z, f);
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

/// ln of the smallest normal f32: n = −126 in [`exp`].
const EXP_LOWEST: f32 = -87.336_54;
/// Below ln of the largest f32, where x·log2(e) rounds to n = 127 at most in [`exp`].
const EXP_HIGHEST: f32 = 88.37;

/// e^x to within 1 ulp for x in [`EXP_LOWEST`, `EXP_HIGHEST`], in operations that compile to vector
/// instructions, where the C library's `expf` is a call per value. Beyond that range it gives the value at
/// its end (about 1.2e-38 and 2.4e38, the ends of the normal floats that 2^n below can reach), which is
/// all a sigmoid needs; NaN stays NaN. x = n·ln 2 + r with |r| ≤ ln 2 / 2 (ln 2 in two parts, so that
/// n·ln 2 loses nothing); e^r is a degree-7 polynomial, Cephes's minimax coefficients; 2^n, n in
/// [-126, 127], is built in the exponent bits.
#[inline(always)]
fn exp(x: f32) -> f32 {
    // Adding 1.5·2^23 rounds to an integer, which then stands in the low bits of the sum.
    const ROUND: f32 = 12_582_912.0;
    const LN2_HIGH: f32 = 0.693_359_4; // 0.693359375, 10 bits: n·LN2_HIGH is exact
    const LN2_LOW: f32 = -2.121_944_4e-4;
    // `clamp` keeps NaN (where max and min would drop it).
    let x = x.clamp(EXP_LOWEST, EXP_HIGHEST);
    let rounded = x * std::f32::consts::LOG2_E + ROUND;
    let n = rounded - ROUND;
    let r = x - n * LN2_HIGH - n * LN2_LOW;
    let (r2, r4) = (r * r, r * r * r * r);
    // Estrin's scheme: three levels of products where Horner's rule chains six, and the chain of
    // sigmoids from layer to layer waits on each.
    let p01 = 0.5 + 1.666_666_5e-1 * r;
    let p23 = 4.166_579_6e-2 + 8.333_452e-3 * r;
    let p45 = 1.398_199_9e-3 + 1.987_569_1e-4 * r;
    let e_r = (p01 + r2 * p23 + r4 * p45) * r2 + r + 1.0;
    let biased = rounded
        .to_bits()
        .wrapping_sub(ROUND.to_bits())
        .wrapping_add(127);
    e_r * f32::from_bits(biased << 23)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_one_ulp_of_the_true_value() {
        let mut worst = (0.0f32, 0.0f64);
        let steps = 2_000_000;
        for i in 0..=steps {
            let x = EXP_LOWEST + (EXP_HIGHEST - EXP_LOWEST) * i as f32 / steps as f32;
            let (got, truth) = (exp(x) as f64, (x as f64).exp());
            let ulp = f64::from(f32::EPSILON) * 2f64.powi(truth.log2().floor() as i32);
            let error = (got - truth).abs() / ulp;
            if error > worst.1 {
                worst = (x, error);
            }
        }
        assert!(worst.1 <= 1.0, "exp({}) is {} ulp off", worst.0, worst.1);
        assert!(exp(f32::NAN).is_nan());
        assert_eq!(exp(0.0), 1.0);
        // Past either end, the value at that end: finite, and the sigmoid's 0 and 1 from it.
        for (x, end) in [
            (-1000.0, EXP_LOWEST),
            (f32::NEG_INFINITY, EXP_LOWEST),
            (88.7, EXP_HIGHEST),
        ] {
            assert_eq!(exp(x), exp(end), "exp({x})");
        }
        assert!(exp(f32::INFINITY).is_finite() && exp(f32::INFINITY) > 2e38);
        assert!(exp(EXP_LOWEST) >= f32::MIN_POSITIVE * 0.99);
    }
}
