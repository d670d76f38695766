//! The CPU reference: plain loops that can be checked against the math by reading them. Every GPU kernel has
//! a twin here of the same name, taking outputs first, then inputs. Matrices are row-major slices.
//!
//! Everything is generic over the float type so that tests can check the gradients in f64.
//!
//! The CPU engine ([`CpuEngine`]) runs the same steps faster, and the tests hold it to the plain loops:
//! [`LaneTrainer`] (src/cpu/lanes.rs) for networks of a few units a layer, the rows of a batch side by side
//! in SIMD lanes; [`FastCpuTrainer`] for the rest, with its larger matrix products in a tuned kernel (the
//! matrixmultiply crate: blocked, vectorized, on up to 4 threads, `MATMUL_NUM_THREADS`).

mod lanes;
pub mod vector_math;

pub use lanes::LaneTrainer;
use num_traits::Float;

use crate::data::class_of;
use crate::network::{Activation, Dataset, Loss, Network, ParamLayout};
use crate::train::{Optimizer, TrainConfig, check_run};
use crate::{Error, Result};

/// The float types the reference runs in (f32 to compare with the GPU, f64 to check gradients).
pub trait Real:
    Float + std::iter::Sum + std::ops::AddAssign + std::fmt::Debug + Send + Sync + 'static
{
    /// c[m×n] = op(a)[m×k] · op(b)[k×n] in the matrixmultiply crate's kernel for this type.
    fn tuned_matmul(c: &mut [Self], a: &[Self], b: &[Self], shape: MatmulShape);

    /// a[len] = f(z[len]) for an element-wise f on the fast path: [`vector_math`]'s in f32, the
    /// reference's `activation_forward` in f64.
    fn fast_activation(a: &mut [Self], z: &[Self], f: Activation);
}

/// The strides (row, column) of c, op(a) and op(b) in `shape`: `a_index` and `b_index` as arithmetic, so that
/// a loop over them has no branch on the transposes.
fn strides(shape: &MatmulShape) -> [(usize, usize); 3] {
    let stride = |next: usize, first: usize| next - first;
    [
        (shape.n, 1),
        (
            stride(shape.a_index(1, 0), shape.a_index(0, 0)),
            stride(shape.a_index(0, 1), shape.a_index(0, 0)),
        ),
        (
            stride(shape.b_index(1, 0), shape.b_index(0, 0)),
            stride(shape.b_index(0, 1), shape.b_index(0, 0)),
        ),
    ]
}

macro_rules! impl_real {
    ($float:ty, $gemm:path, $activation:path) => {
        impl Real for $float {
            fn fast_activation(a: &mut [Self], z: &[Self], f: Activation) {
                $activation(a, z, f)
            }

            // Out of line, so that the small products' loops around a call to it stay tight.
            #[inline(never)]
            fn tuned_matmul(c: &mut [Self], a: &[Self], b: &[Self], shape: MatmulShape) {
                check_matmul(c, a, b, shape);
                let MatmulShape { m, k, n, .. } = shape;
                let [(rsc, csc), (rsa, csa), (rsb, csb)] =
                    strides(&shape).map(|(r, c)| (r as isize, c as isize));
                // SAFETY: `check_matmul` holds c to m·n values and a, b to m·k and k·n, and every index
                // the strides reach is one that `a_index`, `b_index` and c's row-major layout give.
                unsafe {
                    $gemm(
                        m,
                        k,
                        n,
                        1.0,
                        a.as_ptr(),
                        rsa,
                        csa,
                        b.as_ptr(),
                        rsb,
                        csb,
                        0.0,
                        c.as_mut_ptr(),
                        rsc,
                        csc,
                    )
                }
            }
        }
    };
}
impl_real!(f32, matrixmultiply::sgemm, vector_math::activation_forward);
impl_real!(f64, matrixmultiply::dgemm, activation_forward);

/// The shape of `c[m×n] = op(a)[m×k] · op(b)[k×n]`, where `op` reads a transposed operand when its flag is set:
/// a transposed `a` is stored k×m, a transposed `b` is stored n×k. This is how the backward pass multiplies by
/// `Xᵀ` or `W2ᵀ` without copying them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatmulShape {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub transpose_a: bool,
    pub transpose_b: bool,
}

impl MatmulShape {
    pub fn new(m: usize, k: usize, n: usize) -> Self {
        MatmulShape {
            m,
            k,
            n,
            transpose_a: false,
            transpose_b: false,
        }
    }

    pub fn transpose_a(self) -> Self {
        MatmulShape {
            transpose_a: true,
            ..self
        }
    }

    pub fn transpose_b(self) -> Self {
        MatmulShape {
            transpose_b: true,
            ..self
        }
    }

