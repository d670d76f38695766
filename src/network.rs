//! The network as data: its layer sizes, the layout of its parameters, the seeded initial weights and the
//! hyper-parameters every trainer checks the same way.

use std::ops::Range;

use rand::{RngExt, SeedableRng, rngs::StdRng};

use crate::{Error, Result};

/// A seed for which the tutorial's 2-3-1 network converges on XOR in 10000 epochs (checked by a test).
pub const DEFAULT_SEED: u64 = 7;

/// Layer sizes from input to output, e.g. `[2, 3, 1]`: two inputs, one hidden layer of three, one output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Network {
    sizes: Vec<usize>,
}

impl Network {
    /// Checks the sizes: at least an input and an output layer, none of them empty.
    pub fn new(sizes: Vec<usize>) -> Result<Self> {
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
        Ok(Network { sizes })
    }

    /// Parses a comma-separated list such as `2,8,8,1`.
    pub fn parse(text: &str) -> Result<Self> {
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
        Network::new(sizes)
    }

    pub fn sizes(&self) -> &[usize] {
        &self.sizes
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

    /// The tutorial's initialisation: weights from a standard normal, biases zero, drawn from `seed` layer by
    /// layer in row-major order. CPU and GPU trainers start from this same vector.
    pub fn init_params(&self, seed: u64) -> Vec<f32> {
        let mut rng = StdRng::seed_from_u64(seed);
        let layout = self.layout();
        let mut params = vec![0.0; layout.len];
        for layer in &layout.layers {
            for w in &mut params[layer.weight.clone()] {
                *w = standard_normal(&mut rng);
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

/// A learning rate must be a finite positive number.
pub fn check_lr(lr: f32) -> Result<()> {
    if lr.is_finite() && lr > 0.0 {
        Ok(())
    } else {
        Err(Error::invalid(
            "lr",
            lr,
            "the learning rate must be a finite number greater than 0, e.g. 0.1",
        ))
    }
}

/// Box–Muller: two uniforms in (0, 1] give one standard normal sample.
fn standard_normal(rng: &mut StdRng) -> f32 {
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

    /// Checks that the data fits the network's first and last layer.
    pub fn check_fits(&self, network: &Network) -> Result<()> {
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
