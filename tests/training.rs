//! Whole training runs: the GPU trainer against the CPU reference from the same weights, and bad inputs.

mod common;

use common::{assert_close, gpu};
use wgmlp::{CpuTrainer, DEFAULT_SEED, Dataset, Error, GpuTrainer, Network};

fn train_both(
    sizes: &[usize],
    seed: u64,
    epochs: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) {
    let network = Network::new(sizes.to_vec()).unwrap();
    let params = network.init_params(seed);
    let data = Dataset::xor();
    let mut cpu = CpuTrainer::<f32>::new(&network, &params, &data, 0.1).unwrap();
    cpu.train(epochs);
    let mut gpu_trainer =
        pollster::block_on(GpuTrainer::new(gpu(), &network, &params, &data, 0.1)).unwrap();
    gpu_trainer.train(epochs);
    (
        pollster::block_on(gpu_trainer.outputs()).unwrap(),
        cpu.outputs(),
        pollster::block_on(gpu_trainer.params()).unwrap(),
        cpu.params().to_vec(),
    )
}

#[test]
fn tutorial_network_on_gpu_matches_cpu_after_10000_epochs_and_converges() {
    let (gpu_out, cpu_out, gpu_params, cpu_params) = train_both(&[2, 3, 1], DEFAULT_SEED, 10000);
    assert_close("outputs after 10000 epochs", &gpu_out, &cpu_out, 1e-4, 0.0);
    assert_close(
        "parameters after 10000 epochs",
        &gpu_params,
        &cpu_params,
        1e-4,
        0.0,
    );
    for (outputs, side) in [(&gpu_out, "GPU"), (&cpu_out, "CPU")] {
        for (row, (&o, y)) in outputs.iter().zip(Dataset::xor().targets).enumerate() {
            let converged = if y == 1.0 { o > 0.9 } else { o < 0.1 };
            assert!(
                converged,
                "{side} row {row}: output {o} for target {y} (all: {outputs:?})"
            );
        }
    }
}

#[test]
fn deeper_and_wider_networks_match_cpu() {
    for sizes in [&[2, 8, 8, 1][..], &[2, 17, 1], &[2, 1, 1]] {
        let (gpu_out, cpu_out, gpu_params, cpu_params) = train_both(sizes, 5, 300);
        assert_close(
            &format!("{sizes:?} outputs"),
            &gpu_out,
            &cpu_out,
            1e-5,
            1e-4,
        );
        assert_close(
            &format!("{sizes:?} parameters"),
            &gpu_params,
            &cpu_params,
            1e-5,
            1e-4,
        );
    }
}

#[test]
fn one_gpu_step_gives_the_cpu_gradients() {
    let network = Network::new(vec![2, 4, 3, 1]).unwrap();
    let params = network.init_params(2);
    let data = Dataset::xor();
    let mut cpu = CpuTrainer::<f32>::new(&network, &params, &data, 0.1).unwrap();
    cpu.forward();
    cpu.backward();
    let mut gpu_trainer =
        pollster::block_on(GpuTrainer::new(gpu(), &network, &params, &data, 0.1)).unwrap();
    gpu_trainer.train(1);
    let grads = pollster::block_on(gpu_trainer.grads()).unwrap();
    assert_close("gradients of one step", &grads, cpu.grads(), 1e-6, 1e-5);
}

#[test]
fn bad_learning_rates_are_rejected_by_both_trainers() {
    let network = Network::new(vec![2, 3, 1]).unwrap();
    let params = network.init_params(1);
    for lr in [0.0, -0.1, f32::NAN, f32::INFINITY] {
        let cpu = CpuTrainer::<f32>::new(&network, &params, &Dataset::xor(), lr);
        let gpu = pollster::block_on(GpuTrainer::new(
            gpu(),
            &network,
            &params,
            &Dataset::xor(),
            lr,
        ));
        for result in [cpu.err(), gpu.err()] {
            assert!(
                matches!(result, Some(Error::InvalidOption { option: "lr", .. })),
                "lr {lr}: {result:?}"
            );
        }
    }
}

#[test]
fn data_and_parameters_must_fit_the_network() {
    let wide = Network::new(vec![3, 3, 1]).unwrap();
    let err = CpuTrainer::<f32>::new(&wide, &wide.init_params(1), &Dataset::xor(), 0.1)
        .err()
        .unwrap();
    assert!(
        matches!(err, Error::ShapeMismatch { op: "dataset", .. }),
        "{err}"
    );

    let network = Network::new(vec![2, 3, 1]).unwrap();
    let err = pollster::block_on(GpuTrainer::new(
        gpu(),
        &network,
        &[0.0; 5],
        &Dataset::xor(),
        0.1,
    ))
    .err();
    assert!(
        matches!(
            err,
            Some(Error::ShapeMismatch {
                op: "initial parameters",
                ..
            })
        ),
        "{err:?}"
    );
}

#[test]
fn a_network_too_large_for_the_device_is_an_error_not_a_crash() {
    let network = Network::new(vec![2, 1 << 30, 1]).unwrap();
    let err = pollster::block_on(GpuTrainer::new(gpu(), &network, &[], &Dataset::xor(), 0.1)).err();
    match err {
        Some(Error::TooLarge {
            what,
            needed,
            limit,
            ..
        }) => {
            assert!(needed > limit, "{what}: {needed} > {limit}");
            assert!(what.contains("1073741824"), "names the network: {what}");
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

#[test]
fn layer_sizes_are_validated() {
    for (text, fragment) in [
        ("2", "at least"),
        ("2,0,1", "size 0"),
        ("2,x,1", "\"x\""),
        ("", "\"\""),
    ] {
        let err = Network::parse(text).unwrap_err().to_string();
        assert!(
            err.contains("layers") && err.contains(fragment),
            "{text:?}: {err}"
        );
    }
    assert_eq!(Network::parse(" 2, 8,8 ,1").unwrap().sizes(), &[2, 8, 8, 1]);
}