    /// Where `op(a)[i][p]` is stored.
    pub fn a_index(&self, i: usize, p: usize) -> usize {
        if self.transpose_a {
            p * self.m + i
        } else {
            i * self.k + p
        }
    }

    /// Where `op(b)[p][j]` is stored.
    pub fn b_index(&self, p: usize, j: usize) -> usize {
        if self.transpose_b {
            j * self.k + p
        } else {
            p * self.n + j
        }
    }

    /// Floating-point operations of one multiply (a multiply and an add per term).
    pub fn flops(&self) -> f64 {
        2.0 * self.m as f64 * self.k as f64 * self.n as f64
    }
}

fn check_matmul<T>(c: &[T], a: &[T], b: &[T], shape: MatmulShape) {
    let MatmulShape { m, k, n, .. } = shape;
    assert!(
        c.len() == m * n && a.len() == m * k && b.len() == k * n,
        "matmul {shape:?}: got c {} a {} b {} elements",
        c.len(),
        a.len(),
        b.len()
    );
}

/// c[m×n] = op(a)[m×k] · op(b)[k×n]
pub fn matmul<T: Real>(c: &mut [T], a: &[T], b: &[T], shape: MatmulShape) {
    check_matmul(c, a, b, shape);
    let MatmulShape { m, k, n, .. } = shape;
    let [_, (a_row, a_col), (b_row, b_col)] = strides(&shape);
    for i in 0..m {
        for j in 0..n {
            let mut acc = T::zero();
            for p in 0..k {
                acc += a[i * a_row + p * a_col] * b[p * b_row + j * b_col];
            }
            c[i * n + j] = acc;
        }
    }
}

/// Products smaller than this many multiply-adds cost the tuned kernel more in setup than they take.
const TUNED_FROM: usize = 4096;

/// c[m×n] = op(a)[m×k] · op(b)[k×n]: `matmul`'s result (to rounding), through the tuned kernel where the
/// product is large enough to gain from it.
// Inlined, so that each call site's plain loop is compiled for its shape's transposes, as the reference's are.
#[inline(always)]
pub fn fast_matmul<T: Real>(c: &mut [T], a: &[T], b: &[T], shape: MatmulShape) {
    match shape.m * shape.k * shape.n < TUNED_FROM {
        true => matmul(c, a, b, shape),
        false => T::tuned_matmul(c, a, b, shape),
    }
}

/// z[rows×cols] += bias[cols], every row
pub fn bias_add<T: Real>(z: &mut [T], bias: &[T]) {
    for row in z.chunks_exact_mut(bias.len()) {
        for (z, &b) in row.iter_mut().zip(bias) {
            *z += b;
        }
    }
}

/// dbias[cols] = Σ_rows dz[rows×cols], the column sum
pub fn bias_backward<T: Real>(dbias: &mut [T], dz: &[T]) {
    let cols = dbias.len();
    // A column at a time, summed in a local: adding into dbias row by row waits on memory at every row.
    for (c, db) in dbias.iter_mut().enumerate() {
        *db = dz
            .iter()
            .skip(c)
            .step_by(cols)
            .fold(T::zero(), |sum, &d| sum + d);
    }
}

/// a[len] = f(z[len]) for an element-wise activation f (softmax has its own function)
pub fn activation_forward<T: Real>(a: &mut [T], z: &[T], f: Activation) {
    let (zero, one) = (T::zero(), T::one());
    let leak = T::from(LEAKY_SLOPE).expect("a small constant converts to any float");
    for (a, &z) in a.iter_mut().zip(z) {
        *a = match f {
            Activation::Identity => z,
            Activation::Sigmoid => one / (one + (-z).exp()),
            Activation::Tanh => z.tanh(),
            // NaN stays NaN (`f32::max` would make it 0), so a diverged run shows in its loss.
            Activation::Relu => {
                if z < zero {
                    zero
                } else {
                    z
                }
            }
            Activation::LeakyRelu => {
                if z > zero {
                    z
                } else {
                    leak * z
                }
            }
            Activation::Softmax => panic!("softmax is row-wise: call softmax_forward"),
        };
    }
}

/// The slope of leaky relu below zero.
pub const LEAKY_SLOPE: f32 = 0.01;

