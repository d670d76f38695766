//! The fast CPU path (the tuned matrix multiply, the forward-only pass) against the plain reference loops,
//! which stay the truth.

mod common;

use common::{HIDDEN, OPTIMIZERS, assert_close, random, targets_for};
use wgmlp::cpu::{self, FastCpuTrainer, MatmulShape};
use wgmlp::{Activation, CpuTrainer, Dataset, Loss, Network, TrainConfig};

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

fn assert_fast_matches_reference(
    what: &str,
    network: &Network,
    data: &Dataset,
    config: TrainConfig,
) {
    let params = network.init_params(9);
    let mut reference = CpuTrainer::<f32>::new(network, &params, data, config).unwrap();
    let mut fast = FastCpuTrainer::<f32>::new(network, &params, data, config).unwrap();
    // Few steps: relu's kink turns a rounding difference into a different slope, which training amplifies.
    reference.train(5);
    fast.train(5);
    assert_close(
        &format!("{what}: parameters"),
        fast.params(),
        reference.params(),
        1e-4,
        1e-3,
    );
    assert_close(
        &format!("{what}: outputs"),
        &fast.outputs(),
        &reference.outputs(),
        1e-4,
        1e-3,
    );
}

#[test]
fn the_fast_trainer_matches_the_reference_for_every_activation_loss_and_optimizer() {
    let mini_batches = |config: TrainConfig| TrainConfig {
        batch_size: Some(64),
        shuffle_seed: 4,
        ..config
    };
    for hidden in HIDDEN {
        let network =
            Network::build(vec![24, 48, 40, 3], hidden, Activation::Identity, Loss::Mse).unwrap();
        for config in [TrainConfig::sgd(0.05), mini_batches(TrainConfig::sgd(0.05))] {
            let what = format!("{hidden} hidden, batch {:?}", config.batch_size);
            assert_fast_matches_reference(&what, &network, &wide_set(Loss::Mse, 3), config);
        }
    }
    for (output, loss, outputs) in [
        (Activation::Sigmoid, Loss::Sse, 2),
        (Activation::Sigmoid, Loss::Bce, 1),
        (Activation::Softmax, Loss::Ce, 4),
    ] {
        let network =
            Network::build(vec![24, 48, outputs], Activation::Relu, output, loss).unwrap();
        let what = format!("{loss} loss");
        assert_fast_matches_reference(
            &what,
            &network,
            &wide_set(loss, outputs),
            mini_batches(TrainConfig::sgd(0.05)),
        );
    }
    // The small network, and one of more than 2^16 parameters, whose update the fast trainer shares out
    // among the cores.
    let networks = [vec![24, 48, 4], vec![24, 300, 250, 4]].map(|sizes| {
        Network::build(sizes, Activation::Relu, Activation::Softmax, Loss::Ce).unwrap()
    });
    for network in &networks {
        for (optimizer, lr) in OPTIMIZERS {
            let config = mini_batches(TrainConfig {
                optimizer,
                ..TrainConfig::sgd(lr)
            });
            let what = format!("[{network}] {optimizer:?}");
            assert_fast_matches_reference(&what, network, &wide_set(Loss::Ce, 4), config);
        }
    }
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
