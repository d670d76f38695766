//! Whole training runs: the GPU trainer against the CPU reference from the same weights and the same batch
//! order, for every activation, loss and optimizer; and bad inputs.

mod common;

use common::{HIDDEN, OPTIMIZERS, assert_close, gpu, small_set};
use wgmlp::engine::{Engine, Progress, Start, Trainer};
use wgmlp::{
    Activation, CpuTrainer, DEFAULT_SEED, Dataset, Error, GpuTrainer, Loss, Network, Optimizer,
    Schedule, TrainConfig, cpu,
};

/// Outputs and parameters after `epochs` epochs on each side.
struct Both {
    gpu_outputs: Vec<f32>,
    cpu_outputs: Vec<f32>,
    gpu_params: Vec<f32>,
    cpu_params: Vec<f32>,
}

fn train_both(
    network: &Network,
    data: &Dataset,
    config: TrainConfig,
    seed: u64,
    epochs: usize,
) -> Both {
    let params = network.init_params(seed);
    let mut cpu = CpuTrainer::<f32>::new(network, &params, data, config).unwrap();
    cpu.train(epochs);
    let mut on_gpu =
        pollster::block_on(GpuTrainer::new(gpu(), network, &params, data, config)).unwrap();
    on_gpu.train(epochs).unwrap();
    assert_eq!(on_gpu.epoch(), cpu.epoch());
    Both {
        gpu_outputs: pollster::block_on(on_gpu.outputs()).unwrap(),
        cpu_outputs: cpu.outputs(),
        gpu_params: pollster::block_on(on_gpu.params()).unwrap(),
        cpu_params: cpu.params().to_vec(),
    }
}

fn assert_agree(what: &str, both: &Both, atol: f32, rtol: f32) {
    assert_close(
        &format!("{what}: outputs"),
        &both.gpu_outputs,
        &both.cpu_outputs,
        atol,
        rtol,
    );
    assert_close(
        &format!("{what}: parameters"),
        &both.gpu_params,
        &both.cpu_params,
        atol,
        rtol,
    );
}

#[test]
fn tutorial_network_on_gpu_matches_cpu_after_10000_epochs_and_converges() {
    let network = Network::new(vec![2, 3, 1]).unwrap();
    let both = train_both(
        &network,
        &Dataset::xor(),
        TrainConfig::sgd(0.1),
        DEFAULT_SEED,
        10000,
    );
    assert_agree("XOR after 10000 epochs", &both, 1e-4, 0.0);
    for (outputs, side) in [(&both.gpu_outputs, "GPU"), (&both.cpu_outputs, "CPU")] {
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
        let network = Network::new(sizes.to_vec()).unwrap();
        let both = train_both(&network, &Dataset::xor(), TrainConfig::sgd(0.1), 5, 300);
        assert_agree(&format!("{sizes:?}"), &both, 1e-5, 1e-4);
    }
}

#[test]
fn odd_wide_layers_and_long_batches_match_cpu() {
    // Layers of 65, 63 and 257 units and batches of 257 rows and a short one of 43: partial blocks in the
    // fused matmuls, dW split along the batch, the slope fused into dZ·Wᵀ for every hidden activation.
    let rows = 300;
    let data = Dataset {
        rows,
        inputs: common::random(rows * 65, 31),
        targets: common::targets_for(Loss::Ce, rows, 3, 32),
    };
    let config = TrainConfig {
        batch_size: Some(257),
        shuffle_seed: 5,
        ..TrainConfig::sgd(0.05)
    };
    for hidden in HIDDEN {
        let network =
            Network::build(vec![65, 63, 257, 3], hidden, Activation::Softmax, Loss::Ce).unwrap();
        let both = train_both(&network, &data, config, 6, 3);
        assert_agree(&format!("65-63-257-3 {hidden}"), &both, ATOL, RTOL);
    }
}

// The stated tolerance of the short runs below: |gpu − cpu| ≤ 1e-4 + 1e-3·|cpu| after 30 epochs of
// mini-batches, for outputs and every parameter.
const ATOL: f32 = 1e-4;
const RTOL: f32 = 1e-3;

