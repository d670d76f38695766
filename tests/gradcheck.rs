//! The CPU reference's gradients against central finite differences of its own loss, in f64.

mod common;

use common::random;
use wgmlp::{CpuTrainer, Dataset, Network};

/// d loss / d params[i] by central differences.
fn central_difference(trainer: &mut CpuTrainer<f64>, i: usize) -> f64 {
    const EPS: f64 = 1e-6;
    let original = trainer.params()[i];
    let mut loss_at = |value: f64| {
        trainer.params_mut()[i] = value;
        trainer.forward();
        trainer.loss()
    };
    let slope = (loss_at(original + EPS) - loss_at(original - EPS)) / (2.0 * EPS);
    trainer.params_mut()[i] = original;
    slope
}

#[test]
fn cpu_gradients_match_central_differences_on_a_three_layer_network() {
    let network = Network::new(vec![3, 5, 4, 2]).unwrap();
    let rows = 6;
    let data = Dataset {
        rows,
        inputs: random(rows * 3, 1),
        targets: random(rows * 2, 2)
            .iter()
            .map(|v| (v + 1.0) / 2.0)
            .collect(),
    };
    let mut trainer =
        CpuTrainer::<f64>::new(&network, &network.init_params(11), &data, 0.1).unwrap();
    trainer.forward();
    trainer.backward();
    let analytic = trainer.grads().to_vec();
    assert!(
        analytic.iter().any(|g| g.abs() > 1e-3),
        "the check has gradients to compare"
    );

    for (i, &grad) in analytic.iter().enumerate() {
        let numeric = central_difference(&mut trainer, i);
        assert!(
            (numeric - grad).abs() <= 1e-8 + 1e-6 * numeric.abs(),
            "parameter {i}: backward gives {grad}, central difference {numeric}"
        );
    }
}