/// dz[len] = da[len] ⊙ f′, with f′ written in terms of the activation's output a
pub fn activation_backward<T: Real>(dz: &mut [T], da: &[T], a: &[T], f: Activation) {
    let (zero, one) = (T::zero(), T::one());
    let leak = T::from(LEAKY_SLOPE).expect("a small constant converts to any float");
    for ((dz, &da), &a) in dz.iter_mut().zip(da).zip(a) {
        let slope = match f {
            Activation::Identity => one,
            Activation::Sigmoid => a * (one - a),
            Activation::Tanh => one - a * a,
            Activation::Relu => {
                if a > zero {
                    one
                } else {
                    zero
                }
            }
            Activation::LeakyRelu => {
                if a > zero {
                    one
                } else {
                    leak
                }
            }
            Activation::Softmax => {
                panic!("softmax's gradient is taken together with ce: see loss_backward")
            }
        };
        *dz = da * slope;
    }
}

/// a[rows×cols] = softmax(z) along each row, shifted by the row's maximum so that exp never overflows
pub fn softmax_forward<T: Real>(a: &mut [T], z: &[T], cols: usize) {
    for (a, z) in a.chunks_exact_mut(cols).zip(z.chunks_exact(cols)) {
        let max = z.iter().copied().fold(T::neg_infinity(), T::max);
        let mut sum = T::zero();
        for (a, &z) in a.iter_mut().zip(z) {
            *a = (z - max).exp();
            sum += *a;
        }
        for a in a.iter_mut() {
            *a = *a / sum;
        }
    }
}

/// d[len] = scale · (output − target): the gradient of every loss here, see [`Loss::gradient_scale`]. For
/// sse and mse it is dO; for bce and ce it is already dZ, through the sigmoid or softmax.
pub fn loss_backward<T: Real>(d: &mut [T], output: &[T], target: &[T], scale: T) {
    for ((d, &o), &y) in d.iter_mut().zip(output).zip(target) {
        *d = scale * (o - y);
    }
}

/// The loss of a batch of `cols`-wide rows, in f64. bce and ce use the logits `z` (the output layer's
/// pre-activation): max(z, 0) − z·y + ln(1 + e^(−|z|)) never takes log(0), nor does log-sum-exp.
pub fn loss_value<T: Real>(loss: Loss, z: &[T], output: &[T], target: &[T], cols: usize) -> f64 {
    let f = |v: T| v.to_f64().expect("a float converts to f64");
    let rows = target.len() / cols.max(1);
    let pairs = output.iter().zip(target).map(|(&o, &y)| (f(o), f(y)));
    let sum: f64 = match loss {
        Loss::Sse => pairs.map(|(o, y)| 0.5 * (y - o) * (y - o)).sum(),
        Loss::Mse => pairs.map(|(o, y)| (y - o) * (y - o)).sum(),
        Loss::Bce => z
            .iter()
            .zip(target)
            .map(|(&z, &y)| {
                let (z, y) = (f(z), f(y));
                z.max(0.0) - z * y + (-z.abs()).exp().ln_1p()
            })
            .sum(),
        Loss::Ce => z
            .chunks_exact(cols)
            .zip(target.chunks_exact(cols))
            .map(|(z, y)| {
                let z: Vec<f64> = z.iter().map(|&v| f(v)).collect();
                let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let log_sum_exp = max + z.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
                log_sum_exp - z.iter().zip(y).map(|(z, &y)| z * f(y)).sum::<f64>()
            })
            .sum(),
    };
    sum / loss.mean_over(rows, cols) as f64
}

/// How a network stands on a data set: what the progress of a run reports.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Metrics {
    /// The loss as [`loss_value`] defines it (the GPU engines sum it in f32).
    pub loss: f64,
    /// The largest |output − target| over every output of every row; NaN if any is NaN.
    pub max_error: f32,
    /// Rows whose predicted class is the target's ([`crate::data::class_of`]); 0 for regression losses.
    pub correct: usize,
}

/// The metrics of `output` (and the logits `z`) against `target`, rows of `cols`: the twin of the GPU's
/// `measure_rows` and `measure_sum` together.
pub fn measure(loss: Loss, z: &[f32], output: &[f32], target: &[f32], cols: usize) -> Metrics {
    let correct = match loss.is_classification() {
        true => output
            .chunks(cols.max(1))
            .zip(target.chunks(cols.max(1)))
            .filter(|(o, y)| class_of(loss, o) == class_of(loss, y))
            .count(),
        false => 0,
    };
    Metrics {
        loss: loss_value(loss, z, output, target, cols),
        max_error: crate::bench::max_abs_diff(output, target),
        correct,
    }
}

/// out[order.len()×cols] = the rows of src[?×cols] that `order` lists, in that order
pub fn gather_rows<T: Real>(out: &mut [T], src: &[T], order: &[u32], cols: usize) {
    for (row, &from) in out.chunks_exact_mut(cols).zip(order) {
        let from = from as usize * cols;
        row.copy_from_slice(&src[from..from + cols]);
    }
}