#[test]
fn every_hidden_activation_matches_cpu_with_mini_batches() {
    let config = TrainConfig {
        batch_size: Some(5),
        shuffle_seed: 3,
        ..TrainConfig::sgd(0.1)
    };
    for hidden in HIDDEN {
        let network =
            Network::build(vec![3, 6, 5, 2], hidden, Activation::Identity, Loss::Mse).unwrap();
        let both = train_both(&network, &small_set(Loss::Mse, 2), config, 4, 30);
        assert_agree(&format!("{hidden} hidden"), &both, ATOL, RTOL);
    }
}

#[test]
fn every_loss_matches_cpu_with_mini_batches() {
    let config = TrainConfig {
        batch_size: Some(5),
        shuffle_seed: 8,
        ..TrainConfig::sgd(0.2)
    };
    for (output, loss, outputs) in [
        (Activation::Sigmoid, Loss::Sse, 2),
        (Activation::Identity, Loss::Mse, 2),
        (Activation::Sigmoid, Loss::Bce, 1),
        (Activation::Softmax, Loss::Ce, 4),
    ] {
        let network = Network::build(vec![3, 7, outputs], Activation::Tanh, output, loss).unwrap();
        let both = train_both(&network, &small_set(loss, outputs), config, 6, 30);
        assert_agree(&format!("{loss} loss"), &both, ATOL, RTOL);
    }
}

#[test]
fn every_optimizer_matches_cpu_with_mini_batches() {
    let network = Network::build(
        vec![3, 8, 1],
        Activation::Relu,
        Activation::Sigmoid,
        Loss::Bce,
    )
    .unwrap();
    for (optimizer, lr) in OPTIMIZERS {
        for batch_size in [None, Some(1), Some(5)] {
            let config = TrainConfig {
                lr,
                optimizer,
                schedule: Schedule::Constant,
                batch_size,
                shuffle_seed: 9,
            };
            let both = train_both(&network, &small_set(Loss::Bce, 1), config, 7, 30);
            assert_agree(
                &format!("{optimizer:?}, batches of {batch_size:?}"),
                &both,
                ATOL,
                RTOL,
            );
        }
    }
}

#[test]
fn one_gpu_step_gives_the_cpu_gradients() {
    let network = Network::build(
        vec![2, 4, 3, 2],
        Activation::LeakyRelu,
        Activation::Softmax,
        Loss::Ce,
    )
    .unwrap();
    let params = network.init_params(2);
    let data = Dataset {
        rows: 4,
        inputs: Dataset::xor().inputs,
        targets: vec![1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0],
    };
    let mut cpu = CpuTrainer::<f32>::new(&network, &params, &data, TrainConfig::sgd(0.1)).unwrap();
    let mut on_gpu = pollster::block_on(GpuTrainer::new(
        gpu(),
        &network,
        &params,
        &data,
        TrainConfig::sgd(0.1),
    ))
    .unwrap();
    on_gpu.train(1).unwrap();
    let grads = pollster::block_on(on_gpu.grads()).unwrap();
    assert_close("gradients of one step", &grads, cpu.gradients(), 1e-6, 1e-5);
}

#[test]
fn mini_batches_cover_every_row_once_per_epoch_in_a_seeded_order() {
    let config = TrainConfig {
        batch_size: Some(4),
        shuffle_seed: 1,
        ..TrainConfig::sgd(0.1)
    };
    let batches = config.batches(10);
    assert_eq!(
        batches,
        vec![0..4, 4..8, 8..10],
        "the last, partial batch is trained, not dropped"
    );
    let (first, second) = (config.epoch_order(0, 10), config.epoch_order(1, 10));
    assert_ne!(first, second, "each epoch has its own order");
    assert_eq!(
        first,
        config.epoch_order(0, 10),
        "the order is a function of seed and epoch"
    );
    let mut sorted = first.clone();
    sorted.sort();
    assert_eq!(sorted, (0..10).collect::<Vec<u32>>());
    assert_eq!(
        TrainConfig::sgd(0.1).epoch_order(5, 4),
        vec![0, 1, 2, 3],
        "full batches keep the rows in place"
    );
}

