//! The fast CPU paths (the tuned matrix multiply, the lane trainer, the forward-only pass) against the plain
//! reference loops, which stay the truth.

mod common;

use common::{HIDDEN, OPTIMIZERS, assert_close, random, targets_for};
use wgmlp::cpu::{self, CpuEngine, FastCpuTrainer, LaneTrainer, MatmulShape};
use wgmlp::{Activation, CpuTrainer, Dataset, Loss, Network, Schedule, TrainConfig};

#[test]
fn fast_matmul_matches_matmul_for_every_transpose_and_size() {
    // Below the tuned kernel's threshold, around it, past it, and with odd sides.
    for (m, k, n) in [
        (1, 1, 1),
        (3, 5, 7),
        (16, 16, 16),
        (17, 64, 33),
        (65, 257, 33),
        (128, 784, 96),
    ] {
        for shape in [
            MatmulShape::new(m, k, n),
            MatmulShape::new(m, k, n).transpose_a(),
            MatmulShape::new(m, k, n).transpose_b(),
            MatmulShape::new(m, k, n).transpose_a().transpose_b(),
        ] {
            let (a, b) = (random(m * k, 1), random(k * n, 2));
            let (mut fast, mut plain) = (vec![f32::NAN; m * n], vec![f32::NAN; m * n]);
            cpu::fast_matmul(&mut fast, &a, &b, shape);
            cpu::matmul(&mut plain, &a, &b, shape);
            // Sums of k products of values in [-1, 1], added in another order.
            assert_close(&format!("{shape:?}"), &fast, &plain, 1e-5 * k as f32, 1e-5);
        }
    }
    let mut empty: Vec<f32> = Vec::new();
    cpu::fast_matmul(&mut empty, &[], &random(12, 3), MatmulShape::new(0, 3, 4));
}

/// Rows and a network large enough that every product of a step goes through the tuned kernel.
fn wide_set(loss: Loss, outputs: usize) -> Dataset {
    Dataset {
        rows: 150,
        inputs: random(150 * 24, 5),
        targets: targets_for(loss, 150, outputs, 6),
    }
}

/// 23 rows of 3 features: not a whole number of lanes, and with batches of 5 the last batch has 3 rows.
fn lane_set(loss: Loss, outputs: usize) -> Dataset {
    Dataset {
        rows: 23,
        inputs: random(23 * 3, 31),
        targets: targets_for(loss, 23, outputs, 32),
    }
}

/// A fast CPU trainer and what a check of it takes: its data (by loss and outputs), layer widths and batch.
struct FastPath {
    trainer: fn(&Network, &[f32], &Dataset, TrainConfig) -> CpuEngine,
    data: fn(Loss, usize) -> Dataset,
    inputs: usize,
    hidden: [usize; 2],
    batch: usize,
}

impl FastPath {
    /// Trains `network` from the same start with the reference and with this path, and asserts that the
    /// parameters, outputs and loss agree.
    fn assert_matches_reference(&self, what: &str, network: &Network, config: TrainConfig) {
        let data = (self.data)(network.loss(), network.outputs());
        let params = network.init_params(9);
        let mut reference = CpuTrainer::<f32>::new(network, &params, &data, config).unwrap();
        let mut fast = (self.trainer)(network, &params, &data, config);
        // Few steps: relu's kink turns a rounding difference into a different slope, which training
        // amplifies.
        reference.train(5);
        fast.train(5);
        let close = |part: &str, got: &[f32], want: &[f32]| {
            assert_close(&format!("{what}: {part}"), got, want, 1e-4, 1e-3)
        };
        close("parameters", fast.params(), reference.params());
        let (got, want) = (fast.evaluate(), reference.evaluate());
        close("outputs", &got.outputs, &want.outputs);
        assert!(
            (got.loss - want.loss).abs() <= 1e-4 * (1.0 + want.loss.abs()),
            "{what}: loss {} against the reference's {}",
            got.loss,
            want.loss
        );
    }