/// velocity = μ·velocity + grads; params −= lr · velocity (PyTorch's SGD; plain descent when μ = 0)
pub fn sgd_update<T: Real>(params: &mut [T], grads: &[T], velocity: &mut [T], lr: T, momentum: T) {
    for ((p, &g), v) in params.iter_mut().zip(grads).zip(velocity) {
        *v = momentum * *v + g;
        *p = *p - lr * *v;
    }
}

/// One Adam step number `step` (from 1), PyTorch's AdamW formula: θ −= lr·λ·θ; m = β1·m + (1−β1)·g;
/// v = β2·v + (1−β2)·g²; θ −= lr · m̂ / (√v̂ + ε) with m̂ = m / (1 − β1^step), v̂ = v / (1 − β2^step)
pub fn adam_update<T: Real>(
    params: &mut [T],
    grads: &[T],
    moments: (&mut [T], &mut [T]),
    step: T,
    lr: T,
    weight_decay: T,
) {
    let c = |v: f32| T::from(v).expect("an f32 converts to any float");
    let (beta1, beta2, eps, one) = (
        c(Optimizer::ADAM_BETA1),
        c(Optimizer::ADAM_BETA2),
        c(Optimizer::ADAM_EPSILON),
        T::one(),
    );
    let (correction1, correction2) = (one - beta1.powf(step), one - beta2.powf(step));
    let (m, v) = moments;
    for (((p, &g), m), v) in params.iter_mut().zip(grads).zip(m).zip(v) {
        *p = *p - lr * weight_decay * *p;
        *m = beta1 * *m + (one - beta1) * g;
        *v = beta2 * *v + (one - beta2) * g * g;
        *p = *p - lr * (*m / correction1) / ((*v / correction2).sqrt() + eps);
    }
}

/// What a forward pass over a whole data set gives: per row the outputs and the output layer's logits, and
/// the loss over all rows.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    pub outputs: Vec<f32>,
    pub logits: Vec<f32>,
    pub loss: f64,
}

impl Evaluation {
    /// The evaluation of `network`'s `outputs` and `logits` against `targets`: their loss beside them.
    pub fn new(network: &Network, outputs: Vec<f32>, logits: Vec<f32>, targets: &[f32]) -> Self {
        let loss = loss_value(
            network.loss(),
            &logits,
            &outputs,
            targets,
            network.outputs(),
        );
        Evaluation {
            outputs,
            logits,
            loss,
        }
    }
}

/// Training on the CPU, step by step as the GPU does it: the data in [`Rows`], the network's numbers in
/// [`Layers`].
///
/// `FAST` picks the fast path (see [`FastCpuTrainer`]) at compile time, so that neither pays for the other.
pub struct CpuTrainer<T: Real = f32, const FAST: bool = false> {
    rows: Rows<T>,
    layers: Layers<T, FAST>,
    epoch: u64,
}

/// The data set, and room for a mini-batch gathered from it.
struct Rows<T> {
    count: usize,
    inputs: Vec<T>,
    targets: Vec<T>,
    batch_inputs: Vec<T>,
    batch_targets: Vec<T>,
}

impl<T: Real> Rows<T> {
    /// The rows at `positions` of the epoch's order (`row_at` gives each), copied into the batch: its inputs
    /// and targets.
    fn gather(
        &mut self,
        row_at: impl Fn(usize) -> usize,
        positions: std::ops::Range<usize>,
    ) -> (&[T], &[T]) {
        let (input_width, output_width) = (
            self.inputs.len() / self.count,
            self.targets.len() / self.count,
        );
        for (i, position) in positions.clone().enumerate() {
            let row = row_at(position);
            for (src, dst, width) in [
                (&self.inputs, &mut self.batch_inputs, input_width),
                (&self.targets, &mut self.batch_targets, output_width),
            ] {
                dst[i * width..][..width].copy_from_slice(&src[row * width..][..width]);
            }
        }
        (
            &self.batch_inputs[..positions.len() * input_width],
            &self.batch_targets[..positions.len() * output_width],
        )
    }
}

/// The memory the machine can still give, as Linux's /proc/meminfo says (MemAvailable); None where it does
/// not say.
fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib.saturating_mul(1024))
}

/// The network's numbers: parameters, gradients, optimizer state and activations.
///
/// Per weight layer l: `activations` holds its pre-activation z and its output; their gradients are
/// `dpre[l]` and `dpost[l]`. All are sized for the whole data set; a mini-batch uses the first rows.
struct Layers<T, const FAST: bool> {
    network: Network,
    config: TrainConfig,
    layout: ParamLayout,
    params: Vec<T>,
    grads: Vec<T>,
    state: Vec<T>,
    step: u64,
    activations: Activations<T>,
    dpre: Vec<Vec<T>>,
    dpost: Vec<Vec<T>>,
}

