//! The CPU reference's gradients against central finite differences of its own loss, in f64, for every
//! activation and every loss.

mod common;

use common::{HIDDEN, random, targets_for};
use wgmlp::{Activation, CpuTrainer, Dataset, Loss, Network, TrainConfig};

/// d loss / d params[i] by central differences.
fn central_difference(trainer: &mut CpuTrainer<f64>, i: usize) -> f64 {
    const EPS: f64 = 1e-6;
    let original = trainer.params()[i];
    let mut loss_at = |value: f64| {
        trainer.params_mut()[i] = value;
        trainer.loss()
    };
    let slope = (loss_at(original + EPS) - loss_at(original - EPS)) / (2.0 * EPS);
    trainer.params_mut()[i] = original;
    slope
}

fn check_gradients(hidden: Activation, output: Activation, loss: Loss) {
    let network = Network::build(vec![3, 5, 4, 3], hidden, output, loss).unwrap();
    let rows = 6;
    let data = Dataset {
        rows,
        inputs: random(rows * 3, 1),
        targets: targets_for(loss, rows, 3, 2),
    };
    // Non-zero biases: with zero ones, a row whose relu inputs are all off puts the next layer exactly on
    // relu's kink, where the derivative is one-sided and central differences average the two sides.
    let mut params = network.init_params(11);
    let biases = random(params.len(), 12);
    for layer in network.layout().layers {
        for i in layer.bias {
            params[i] = 0.1 * biases[i];
        }
    }
    let mut trainer =
        CpuTrainer::<f64>::new(&network, &params, &data, TrainConfig::sgd(0.1)).unwrap();
    let analytic = trainer.gradients().to_vec();
    assert!(
        analytic.iter().any(|g| g.abs() > 1e-3),
        "{network:?}: the check has gradients to compare"
    );
    for (i, &grad) in analytic.iter().enumerate() {
        let numeric = central_difference(&mut trainer, i);
        assert!(
            (numeric - grad).abs() <= 1e-7 + 1e-5 * numeric.abs(),
            "{hidden} hidden, {output} output, {loss}: parameter {i}: backward gives {grad}, central difference {numeric}"
        );
    }
}

#[test]
fn every_hidden_activation_has_the_gradients_of_its_loss() {
    for hidden in HIDDEN {
        check_gradients(hidden, Activation::Sigmoid, Loss::Sse);
    }
}

#[test]
fn every_loss_has_the_gradients_of_its_value() {
    for (output, loss) in [
        (Activation::Sigmoid, Loss::Sse),
        (Activation::Identity, Loss::Sse),
        (Activation::Identity, Loss::Mse),
        (Activation::Tanh, Loss::Mse),
        (Activation::Sigmoid, Loss::Bce),
        (Activation::Softmax, Loss::Ce),
    ] {
        check_gradients(Activation::Tanh, output, loss);
    }
}