#[test]
fn bad_training_settings_are_rejected_by_both_trainers() {
    let network = Network::new(vec![2, 3, 1]).unwrap();
    let params = network.init_params(1);
    let cases = [
        (TrainConfig::sgd(0.0), "lr"),
        (TrainConfig::sgd(-0.1), "lr"),
        (TrainConfig::sgd(f32::NAN), "lr"),
        (TrainConfig::sgd(f32::INFINITY), "lr"),
        (
            TrainConfig {
                batch_size: Some(0),
                ..TrainConfig::sgd(0.1)
            },
            "batch-size",
        ),
        (
            TrainConfig {
                optimizer: Optimizer::Sgd { momentum: 1.5 },
                ..TrainConfig::sgd(0.1)
            },
            "momentum",
        ),
        (
            TrainConfig {
                optimizer: Optimizer::Adam { weight_decay: -1.0 },
                ..TrainConfig::sgd(0.1)
            },
            "weight-decay",
        ),
    ];
    for (config, option) in cases {
        let cpu = CpuTrainer::<f32>::new(&network, &params, &Dataset::xor(), config).err();
        let on_gpu = pollster::block_on(GpuTrainer::new(
            gpu(),
            &network,
            &params,
            &Dataset::xor(),
            config,
        ))
        .err();
        for result in [cpu, on_gpu] {
            assert!(
                matches!(result, Some(Error::InvalidOption { option: o, .. }) if o == option),
                "{config:?}: {result:?}"
            );
        }
    }
}

#[test]
fn networks_must_fit_their_loss_and_activations() {
    let sizes = || vec![2, 3, 2];
    let cases = [
        (
            Activation::Softmax,
            Activation::Sigmoid,
            Loss::Sse,
            "activation",
        ),
        (
            Activation::Tanh,
            Activation::Identity,
            Loss::Bce,
            "output-activation",
        ),
        (
            Activation::Tanh,
            Activation::Sigmoid,
            Loss::Ce,
            "output-activation",
        ),
        (
            Activation::Tanh,
            Activation::Softmax,
            Loss::Mse,
            "output-activation",
        ),
    ];
    for (hidden, output, loss, option) in cases {
        let err = Network::build(sizes(), hidden, output, loss).unwrap_err();
        assert!(
            matches!(err, Error::InvalidOption { option: o, .. } if o == option),
            "{err}"
        );
    }
    let err = Network::build(
        vec![2, 3, 1],
        Activation::Tanh,
        Activation::Softmax,
        Loss::Ce,
    )
    .unwrap_err();
    assert!(err.to_string().contains("at least two"), "{err}");
}