/// The reference's steps with every product of [`TUNED_FROM`] multiply-adds or more in the tuned kernel
/// (`fast_matmul`) and, for networks of 2^16 parameters or more, the optimizer step a share a core: the
/// same results to rounding, in a fraction of the time on layers of hundreds of units.
pub type FastCpuTrainer<T = f32> = CpuTrainer<T, true>;

/// The CPU engine's trainer of one run: [`LaneTrainer`] for a network it [suits](LaneTrainer::suits),
/// [`FastCpuTrainer`] otherwise.
pub enum CpuEngine {
    Lanes(LaneTrainer),
    Fast(FastCpuTrainer),
}

impl CpuEngine {
    pub fn new(
        network: &Network,
        params: &[f32],
        data: &Dataset,
        config: TrainConfig,
    ) -> Result<Self> {
        Ok(match LaneTrainer::suits(network) {
            true => CpuEngine::Lanes(LaneTrainer::new(network, params, data, config)?),
            false => CpuEngine::Fast(FastCpuTrainer::new(network, params, data, config)?),
        })
    }

    pub fn train(&mut self, epochs: usize) {
        match self {
            CpuEngine::Lanes(t) => t.train(epochs),
            CpuEngine::Fast(t) => t.train(epochs),
        }
    }

    pub fn evaluate(&mut self) -> Evaluation {
        match self {
            CpuEngine::Lanes(t) => t.evaluate(),
            CpuEngine::Fast(t) => t.evaluate(),
        }
    }

    pub fn params(&self) -> &[f32] {
        match self {
            CpuEngine::Lanes(t) => t.params(),
            CpuEngine::Fast(t) => t.params(),
        }
    }

    pub fn optimizer_state(&self) -> Vec<f32> {
        match self {
            CpuEngine::Lanes(t) => t.optimizer_state(),
            CpuEngine::Fast(t) => t.optimizer_state(),
        }
    }

    pub fn epoch(&self) -> u64 {
        match self {
            CpuEngine::Lanes(t) => t.epoch(),
            CpuEngine::Fast(t) => t.epoch(),
        }
    }

    pub fn resume(&mut self, epoch: u64, state: &[f32]) -> Result<()> {
        match self {
            CpuEngine::Lanes(t) => t.resume(epoch, state),
            CpuEngine::Fast(t) => t.resume(epoch, state),
        }
    }
}

impl<T: Real, const FAST: bool> CpuTrainer<T, FAST> {
    /// A trainer of `network` from `params` on `data`: the reference's plain loops, or the fast path.
    pub fn new(
        network: &Network,
        params: &[f32],
        data: &Dataset,
        config: TrainConfig,
    ) -> Result<Self> {
        let layout = Self::check_start(network, params, data, &config)?;
        // The gradients of z and f(z) have their shapes.
        let gradients = Activations::<T>::new(network, data.rows);
        Ok(CpuTrainer {
            rows: Rows {
                count: data.rows,
                inputs: convert(&data.inputs),
                targets: convert(&data.targets),
                batch_inputs: vec![T::zero(); data.inputs.len()],
                batch_targets: vec![T::zero(); data.targets.len()],
            },
            layers: Layers {
                params: convert(params),
                grads: vec![T::zero(); layout.len],
                state: vec![T::zero(); layout.len * config.optimizer.state_per_param()],
                step: 0,
                activations: Activations::new(network, data.rows),
                dpre: gradients.pre,
                dpost: gradients.post,
                network: network.clone(),
                config,
                layout,
            },
            epoch: 0,
        })
    }

    /// Checks a run of `network` from `params` on `data` (its settings, the parameters' count, the memory it
    /// takes) before anything is allocated, and gives the parameters' layout.
    pub(crate) fn check_start(
        network: &Network,
        params: &[f32],
        data: &Dataset,
        config: &TrainConfig,
    ) -> Result<ParamLayout> {
        let layout = check_run(network, data, config)?;
        check_params_len(&layout, params.len())?;
        Self::check_size(network, data.rows, config, 1)?;
        Ok(layout)
    }

