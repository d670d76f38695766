//! The CPU reference: plain loops that can be checked against the math by reading them. Every GPU kernel has
//! a twin here of the same name, taking outputs first, then inputs. Matrices are row-major slices.
//!
//! Everything is generic over the float type so that tests can check the gradients in f64.

use num_traits::Float;

use crate::network::{Dataset, Network, ParamLayout, check_lr};
use crate::{Error, Result};

/// The float types the reference runs in (f32 to compare with the GPU, f64 to check gradients).
pub trait Real: Float + std::iter::Sum + std::ops::AddAssign + std::fmt::Debug + 'static {}
impl<T: Float + std::iter::Sum + std::ops::AddAssign + std::fmt::Debug + 'static> Real for T {}

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

/// c[m×n] = op(a)[m×k] · op(b)[k×n]
pub fn matmul<T: Real>(c: &mut [T], a: &[T], b: &[T], shape: MatmulShape) {
    let MatmulShape { m, k, n, .. } = shape;
    assert!(
        c.len() == m * n && a.len() == m * k && b.len() == k * n,
        "matmul {shape:?}: got c {} a {} b {} elements",
        c.len(),
        a.len(),
        b.len()
    );
    for i in 0..m {
        for j in 0..n {
            let mut acc = T::zero();
            for p in 0..k {
                acc += a[shape.a_index(i, p)] * b[shape.b_index(p, j)];
            }
            c[i * n + j] = acc;
        }
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
    dbias.fill(T::zero());
    for row in dz.chunks_exact(dbias.len()) {
        for (db, &d) in dbias.iter_mut().zip(row) {
            *db += d;
        }
    }
}

/// a[len] = σ(z[len]) = 1 / (1 + e^(−z))
pub fn sigmoid_forward<T: Real>(a: &mut [T], z: &[T]) {
    for (a, &z) in a.iter_mut().zip(z) {
        *a = T::one() / (T::one() + (-z).exp());
    }
}

/// dz[len] = da[len] ⊙ a ⊙ (1 − a), the sigmoid's derivative written in terms of its output a
pub fn sigmoid_backward<T: Real>(dz: &mut [T], da: &[T], a: &[T]) {
    for ((dz, &da), &a) in dz.iter_mut().zip(da).zip(a) {
        *dz = da * a * (T::one() - a);
    }
}

/// doutput[len] = output − target: the gradient of ½·Σ(target − output)²
pub fn sse_backward<T: Real>(doutput: &mut [T], output: &[T], target: &[T]) {
    for ((d, &o), &y) in doutput.iter_mut().zip(output).zip(target) {
        *d = o - y;
    }
}

/// params[len] −= lr · grads[len]
pub fn sgd_update<T: Real>(params: &mut [T], grads: &[T], lr: T) {
    for (p, &g) in params.iter_mut().zip(grads) {
        *p = *p - lr * g;
    }
}

/// ½·Σ(target − output)² over the whole batch, in f64 whatever the inputs.
pub fn sse_loss<T: Real>(output: &[T], target: &[T]) -> f64 {
    output
        .iter()
        .zip(target)
        .map(|(&o, &y)| {
            let e = (y - o).to_f64().expect("a float converts to f64");
            0.5 * e * e
        })
        .sum()
}

/// Full-batch gradient descent on the CPU, step by step as in DESIGN §1.
///
/// `activations[0]` is the input batch and `activations[l]` the output of layer l; `pre[l-1]` holds layer l's
/// pre-activation `z`. Gradients go into `grads`, laid out like `params`.
pub struct CpuTrainer<T: Real = f32> {
    layout: ParamLayout,
    rows: usize,
    lr: T,
    params: Vec<T>,
    grads: Vec<T>,
    targets: Vec<T>,
    activations: Vec<Vec<T>>,
    pre: Vec<Vec<T>>,
    dactivations: Vec<Vec<T>>,
    dpre: Vec<Vec<T>>,
}

impl<T: Real> CpuTrainer<T> {
    pub fn new(network: &Network, params: &[f32], data: &Dataset, lr: f32) -> Result<Self> {
        check_lr(lr)?;
        data.check_fits(network)?;
        let layout = network.layout();
        check_params_len(&layout, params.len())?;
        let batch = |size: usize| vec![T::zero(); data.rows * size];
        let hidden_and_output = &network.sizes()[1..];
        let mut activations: Vec<Vec<T>> = vec![convert(&data.inputs)];
        activations.extend(hidden_and_output.iter().map(|&s| batch(s)));
        Ok(CpuTrainer {
            rows: data.rows,
            lr: T::from(lr).expect("an f32 converts to any float"),
            params: convert(params),
            grads: vec![T::zero(); layout.len],
            targets: convert(&data.targets),
            pre: hidden_and_output.iter().map(|&s| batch(s)).collect(),
            dactivations: activations
                .iter()
                .map(|a| vec![T::zero(); a.len()])
                .collect(),
            dpre: hidden_and_output.iter().map(|&s| batch(s)).collect(),
            activations,
            layout,
        })
    }

    /// Runs `epochs` full-batch steps: forward, backward, update.
    pub fn train(&mut self, epochs: usize) {
        for _ in 0..epochs {
            self.forward();
            self.backward();
            self.update();
        }
    }

    /// H = σ(X·W1 + b1), O = σ(H·W2 + b2), and so on for every layer.
    pub fn forward(&mut self) {
        for (l, layer) in self.layout.layers.iter().enumerate() {
            let shape = MatmulShape::new(self.rows, layer.inputs, layer.outputs);
            let (inputs, outputs) = self.activations.split_at_mut(l + 1);
            matmul(
                &mut self.pre[l],
                &inputs[l],
                &self.params[layer.weight.clone()],
                shape,
            );
            bias_add(&mut self.pre[l], &self.params[layer.bias.clone()]);
            sigmoid_forward(&mut outputs[0], &self.pre[l]);
        }
    }

    /// dO = (O − Y) ⊙ O ⊙ (1 − O), then dW = Aᵀ·dZ, db = Σ_rows dZ and dA_prev = dZ·Wᵀ layer by layer.
    pub fn backward(&mut self) {
        let depth = self.layout.layers.len();
        sse_backward(
            &mut self.dactivations[depth],
            &self.activations[depth],
            &self.targets,
        );
        for (l, layer) in self.layout.layers.iter().enumerate().rev() {
            sigmoid_backward(
                &mut self.dpre[l],
                &self.dactivations[l + 1],
                &self.activations[l + 1],
            );
            let dweight = MatmulShape::new(layer.inputs, self.rows, layer.outputs).transpose_a();
            matmul(
                &mut self.grads[layer.weight.clone()],
                &self.activations[l],
                &self.dpre[l],
                dweight,
            );
            bias_backward(&mut self.grads[layer.bias.clone()], &self.dpre[l]);
            if l > 0 {
                let dinput = MatmulShape::new(self.rows, layer.outputs, layer.inputs).transpose_b();
                let weight = &self.params[layer.weight.clone()];
                matmul(&mut self.dactivations[l], &self.dpre[l], weight, dinput);
            }
        }
    }

    /// W −= lr · dW for every parameter at once (the tutorial's `W += lr · Xᵀ·dH` with dH's sign flipped).
    pub fn update(&mut self) {
        sgd_update(&mut self.params, &self.grads, self.lr);
    }

    /// The network's outputs for the training inputs under the current parameters.
    pub fn outputs(&mut self) -> Vec<f32> {
        self.forward();
        to_f32(
            self.activations
                .last()
                .expect("a network has an output layer"),
        )
    }

    /// ½·Σ(Y − O)² of the outputs from the last forward pass.
    pub fn loss(&self) -> f64 {
        sse_loss(
            self.activations
                .last()
                .expect("a network has an output layer"),
            &self.targets,
        )
    }

    pub fn params(&self) -> &[T] {
        &self.params
    }

    pub fn params_mut(&mut self) -> &mut [T] {
        &mut self.params
    }

    /// The gradients from the last backward pass, laid out like the parameters.
    pub fn grads(&self) -> &[T] {
        &self.grads
    }

    pub fn layout(&self) -> &ParamLayout {
        &self.layout
    }
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
