//! The network as data: its layer sizes, activations and loss, the layout of its parameters and the seeded
//! initial weights.

use std::ops::Range;

use rand::{RngExt, SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// What a layer applies to its pre-activation `z`. Softmax works on whole rows and only as the output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    Identity,
    Sigmoid,
    Tanh,
    Relu,
    /// max(z, 0.01·z)
    LeakyRelu,
    Softmax,
}

/// What training minimises, summed or averaged as its name says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Loss {
    /// ½·Σ(y − o)² over the batch: the tutorial's.
    Sse,
    /// The mean of (y − o)² over every output of the batch.
    Mse,
    /// Binary cross-entropy on a sigmoid output, from the logits; the mean over the batch.
    Bce,
    /// Softmax cross-entropy over class labels (one-hot targets), from the logits; the mean over the batch.
    Ce,
}

/// Names as the command line and the saved metadata spell them.
macro_rules! named {
    ($ty:ident, $what:literal, $($variant:ident = $name:literal),+) => {
        impl $ty {
            pub const ALL: &[$ty] = &[$($ty::$variant),+];

            pub fn name(self) -> &'static str {
                match self { $($ty::$variant => $name),+ }
            }
        }

        impl std::str::FromStr for $ty {
            type Err = Error;

            fn from_str(text: &str) -> Result<Self> {
                $ty::ALL.iter().copied().find(|v| v.name() == text).ok_or_else(|| {
                    let names: Vec<&str> = $ty::ALL.iter().map(|v| v.name()).collect();
                    Error::invalid($what, text, format!("choose one of {}", names.join(", ")))
                })
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

pub(crate) use named;

named!(
    Activation,
    "activation",
    Identity = "identity",
    Sigmoid = "sigmoid",
    Tanh = "tanh",
    Relu = "relu",
    LeakyRelu = "leaky_relu",
    Softmax = "softmax"
);
named!(
    Loss,
    "loss",
    Sse = "sse",
    Mse = "mse",
    Bce = "bce",
    Ce = "ce"
);

impl Loss {
    /// Whether the loss's gradient already goes through the output activation: bce through the sigmoid and ce
    /// through the softmax both give dZ = (o − y) / rows, which is why they are computed from the logits.
    pub fn includes_output_activation(self) -> bool {
        matches!(self, Loss::Bce | Loss::Ce)
    }

    /// The factor in d = factor · (o − y), the gradient for a batch of `rows` rows of `cols` outputs.
    pub fn gradient_scale(self, rows: usize, cols: usize) -> f32 {
        match self {
            Loss::Sse => 1.0,
            Loss::Mse => 2.0 / (rows * cols) as f32,
            Loss::Bce | Loss::Ce => 1.0 / rows as f32,
        }
    }

    /// How many terms the loss is the mean of, over `rows` rows of `cols` outputs: 1 for sse, which is a sum.
    pub fn mean_over(self, rows: usize, cols: usize) -> usize {
        match self {
            Loss::Sse => 1,
            Loss::Mse => (rows * cols).max(1),
            Loss::Bce | Loss::Ce => rows.max(1),
        }
    }

    /// Classification losses have class labels and an accuracy.
    pub fn is_classification(self) -> bool {
        matches!(self, Loss::Bce | Loss::Ce)
    }
}

/// How the initial weights are drawn (biases start at zero).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Init {
    /// N(0, 1): the tutorial's, kept for its sigmoid network with the sse loss.
    StandardNormal,
    /// N(0, 2 / (inputs + outputs)), Glorot's: suits sigmoid, tanh and identity layers.
    Xavier,
    /// N(0, 2 / inputs), He's: suits relu and leaky relu layers.
    He,
}

/// The most parameters a network may have: 1 GiB of f32, and as much again for each of the gradients and
/// the optimizer's state. Far more than a multilayer perceptron on tabular data needs, and well inside what
/// the offsets (u32) can index.
pub const MAX_PARAMS: usize = 1 << 28;

/// A seed for which the tutorial's 2-3-1 network converges on XOR in 10000 epochs (checked by a test).
pub const DEFAULT_SEED: u64 = 7;

/// Layer sizes from input to output, e.g. `[2, 3, 1]`: two inputs, one hidden layer of three, one output;
/// with the activation of the hidden layers, that of the output layer, and the loss.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Network {
    sizes: Vec<usize>,
    hidden: Activation,
    output: Activation,
    loss: Loss,
}

impl Network {
    /// The tutorial's kind of network: sigmoid everywhere, the sse loss.
    pub fn new(sizes: Vec<usize>) -> Result<Self> {
        Network::build(sizes, Activation::Sigmoid, Activation::Sigmoid, Loss::Sse)
    }

    /// Checks that the pieces fit together: bce needs a sigmoid output, ce a softmax output of at least two
    /// classes, and softmax is only an output.
    pub fn build(
        sizes: Vec<usize>,
        hidden: Activation,
        output: Activation,
        loss: Loss,
    ) -> Result<Self> {
        let sizes = Network::check_sizes(sizes)?;
        if hidden == Activation::Softmax {
            return Err(Error::invalid(
                "activation",
                hidden,
                "softmax normalises a whole row, so it is only an output activation (--output-activation)",
            ));
        }
        let needs = match loss {
            Loss::Bce => Some(Activation::Sigmoid),
            Loss::Ce => Some(Activation::Softmax),
            Loss::Sse | Loss::Mse => None,
        };
        if needs.is_some_and(|needed| needed != output)
            || (needs.is_none() && output == Activation::Softmax)
        {
            return Err(Error::invalid(
                "output-activation",
                output,
                format!(
                    "the {loss} loss needs {}",
                    needs.map_or(
                        "a sigmoid or identity output (softmax goes with ce)".into(),
                        |n| format!("a {n} output")
                    )
                ),
            ));
        }
        let outputs = sizes[sizes.len() - 1];
        if loss == Loss::Ce && outputs < 2 {
            return Err(Error::invalid(
                "layers",
                format!("{sizes:?}"),
                "softmax cross-entropy needs one output per class, at least two",
            ));
        }
        Ok(Network {
            sizes,
            hidden,
            output,
            loss,
        })
    }

    /// At least an input and an output layer, none of them empty, and no more than [`MAX_PARAMS`]
    /// parameters.
    fn check_sizes(sizes: Vec<usize>) -> Result<Vec<usize>> {
        let shown = || format!("{sizes:?}");
        if sizes.len() < 2 {
            return Err(Error::invalid(
                "layers",
                shown(),
                "give at least an input and an output size, e.g. 2,3,1",
            ));
        }
        if let Some(i) = sizes.iter().position(|&s| s == 0) {
            return Err(Error::invalid(
                "layers",
                shown(),
                format!("layer {i} has size 0; every layer needs at least one unit"),
            ));
        }
        let params = sizes.windows(2).try_fold(0usize, |sum, pair| {
            sum.checked_add(pair[0].checked_mul(pair[1])?.checked_add(pair[1])?)
        });
        if params.is_none_or(|p| p > MAX_PARAMS) {
            let counted = params.map_or("too many to count".into(), |p| p.to_string());
            return Err(Error::invalid(
                "layers",
                shown(),
                format!("{counted} parameters, more than this program trains (2²⁸ = {MAX_PARAMS})"),
            ));
        }
        Ok(sizes)
    }

    /// Parses a comma-separated list such as `2,8,8,1` into a [`Network::new`].
    pub fn parse(text: &str) -> Result<Self> {
        Network::new(Network::parse_sizes(text)?)
    }

    /// Parses a comma-separated list of layer sizes such as `2,8,8,1`.
    pub fn parse_sizes(text: &str) -> Result<Vec<usize>> {
        let sizes = text
            .split(',')
            .map(|part| {
                part.trim().parse::<usize>().map_err(|_| {
                    Error::invalid(
                        "layers",
                        text,
                        format!(
                            "{:?} is not a layer size; write sizes separated by commas, e.g. 2,3,1",
                            part.trim()
                        ),
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Network::check_sizes(sizes)
    }

    pub fn sizes(&self) -> &[usize] {
        &self.sizes
    }

    pub fn hidden_activation(&self) -> Activation {
        self.hidden
    }

    pub fn output_activation(&self) -> Activation {
        self.output
    }

    /// The activation after weight layer `l` (0-based).
    pub fn activation(&self, l: usize) -> Activation {
        if l + 1 == self.depth() {
            self.output
        } else {
            self.hidden
        }
    }

    pub fn loss(&self) -> Loss {
        self.loss
    }

    /// The initialisation that suits the activations: the tutorial's standard normal for its own sigmoid/sse
    /// network, He for relu-like hidden layers, Xavier otherwise.
    pub fn default_init(&self) -> Init {
        match (self.hidden, self.loss) {
            (Activation::Sigmoid, Loss::Sse) => Init::StandardNormal,
            (Activation::Relu | Activation::LeakyRelu, _) => Init::He,
            _ => Init::Xavier,
        }
    }

    /// The number of weight layers (one fewer than the sizes).
    pub fn depth(&self) -> usize {
        self.sizes.len() - 1
    }

    pub fn inputs(&self) -> usize {
        self.sizes[0]
    }

    pub fn outputs(&self) -> usize {
        self.sizes[self.depth()]
    }

    /// Where each layer's weight and bias sit in the flat parameter vector.
    pub fn layout(&self) -> ParamLayout {
        let mut carve = Carver::default();
        let layers = self
            .sizes
            .windows(2)
            .map(|pair| LayerParams {
                inputs: pair[0],
                outputs: pair[1],
                weight: carve.take(pair[0] * pair[1]),
                bias: carve.take(pair[1]),
            })
            .collect();
        ParamLayout {
            layers,
            len: carve.used(),
        }
    }

    /// Initial parameters from `seed` with [`Network::default_init`].
    pub fn init_params(&self, seed: u64) -> Vec<f32> {
        self.init_params_with(self.default_init(), seed)
    }

    /// Weights drawn from `seed` layer by layer in row-major order, biases zero. CPU and GPU trainers start
    /// from this same vector.
    pub fn init_params_with(&self, init: Init, seed: u64) -> Vec<f32> {
        let mut rng = StdRng::seed_from_u64(seed);
        let layout = self.layout();
        let mut params = vec![0.0; layout.len];
        for layer in &layout.layers {
            let (fan_in, fan_out) = (layer.inputs as f32, layer.outputs as f32);
            let std = match init {
                Init::StandardNormal => 1.0,
                Init::Xavier => (2.0 / (fan_in + fan_out)).sqrt(),
                Init::He => (2.0 / fan_in).sqrt(),
            };
            for w in &mut params[layer.weight.clone()] {
                *w = std * standard_normal(&mut rng);
            }
        }
        params
    }
}

/// Writes the sizes as `--layers` takes them: `2,3,1`.
impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sizes: Vec<String> = self.sizes.iter().map(|s| s.to_string()).collect();
        f.write_str(&sizes.join(","))
    }
}

/// One layer's parameters: `weight` is inputs×outputs row-major (the tutorial's `X·W`), `bias` is 1×outputs.
#[derive(Clone, Debug)]
pub struct LayerParams {
    pub inputs: usize,
    pub outputs: usize,
    pub weight: Range<usize>,
    pub bias: Range<usize>,
}

/// The flat parameter vector's layout; gradients use the same layout.
#[derive(Clone, Debug)]
pub struct ParamLayout {
    pub layers: Vec<LayerParams>,
    pub len: usize,
}

/// Hands out consecutive ranges of one flat allocation.
#[derive(Default)]
pub(crate) struct Carver {
    next: usize,
}

impl Carver {
    pub(crate) fn take(&mut self, len: usize) -> Range<usize> {
        let range = self.next..self.next + len;
        self.next += len;
        range
    }

    pub(crate) fn used(&self) -> usize {
        self.next
    }
}

/// Box–Muller: two uniforms in (0, 1] give one standard normal sample.
pub(crate) fn standard_normal(rng: &mut StdRng) -> f32 {
    let u1 = 1.0 - rng.random::<f64>();
    let u2 = rng.random::<f64>();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

/// A training set: `inputs` is rows×input_size and `targets` rows×output_size, both row-major.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub rows: usize,
    pub inputs: Vec<f32>,
    pub targets: Vec<f32>,
}

impl Dataset {
    /// The four XOR rows: 00→0, 01→1, 10→1, 11→0.
    pub fn xor() -> Self {
        Dataset {
            rows: 4,
            inputs: vec![0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0],
            targets: vec![0.0, 1.0, 1.0, 0.0],
        }
    }

    /// Checks that the data has rows and fits the network's first and last layer.
    pub fn check_fits(&self, network: &Network) -> Result<()> {
        if self.rows == 0 {
            return Err(Error::ShapeMismatch {
                op: "dataset",
                expected: "at least one row".into(),
                got: "none".into(),
            });
        }
        for (what, data_len, size) in [
            ("inputs", self.inputs.len(), network.inputs()),
            ("targets", self.targets.len(), network.outputs()),
        ] {
            if data_len != self.rows * size {
                return Err(Error::ShapeMismatch {
                    op: "dataset",
                    expected: format!(
                        "{what} of {} rows × {size} (the network {:?})",
                        self.rows,
                        network.sizes()
                    ),
                    got: format!("{data_len} values"),
                });
            }
        }
        Ok(())
    }
}