    /// Checks that `runs` trainers of `network` on `rows` rows fit in the memory the machine has free, before
    /// anything is allocated.
    pub fn check_size(
        network: &Network,
        rows: usize,
        config: &TrainConfig,
        runs: usize,
    ) -> Result<()> {
        let (rows, runs) = (rows as u64, runs as u64);
        let params = network.layout().len as u64;
        let units: u64 = network.sizes()[1..].iter().map(|&s| s as u64).sum();
        let width = (network.inputs() + network.outputs()) as u64;
        // Parameters, gradients and state; z, f(z) and their gradients per layer; the data and a batch copy.
        let values = params
            .saturating_mul(2 + config.optimizer.state_per_param() as u64)
            .saturating_add(rows.saturating_mul(units).saturating_mul(4))
            .saturating_add(rows.saturating_mul(width).saturating_mul(2));
        let needed = values
            .saturating_mul(size_of::<T>() as u64)
            .saturating_mul(runs);
        match available_memory() {
            Some(available) if needed > available => Err(Error::OutOfMemory {
                what: format!("training {runs} network(s) [{network}] on {rows} rows on the CPU"),
                needed,
                available,
            }),
            _ => Ok(()),
        }
    }

    /// Runs `epochs` epochs; each visits every row once, a mini-batch per step.
    pub fn train(&mut self, epochs: usize) {
        let config = self.layers.config;
        let count = self.rows.count;
        let batches = config.batches(count);
        for _ in 0..epochs {
            let lr = config.schedule.rate(config.lr, self.epoch);
            for batch in &batches {
                let (x, y) = if config.shuffles(count) {
                    self.rows.gather(
                        |position| config.row_at(self.epoch, count, position),
                        batch.clone(),
                    )
                } else {
                    (&self.rows.inputs[..], &self.rows.targets[..])
                };
                self.layers.forward(x, batch.len());
                self.layers.backward(x, y, batch.len());
                self.layers.update(lr);
            }
            self.epoch += 1;
        }
    }

    /// Outputs, logits and loss over the whole data set under the current parameters.
    pub fn evaluate(&mut self) -> Evaluation {
        let (layers, rows) = (&mut self.layers, &self.rows);
        layers.forward(&rows.inputs, rows.count);
        let last = layers.layout.layers.len() - 1;
        let activations = &layers.activations;
        let (logits, outputs) = (&activations.pre[last], &activations.post[last]);
        Evaluation {
            outputs: to_f32(outputs),
            logits: to_f32(logits),
            loss: loss_value(
                layers.network.loss(),
                logits,
                outputs,
                &rows.targets,
                layers.network.outputs(),
            ),
        }
    }

    /// The network's outputs for every row under the current parameters.
    pub fn outputs(&mut self) -> Vec<f32> {
        self.evaluate().outputs
    }

    /// The loss over the whole data set under the current parameters, in f64.
    pub fn loss(&mut self) -> f64 {
        self.evaluate().loss
    }

    /// The gradient of the whole-set loss under the current parameters, without updating them.
    pub fn gradients(&mut self) -> &[T] {
        let rows = &self.rows;
        self.layers.forward(&rows.inputs, rows.count);
        self.layers
            .backward(&rows.inputs, &rows.targets, rows.count);
        &self.layers.grads
    }

    pub fn params(&self) -> &[T] {
        &self.layers.params
    }

    pub fn params_mut(&mut self) -> &mut [T] {
        &mut self.layers.params
    }

    /// The optimizer's state (velocity, or both Adam moments), laid out like the parameters one after another.
    pub fn optimizer_state(&self) -> Vec<f32> {
        to_f32(&self.layers.state)
    }

    /// Epochs trained so far.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Continues a run saved after `epoch` epochs with the optimizer's `state`, so that training goes on
    /// exactly as if it had never stopped (the batch order depends only on the seed and the epoch).
    pub fn resume(&mut self, epoch: u64, state: &[f32]) -> Result<()> {
        let layers = &mut self.layers;
        check_state_len(layers.state.len(), state.len())?;
        layers.state = convert(state);
        layers.step = layers.config.steps_before(epoch, self.rows.count);
        self.epoch = epoch;
        Ok(())
    }

    pub fn layout(&self) -> &ParamLayout {
        &self.layers.layout
    }
}

impl<T: Real, const FAST: bool> Layers<T, FAST> {
    fn forward(&mut self, x: &[T], rows: usize) {
        let Layers {
            network,
            layout,
            params,
            ..
        } = self;
        self.activations
            .forward::<FAST>(network, layout, params, x, rows);
    }