    /// Every hidden activation, with full and mini-batches; every loss; every optimizer, with and without a
    /// schedule.
    fn assert_matches_reference_everywhere(&self) {
        let mini_batches = |config: TrainConfig| TrainConfig {
            batch_size: Some(self.batch),
            shuffle_seed: 4,
            ..config
        };
        let [first, second] = self.hidden;
        for hidden in HIDDEN {
            let sizes = vec![self.inputs, first, second, 3];
            let network = Network::build(sizes, hidden, Activation::Identity, Loss::Mse).unwrap();
            for config in [TrainConfig::sgd(0.05), mini_batches(TrainConfig::sgd(0.05))] {
                let what = format!("{hidden} hidden, batch {:?}", config.batch_size);
                self.assert_matches_reference(&what, &network, config);
            }
        }
        for (output, loss, outputs) in [
            (Activation::Sigmoid, Loss::Sse, 2),
            (Activation::Sigmoid, Loss::Bce, 1),
            (Activation::Softmax, Loss::Ce, 4),
        ] {
            let sizes = vec![self.inputs, first, outputs];
            let network = Network::build(sizes, Activation::Tanh, output, loss).unwrap();
            let config = mini_batches(TrainConfig::sgd(0.05));
            self.assert_matches_reference(&format!("{loss} loss"), &network, config);
        }
        let sizes = vec![self.inputs, first, 4];
        let network =
            Network::build(sizes, Activation::Relu, Activation::Softmax, Loss::Ce).unwrap();
        for (optimizer, lr) in OPTIMIZERS {
            for schedule in [Schedule::Constant, Schedule::Cosine { horizon: 5 }] {
                let config = mini_batches(TrainConfig {
                    optimizer,
                    schedule,
                    ..TrainConfig::sgd(lr)
                });
                let what = format!("[{network}] {optimizer:?}, {schedule}");
                self.assert_matches_reference(&what, &network, config);
            }
        }
    }
}

const TUNED: FastPath = FastPath {
    trainer: |network, params, data, config| {
        CpuEngine::Fast(FastCpuTrainer::new(network, params, data, config).unwrap())
    },
    data: wide_set,
    inputs: 24,
    hidden: [48, 40],
    batch: 64,
};

const LANES: FastPath = FastPath {
    trainer: |network, params, data, config| {
        assert!(
            LaneTrainer::suits(network),
            "[{network}] is too wide for lanes"
        );
        CpuEngine::Lanes(LaneTrainer::new(network, params, data, config).unwrap())
    },
    data: lane_set,
    inputs: 3,
    hidden: [8, 5],
    batch: 5,
};

#[test]
fn the_fast_trainer_matches_the_reference_for_every_activation_loss_and_optimizer() {
    TUNED.assert_matches_reference_everywhere();
    // A network of more than 2^16 parameters, whose update the fast trainer shares out among the cores.
    let network = Network::build(
        vec![24, 300, 250, 4],
        Activation::Relu,
        Activation::Softmax,
        Loss::Ce,
    )
    .unwrap();
    for (optimizer, lr) in OPTIMIZERS {
        let config = TrainConfig {
            optimizer,
            batch_size: Some(64),
            ..TrainConfig::sgd(lr)
        };
        TUNED.assert_matches_reference(&format!("[{network}] {optimizer:?}"), &network, config);
    }
}

#[test]
fn the_lane_trainer_matches_the_reference_for_every_activation_loss_and_optimizer() {
    LANES.assert_matches_reference_everywhere();
}

#[test]
fn the_forward_only_pass_matches_the_reference_evaluation_in_chunks() {
    // More rows than one chunk holds, and a short last chunk.
    let network = Network::build(
        vec![2, 16, 16, 1],
        Activation::Tanh,
        Activation::Sigmoid,
        Loss::Bce,
    )
    .unwrap();
    let rows = 9000;
    let data = Dataset {
        rows,
        inputs: random(rows * 2, 7),
        targets: targets_for(Loss::Bce, rows, 1, 8),
    };
    let params = network.init_params(3);
    let reference = CpuTrainer::<f32>::new(&network, &params, &data, TrainConfig::sgd(0.1))
        .unwrap()
        .evaluate();
    let evaluation = cpu::evaluate(&network, &params, &data).unwrap();
    assert_close(
        "outputs",
        &evaluation.outputs,
        &reference.outputs,
        1e-6,
        1e-5,
    );
    assert_close("logits", &evaluation.logits, &reference.logits, 1e-6, 1e-5);
    assert!(
        (evaluation.loss - reference.loss).abs() <= 1e-6 * reference.loss.abs(),
        "loss {} vs the reference's {}",
        evaluation.loss,
        reference.loss
    );
    let error = cpu::predict(&network, &params, &data.inputs[1..], rows).unwrap_err();
    assert!(
        error.to_string().contains("9000 rows of 2 inputs"),
        "{error}"
    );
}

#[test]
fn the_lane_trainer_trains_the_tutorial_network_as_the_reference_does() {
    // 10000 epochs of the tutorial: the lanes' exp differs from the C library's by an ulp at most, and
    // the sums over four rows are the reference's, so the two runs end together.
    let network = Network::new(vec![2, 3, 1]).unwrap();
    let params = network.init_params(wgmlp::DEFAULT_SEED);
    let config = TrainConfig::sgd(0.1);
    let data = Dataset::xor();
    let mut reference = CpuTrainer::<f32>::new(&network, &params, &data, config).unwrap();
    let mut lanes = LaneTrainer::new(&network, &params, &data, config).unwrap();
    reference.train(10_000);
    lanes.train(10_000);
    assert_close(
        "XOR parameters",
        lanes.params(),
        reference.params(),
        1e-5,
        1e-4,
    );
    // The engine trains the tutorial's network in lanes, and a wide one with the fast trainer.
    let engine = |sizes: Vec<usize>| {
        let network = Network::new(sizes).unwrap();
        CpuEngine::new(&network, &network.init_params(1), &Dataset::xor(), config).unwrap()
    };
    assert!(matches!(engine(vec![2, 3, 1]), CpuEngine::Lanes(_)));
    assert!(matches!(engine(vec![2, 64, 1]), CpuEngine::Fast(_)));
}