#[test]
fn data_and_parameters_must_fit_the_network() {
    let wide = Network::new(vec![3, 3, 1]).unwrap();
    let err = CpuTrainer::<f32>::new(
        &wide,
        &wide.init_params(1),
        &Dataset::xor(),
        TrainConfig::sgd(0.1),
    )
    .err();
    assert!(
        matches!(err, Some(Error::ShapeMismatch { op: "dataset", .. })),
        "{err:?}"
    );

    let network = Network::new(vec![2, 3, 1]).unwrap();
    let err = pollster::block_on(GpuTrainer::new(
        gpu(),
        &network,
        &[0.0; 5],
        &Dataset::xor(),
        TrainConfig::sgd(0.1),
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
    // Within the parameter limit (2²⁸), but its arena (about 7.5 GB) beyond any one binding (below 4 GiB).
    let network = Network::new(vec![2, (1 << 26) - 1, 1]).unwrap();
    let err = pollster::block_on(GpuTrainer::new(
        gpu(),
        &network,
        &[],
        &Dataset::xor(),
        TrainConfig::sgd(0.1),
    ))
    .err();
    match err {
        Some(Error::TooLarge {
            what,
            needed,
            limit,
            ..
        }) => {
            assert!(needed > limit, "{what}: {needed} > {limit}");
            assert!(what.contains("67108863"), "names the network: {what}");
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
        ("2,99999999999,99999999999,1", "2²⁸"),
    ] {
        let err = Network::parse(text).unwrap_err().to_string();
        assert!(
            err.contains("layers") && err.contains(fragment),
            "{text:?}: {err}"
        );
    }
    assert_eq!(Network::parse(" 2, 8,8 ,1").unwrap().sizes(), &[2, 8, 8, 1]);
}

#[test]
fn a_shuffled_or_scheduled_layered_run_refuses_epochs_its_counter_cannot_count() {
    let network = Network::new(vec![3, 4, 1]).unwrap();
    let shuffled = TrainConfig {
        batch_size: Some(5),
        ..TrainConfig::sgd(0.1)
    };
    let scheduled = TrainConfig {
        schedule: Schedule::Cosine { horizon: 1 << 24 },
        ..TrainConfig::sgd(0.1)
    };
    for config in [shuffled, scheduled] {
        let params = network.init_params(1);
        let mut trainer = pollster::block_on(GpuTrainer::new(
            gpu(),
            &network,
            &params,
            &small_set(Loss::Sse, 1),
            config,
        ))
        .unwrap();
        let state = vec![0.0; params.len()];
        let error = trainer
            .resume((1 << 24) + 1, &state)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("layered") && error.contains("fused"),
            "{error}"
        );
        trainer.resume(1 << 24, &state).unwrap();
        assert!(trainer.check_epochs(1).is_err() && trainer.check_epochs(0).is_ok());
    }
}

#[test]
fn the_layered_engine_refuses_loops_longer_than_a_software_adapter_runs() {
    // llvmpipe ends an invocation's loops after 65535 iterations: a full batch of 70000 rows would train on
    // a cut-short dW and bias gradient without a word.
    let network = Network::new(vec![2, 3, 1]).unwrap();
    let check = |rows, config: &TrainConfig| GpuTrainer::check_size(gpu(), &network, rows, config);
    let full = TrainConfig::sgd(0.1);
    assert!(check(60_000, &full).is_ok());
    match gpu().is_software() {
        true => {
            let error = check(70_000, &full).unwrap_err().to_string();
            assert!(
                error.contains("70000 rows")
                    && error.contains("--batch-size")
                    && error.contains("60000"),
                "{error}"
            );
        }
        false => assert!(check(70_000, &full).is_ok()),
    }
    let batches = TrainConfig {
        batch_size: Some(256),
        shuffle_seed: 1,
        ..full
    };
    assert!(
        check(70_000, &batches).is_ok(),
        "mini-batches keep the loops short"
    );
}

/// A data set of `rows` rows of 3 inputs with targets that suit `loss`.
fn rows_for(loss: Loss, rows: usize, outputs: usize) -> Dataset {
    Dataset {
        rows,
        inputs: common::random(rows * 3, 41),
        targets: common::targets_for(loss, rows, outputs, 42),
    }
}

/// Checks that `trainer`'s metrics, reduced on the device, are `cpu::measure` of its own outputs over
/// `data`: the largest error and the rows right exactly (the same forward pass, the same f32 comparisons),
/// the loss within f32 summation order (`common::assert_loss_close`).
fn assert_metrics_measure_the_outputs(
    what: &str,
    trainer: &GpuTrainer,
    network: &Network,
    data: &Dataset,
) {
    let metrics = pollster::block_on(trainer.metrics()).unwrap();
    let evaluation = pollster::block_on(trainer.evaluate()).unwrap();
    let (loss, cols) = (network.loss(), network.outputs());
    let expected = cpu::measure(
        loss,
        &evaluation.logits,
        &evaluation.outputs,
        &data.targets,
        cols,
    );
    assert_eq!(metrics.max_error, expected.max_error, "{what}");
    assert_eq!(metrics.correct, expected.correct, "{what}");
    assert_eq!(
        expected.loss, evaluation.loss,
        "{what}: measure's loss is loss_value's"
    );
    let largest = evaluation.logits.iter().fold(0.0f32, |m, z| m.max(z.abs()));
    let shape = (cols, common::measure_passes(data.rows), largest);
    common::assert_loss_close(what, metrics.loss, expected.loss, loss, shape);
}

#[test]
fn layered_metrics_reduced_on_the_device_measure_the_whole_set_for_every_loss() {
    let config = TrainConfig {
        batch_size: Some(1000),
        shuffle_seed: 4,
        ..TrainConfig::sgd(0.05)
    };
    for (output, loss, outputs) in [
        (Activation::Sigmoid, Loss::Sse, 2),
        (Activation::Identity, Loss::Mse, 3),
        (Activation::Sigmoid, Loss::Bce, 1),
        (Activation::Softmax, Loss::Ce, 5),
    ] {
        let network = Network::build(vec![3, 9, outputs], Activation::Tanh, output, loss).unwrap();
        // 4100 rows: three passes of measuring (65 tallies, then 2, then 1).
        for rows in [1, 70, 4100] {
            let data = rows_for(loss, rows, outputs);
            let params = network.init_params(3);
            let mut trainer =
                pollster::block_on(GpuTrainer::new(gpu(), &network, &params, &data, config))
                    .unwrap();
            let what = format!("{loss} on {rows} rows");
            assert_metrics_measure_the_outputs(
                &format!("{what}, untrained"),
                &trainer,
                &network,
                &data,
            );
            trainer.train(2).unwrap();
            assert_metrics_measure_the_outputs(
                &format!("{what}, trained"),
                &trainer,
                &network,
                &data,
            );
        }
    }
}

#[test]
fn layered_progress_means_what_the_cpu_progress_means() {
    let network = Network::build(
        vec![3, 6, 4],
        Activation::Relu,
        Activation::Softmax,
        Loss::Ce,
    )
    .unwrap();
    let data = rows_for(Loss::Ce, 300, 4);
    let start = Start {
        params: network.init_params(5),
        config: TrainConfig::sgd(0.1),
    };
    let progress = |engine| {
        let gpu = (engine != Engine::Auto).then(gpu);
        let mut trainer =
            Trainer::new(gpu, engine, &network, std::slice::from_ref(&start), &data).unwrap();
        trainer.train(3).unwrap();
        trainer.progress().unwrap()[0]
    };
    let (layered, cpu) = (progress(Engine::Layered), progress(Engine::Auto));
    // Three epochs from the same start on different matmul orders: close, not equal.
    let accuracy = |p: Progress| p.accuracy.expect("ce has an accuracy");
    assert!(
        (layered.loss - cpu.loss).abs() <= 1e-5 * cpu.loss,
        "{layered:?} vs {cpu:?}"
    );
    assert!(
        (accuracy(layered) - accuracy(cpu)).abs() <= 1.0 / 300.0,
        "{layered:?} vs {cpu:?}"
    );
    assert!(
        (layered.max_error - cpu.max_error).abs() <= 1e-5,
        "{layered:?} vs {cpu:?}"
    );
}

#[test]
fn layered_metrics_follow_a_device_with_fewer_workgroups_a_dimension() {
    // 8 workgroups a dimension: 8 × 8 workgroups of 64 threads for a one-dimensional kernel.
    let small = common::gpu_with_limits(|l| l.max_compute_workgroups_per_dimension = 8);
    let network = Network::build(
        vec![3, 5, 2],
        Activation::Relu,
        Activation::Identity,
        Loss::Mse,
    )
    .unwrap();
    // 600 rows: 10 workgroups of rows, spilled to 8 × 2; the forward's 600×5 elements to 8 × 6.
    let data = rows_for(Loss::Mse, 600, 2);
    let mut trainer = pollster::block_on(GpuTrainer::new(
        &small,
        &network,
        &network.init_params(1),
        &data,
        TrainConfig::sgd(0.1),
    ))
    .unwrap();
    trainer.train(2).unwrap();
    assert_metrics_measure_the_outputs(
        "600 rows, 8 workgroups a dimension",
        &trainer,
        &network,
        &data,
    );
}

#[test]
fn the_layered_engine_names_the_rows_or_the_batch_that_exceed_the_device_grid() {
    let small = common::gpu_with_limits(|l| l.max_compute_workgroups_per_dimension = 8);
    let batches = |batch_size| TrainConfig {
        batch_size: Some(batch_size),
        shuffle_seed: 1,
        ..TrainConfig::sgd(0.1)
    };
    // A batch of 200-wide rows is gathered an element a thread: 999 × 200 elements need 3122 workgroups,
    // more than 8 × 8; the whole set's forward pass and measuring, 1000 × 2 at most, fit.
    let wide = Network::new(vec![200, 2, 1]).unwrap();
    let error = GpuTrainer::check_size(&small, &wide, 1000, &batches(999))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("a batch of 999 rows")
            && error.contains("--batch-size")
            && !error.contains("--layers"),
        "{error}"
    );
    assert!(GpuTrainer::check_size(&small, &wide, 1000, &batches(20)).is_ok());
    // Measuring 5000 rows takes 79 workgroups of rows; no batch size helps.
    let narrow = Network::new(vec![2, 2, 1]).unwrap();
    let error = GpuTrainer::check_size(&small, &narrow, 5000, &batches(20))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("all 5000 rows") && error.contains("fewer rows"),
        "{error}"
    );
    // The same check comes before any weights are drawn, through the engine's choice.
    let chosen = Trainer::choose(
        Some(&small),
        Engine::Layered,
        &narrow,
        5000,
        &batches(20),
        1,
    );
    assert!(chosen.unwrap_err().to_string().contains("all 5000 rows"));
}