    /// The loss gradient, then per layer from the last: dZ, dW = Aᵀ·dZ, db = Σ_rows dZ, dA_prev = dZ·Wᵀ.
    fn backward(&mut self, x: &[T], y: &[T], rows: usize) {
        let multiply = product::<T, FAST>;
        let last = self.layout.layers.len() - 1;
        let loss = self.network.loss();
        let n = rows * self.network.outputs();
        let scale = T::from(loss.gradient_scale(rows, self.network.outputs()))
            .expect("an f32 converts to any float");
        // bce and ce give dZ directly; sse and mse give dO, which the activation's derivative turns into dZ.
        let fused = loss.includes_output_activation();
        let d = if fused {
            &mut self.dpre[last]
        } else {
            &mut self.dpost[last]
        };
        let post = &self.activations.post;
        loss_backward(&mut d[..n], &post[last][..n], &y[..n], scale);
        for (l, layer) in self.layout.layers.iter().enumerate().rev() {
            let n = rows * layer.outputs;
            if l < last || !fused {
                let f = self.network.activation(l);
                activation_backward(
                    &mut self.dpre[l][..n],
                    &self.dpost[l][..n],
                    &post[l][..n],
                    f,
                );
            }
            let input = if l == 0 {
                x
            } else {
                &post[l - 1][..rows * layer.inputs]
            };
            let dz = &self.dpre[l][..n];
            let dweight = MatmulShape::new(layer.inputs, rows, layer.outputs).transpose_a();
            multiply(&mut self.grads[layer.weight.clone()], input, dz, dweight);
            bias_backward(&mut self.grads[layer.bias.clone()], dz);
            if l > 0 {
                let dinput = MatmulShape::new(rows, layer.outputs, layer.inputs).transpose_b();
                let dprev = &mut self.dpost[l - 1][..rows * layer.inputs];
                multiply(dprev, dz, &self.params[layer.weight.clone()], dinput);
            }
        }
    }

    /// One optimizer step over every parameter at once, at the epoch's learning rate `lr`.
    fn update(&mut self, lr: f32) {
        self.step += 1;
        // The fast trainer updates a large network a share of the parameters a core; each value's step is
        // its own, so the shares change no result.
        let shares = match FAST {
            true => (self.layout.len / PARALLEL_FROM).clamp(1, cores()),
            false => 1,
        };
        let optimizer = self.config.optimizer;
        optimizer_step(
            optimizer,
            self.step,
            lr,
            &mut self.params,
            &self.grads,
            &mut self.state,
            shares,
        );
    }
}

/// Step number `step` (from 1) of `optimizer` at the learning rate `lr`: `sgd_update` or `adam_update` over
/// every parameter, in `shares` parts on as many threads.
fn optimizer_step<T: Real>(
    optimizer: Optimizer,
    step: u64,
    lr: f32,
    params: &mut [T],
    grads: &[T],
    state: &mut [T],
    shares: usize,
) {
    let c = |v: f32| T::from(v).expect("an f32 converts to any float");
    let lr = c(lr);
    let len = params.len();
    let share = len.div_ceil(shares).max(1);
    let (params, grads) = (params.chunks_mut(share), grads.chunks(share));
    match optimizer {
        Optimizer::Sgd { momentum } => {
            let velocity = state.chunks_mut(share);
            in_parallel(params.zip(grads).zip(velocity), |((p, g), v)| {
                sgd_update(p, g, v, lr, c(momentum))
            });
        }
        Optimizer::Adam { weight_decay } => {
            let (m, v) = state.split_at_mut(len);
            let step = T::from(step).expect("a step count converts to any float");
            let moments = m.chunks_mut(share).zip(v.chunks_mut(share));
            in_parallel(params.zip(grads).zip(moments), |((p, g), m)| {
                adam_update(p, g, m, step, lr, c(weight_decay))
            });
        }
    }
}

/// `fast_matmul` in the fast trainer, `matmul` in the reference.
fn product<T: Real, const FAST: bool>(c: &mut [T], a: &[T], b: &[T], shape: MatmulShape) {
    match FAST {
        true => fast_matmul(c, a, b, shape),
        false => matmul(c, a, b, shape),
    }
}

/// Parameters below which a share of an update is not worth a thread.
const PARALLEL_FROM: usize = 1 << 16;

/// The machine's cores, as far as this process may use them; asked once, since asking reads the cgroup's
/// files each time.
pub(crate) fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Runs `work` on every item, the first on this thread and each other on a thread of its own.
pub(crate) fn in_parallel<I: Send>(items: impl Iterator<Item = I>, work: impl Fn(I) + Sync) {
    let mut items = items.peekable();
    let Some(first) = items.next() else {
        return;
    };
    if items.peek().is_none() {
        // One item needs no scope: setting one up costs a small network's whole step.
        return work(first);
    }
    std::thread::scope(|scope| {
        for item in items {
            scope.spawn(|| work(item));
        }
        work(first);
    });
}

/// The forward pass's numbers: per weight layer its pre-activation z (`pre`) and its output f(z) (`post`),
/// for up to the rows they were sized for.
struct Activations<T> {
    pre: Vec<Vec<T>>,
    post: Vec<Vec<T>>,
}