#[test]
fn the_lane_trainer_matches_the_reference_on_any_number_of_rows_and_batch() {
    // No hidden layer, one hidden layer of one unit; 1 to 9 rows, in batches of 1, 3 and 4 and whole.
    let networks = [
        Network::build(
            vec![3, 4],
            Activation::Identity,
            Activation::Identity,
            Loss::Mse,
        ),
        Network::build(
            vec![3, 5],
            Activation::Identity,
            Activation::Softmax,
            Loss::Ce,
        ),
        Network::build(
            vec![3, 1, 1],
            Activation::Tanh,
            Activation::Sigmoid,
            Loss::Bce,
        ),
    ]
    .map(Result::unwrap);
    for network in &networks {
        for rows in [1, 2, 3, 4, 5, 8, 9] {
            let data = Dataset {
                rows,
                inputs: random(rows * 3, 50),
                targets: targets_for(network.loss(), rows, network.outputs(), 51),
            };
            for batch_size in [None, Some(1), Some(3), Some(4)] {
                let config = TrainConfig {
                    batch_size,
                    shuffle_seed: 6,
                    optimizer: wgmlp::Optimizer::Adam { weight_decay: 0.1 },
                    ..TrainConfig::sgd(0.01)
                };
                let params = network.init_params(2);
                let mut reference =
                    CpuTrainer::<f32>::new(network, &params, &data, config).unwrap();
                let mut lanes = LaneTrainer::new(network, &params, &data, config).unwrap();
                reference.train(3);
                lanes.train(3);
                let what = format!("[{network}] on {rows} rows, batch {batch_size:?}");
                assert_close(&what, lanes.params(), reference.params(), 1e-6, 1e-5);
            }
        }
    }
}

#[test]
fn the_lanes_past_the_last_row_never_reach_a_gradient() {
    // An infinite weight makes a padding row's hidden unit 0·∞ = NaN; the reference, which has no padding
    // rows, keeps every parameter that the infinity does not reach finite, and so must the lanes.
    let network = Network::new(vec![2, 3, 1]).unwrap();
    let data = Dataset {
        rows: 5,
        inputs: random(10, 60),
        targets: targets_for(Loss::Sse, 5, 1, 61),
    };
    let mut params = network.init_params(7);
    params[0] = f32::INFINITY;
    let config = TrainConfig::sgd(0.1);
    let mut reference = CpuTrainer::<f32>::new(&network, &params, &data, config).unwrap();
    let mut lanes = LaneTrainer::new(&network, &params, &data, config).unwrap();
    reference.train(1);
    lanes.train(1);
    let finite = |values: &[f32]| values.iter().map(|v| v.is_finite()).collect::<Vec<_>>();
    assert_eq!(
        finite(lanes.params()),
        finite(reference.params()),
        "which parameters stay finite: lanes {:?}, reference {:?}",
        lanes.params(),
        reference.params()
    );
    assert!(
        finite(reference.params()).contains(&true),
        "the case tests something"
    );
}

#[test]
fn a_lane_run_resumed_from_its_state_continues_exactly() {
    let network = Network::build(
        vec![3, 8, 4],
        Activation::Relu,
        Activation::Softmax,
        Loss::Ce,
    )
    .unwrap();
    let data = lane_set(Loss::Ce, 4);
    let config = TrainConfig {
        optimizer: wgmlp::Optimizer::Adam { weight_decay: 0.1 },
        batch_size: Some(5),
        shuffle_seed: 8,
        ..TrainConfig::sgd(0.01)
    };
    let params = network.init_params(3);
    let mut whole = LaneTrainer::new(&network, &params, &data, config).unwrap();
    whole.train(12);
    let mut first = LaneTrainer::new(&network, &params, &data, config).unwrap();
    first.train(7);
    let mut resumed = LaneTrainer::new(&network, first.params(), &data, config).unwrap();
    resumed
        .resume(first.epoch(), &first.optimizer_state())
        .unwrap();
    resumed.train(5);
    assert_eq!(resumed.epoch(), 12);
    assert_eq!(
        resumed.params(),
        whole.params(),
        "resumed against uninterrupted"
    );
}