impl<T: Real> Activations<T> {
    fn new(network: &Network, rows: usize) -> Self {
        let per_layer = || -> Vec<Vec<T>> {
            network.sizes()[1..]
                .iter()
                .map(|&s| vec![T::zero(); rows * s])
                .collect()
        };
        Activations {
            pre: per_layer(),
            post: per_layer(),
        }
    }

    /// Z = A·W + b, A' = f(Z), layer by layer over the first `rows` rows of `x`.
    fn forward<const FAST: bool>(
        &mut self,
        network: &Network,
        layout: &ParamLayout,
        params: &[T],
        x: &[T],
        rows: usize,
    ) {
        for (l, layer) in layout.layers.iter().enumerate() {
            let (before, after) = self.post.split_at_mut(l);
            let input = if l == 0 {
                x
            } else {
                &before[l - 1][..rows * layer.inputs]
            };
            let z = &mut self.pre[l][..rows * layer.outputs];
            let a = &mut after[0][..rows * layer.outputs];
            let shape = MatmulShape::new(rows, layer.inputs, layer.outputs);
            product::<T, FAST>(z, input, &params[layer.weight.clone()], shape);
            bias_add(z, &params[layer.bias.clone()]);
            match network.activation(l) {
                Activation::Softmax => softmax_forward(a, z, layer.outputs),
                f if FAST => T::fast_activation(a, z, f),
                f => activation_forward(a, z, f),
            }
        }
    }
}

/// Rows a forward-only pass holds at once: its memory stays bounded whatever the number of rows.
const PREDICT_ROWS: usize = 4096;

/// Outputs of `network` under `params` for `rows` rows of `inputs`, by the forward pass alone (with
/// `fast_matmul`): no gradients and no optimizer state, and activations for a few thousand rows at a time.
pub fn predict(network: &Network, params: &[f32], inputs: &[f32], rows: usize) -> Result<Vec<f32>> {
    forward_only(network, params, inputs, rows).map(|(outputs, _)| outputs)
}

/// Outputs, logits and loss of `network` under `params` on `data`, by [`predict`]'s forward pass alone.
pub fn evaluate(network: &Network, params: &[f32], data: &Dataset) -> Result<Evaluation> {
    let (outputs, logits) = forward_only(network, params, &data.inputs, data.rows)?;
    Ok(Evaluation::new(network, outputs, logits, &data.targets))
}

/// [`predict`]'s forward pass: the outputs and the logits of every row.
fn forward_only(
    network: &Network,
    params: &[f32],
    inputs: &[f32],
    rows: usize,
) -> Result<(Vec<f32>, Vec<f32>)> {
    let layout = network.layout();
    check_params_len(&layout, params.len())?;
    let (width, outputs) = (network.inputs(), network.outputs());
    if inputs.len() != rows * width {
        return Err(Error::ShapeMismatch {
            op: "predict",
            expected: format!("{rows} rows of {width} inputs"),
            got: format!("{} values", inputs.len()),
        });
    }
    let mut activations = Activations::<f32>::new(network, rows.min(PREDICT_ROWS));
    let (mut all_outputs, mut all_logits) = (
        Vec::with_capacity(rows * outputs),
        Vec::with_capacity(rows * outputs),
    );
    let last = layout.layers.len() - 1;
    for chunk in inputs.chunks(PREDICT_ROWS * width) {
        let n = chunk.len() / width;
        activations.forward::<true>(network, &layout, params, chunk, n);
        all_logits.extend_from_slice(&activations.pre[last][..n * outputs]);
        all_outputs.extend_from_slice(&activations.post[last][..n * outputs]);
    }
    Ok((all_outputs, all_logits))
}

pub(crate) fn check_state_len(expected: usize, got: usize) -> Result<()> {
    if got == expected {
        return Ok(());
    }
    Err(Error::ShapeMismatch {
        op: "optimizer state",
        expected: format!("{expected} values"),
        got: format!("{got} values"),
    })
}

pub(crate) fn check_params_len(layout: &ParamLayout, got: usize) -> Result<()> {
    if got == layout.len {
        return Ok(());
    }
    Err(Error::ShapeMismatch {
        op: "initial parameters",
        expected: format!("{} values", layout.len),
        got: format!("{got} values"),
    })
}

fn convert<T: Real>(values: &[f32]) -> Vec<T> {
    values
        .iter()
        .map(|&v| T::from(v).expect("an f32 converts to any float"))
        .collect()
}

fn to_f32<T: Real>(values: &[T]) -> Vec<f32> {
    values
        .iter()
        .map(|v| v.to_f32().expect("a float converts to f32"))
        .collect()
}
