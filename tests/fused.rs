//! The fused engine against the CPU reference and against the layered engine: every activation, loss and
//! optimizer, full batches and mini-batches with a short last batch; sweeps, resuming and split dispatches.

mod common;

use common::{HIDDEN, OPTIMIZERS, assert_close, gpu, small_set};
use wgmlp::gpu::{Form, FusedTrainer, Tier};
use wgmlp::{
    Activation, CpuTrainer, DEFAULT_SEED, Dataset, GpuTrainer, Loss, Network, Optimizer, Schedule,
    Start, TrainConfig,
};

/// Every tier that can train batches of `config` on `rows` rows: the workgroup tier also for networks small
/// enough for the private one, and the rows tier with a thread a row of the batch (idle ones included),
/// where the adapter takes it (`a_few_networks_share_each_batch_over_a_workgroup_in_row_order` checks the
/// refusal elsewhere). Two threads taking turns over the rows are tried on their own (`TURNS`), since each
/// tier is a compile.
fn tiers(config: &TrainConfig, rows: usize) -> Vec<Tier> {
    let batch = config.batches(rows)[0].len() as u32;
    let mut tiers = vec![Tier::Private, Tier::Workgroup { threads: 32 }];
    if gpu().rows_tier_refused().is_none() {
        tiers.push(Tier::Rows {
            threads: batch.next_power_of_two(),
        });
    }
    tiers
}

/// The rows tier with fewer threads than a batch has rows: each thread adds every other row.
const TURNS: Tier = Tier::Rows { threads: 2 };

/// The fused engine's outputs and parameters in `tier`, and the CPU reference's, after `epochs` epochs.
fn fused_and_cpu(
    network: &Network,
    data: &Dataset,
    config: TrainConfig,
    run: (u64, usize),
    tier: Tier,
) -> [(Vec<f32>, Vec<f32>); 2] {
    fused_and_cpu_in(network, data, config, run, (tier, None))
}

/// As [`fused_and_cpu`], with the code in the given form, or in the one the adapter's budget gives.
fn fused_and_cpu_in(
    network: &Network,
    data: &Dataset,
    config: TrainConfig,
    (seed, epochs): (u64, usize),
    (tier, form): (Tier, Option<Form>),
) -> [(Vec<f32>, Vec<f32>); 2] {
    let params = network.init_params(seed);
    let mut cpu = CpuTrainer::<f32>::new(network, &params, data, config).unwrap();
    cpu.train(epochs);
    let starts = [Start { params, config }];
    let mut fused = match form {
        Some(form) => pollster::block_on(FusedTrainer::with_form(
            gpu(),
            network,
            &starts,
            data,
            tier,
            form,
        )),
        None => pollster::block_on(FusedTrainer::with_tier(gpu(), network, &starts, data, tier)),
    }
    .unwrap();
    fused.train(epochs).unwrap();
    assert_eq!(fused.epoch(), cpu.epoch());
    let evaluation = pollster::block_on(fused.evaluate(0)).unwrap();
    [
        (
            evaluation.outputs,
            pollster::block_on(fused.params(0)).unwrap(),
        ),
        (cpu.outputs(), cpu.params().to_vec()),
    ]
}

fn assert_fused_matches_cpu(
    what: &str,
    network: &Network,
    data: &Dataset,
    config: TrainConfig,
    run: (u64, usize),
    (atol, rtol): (f32, f32),
) {
    for tier in tiers(&config, data.rows) {
        let what = format!("{what}, {tier:?}");
        let [(fused_outputs, fused_params), (cpu_outputs, cpu_params)] =
            fused_and_cpu(network, data, config, run, tier);
        assert_close(
            &format!("{what}: outputs"),
            &fused_outputs,
            &cpu_outputs,
            atol,
            rtol,
        );
        assert_close(
            &format!("{what}: parameters"),
            &fused_params,
            &cpu_params,
            atol,
            rtol,
        );
    }
}

// The layered engine's tolerance for the same runs (tests/training.rs).
const TOLERANCE: (f32, f32) = (1e-4, 1e-3);

fn mini_batches(config: TrainConfig) -> TrainConfig {
    TrainConfig {
        batch_size: Some(5),
        shuffle_seed: 3,
        ..config
    }
}

#[test]
fn tutorial_network_fused_matches_cpu_after_10000_epochs() {
    let network = Network::new(vec![2, 3, 1]).unwrap();
    let [(fused, _), (cpu, _)] = fused_and_cpu(
        &network,
        &Dataset::xor(),
        TrainConfig::sgd(0.1),
        (DEFAULT_SEED, 10000),
        Tier::Private,
    );
    assert_close("XOR outputs", &fused, &cpu, 1e-4, 0.0);
    for (&o, y) in fused.iter().zip(Dataset::xor().targets) {
        assert!((o - y).abs() < 0.1, "fused XOR did not converge: {fused:?}");
    }
}

#[test]
fn every_hidden_activation_fused_matches_cpu() {
    for hidden in HIDDEN {
        let network =
            Network::build(vec![3, 6, 5, 2], hidden, Activation::Identity, Loss::Mse).unwrap();
        for config in [TrainConfig::sgd(0.1), mini_batches(TrainConfig::sgd(0.1))] {
            let what = format!("{hidden} hidden, batch {:?}", config.batch_size);
            assert_fused_matches_cpu(
                &what,
                &network,
                &small_set(Loss::Mse, 2),
                config,
                (4, 30),
                TOLERANCE,
            );
        }
    }
}

#[test]
fn every_loss_fused_matches_cpu() {
    for (loss, output, outputs) in [
        (Loss::Sse, Activation::Sigmoid, 2),
        (Loss::Mse, Activation::Identity, 2),
        (Loss::Mse, Activation::Sigmoid, 1),
        (Loss::Bce, Activation::Sigmoid, 1),
        (Loss::Bce, Activation::Sigmoid, 3),
        (Loss::Ce, Activation::Softmax, 4),
    ] {
        let network = Network::build(vec![3, 7, outputs], Activation::Tanh, output, loss).unwrap();
        for config in [TrainConfig::sgd(0.1), mini_batches(TrainConfig::sgd(0.1))] {
            let what = format!("{loss} on {output}, batch {:?}", config.batch_size);
            let data = small_set(loss, outputs);
            assert_fused_matches_cpu(&what, &network, &data, config, (4, 30), TOLERANCE);
        }
    }
}

#[test]
fn every_optimizer_fused_matches_cpu() {
    // The settings of the layered engine's test: Adam turns a gradient that is zero up to rounding into a
    // step of ±lr, so some seeds amplify rounding on either engine alike.
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
            let what = format!("{optimizer:?}, batch {batch_size:?}");
            let data = small_set(Loss::Bce, 1);
            assert_fused_matches_cpu(&what, &network, &data, config, (7, 30), TOLERANCE);
        }
    }
}

#[test]
fn fused_matches_layered_on_the_gpu() {
    // Both engines compute the reference's operations in its order, so they agree far more tightly than
    // either agrees with the CPU.
    let network = Network::build(
        vec![3, 8, 5, 4],
        Activation::Tanh,
        Activation::Softmax,
        Loss::Ce,
    )
    .unwrap();
    let data = small_set(Loss::Ce, 4);
    for optimizer in [
        Optimizer::Sgd { momentum: 0.9 },
        Optimizer::Adam { weight_decay: 0.1 },
    ] {
        let config = TrainConfig {
            lr: 0.01,
            optimizer,
            schedule: Schedule::Constant,
            batch_size: Some(5),
            shuffle_seed: 11,
        };
        let params = network.init_params(3);
        let mut layered =
            pollster::block_on(GpuTrainer::new(gpu(), &network, &params, &data, config)).unwrap();
        layered.train(40).unwrap();
        let layered = pollster::block_on(layered.params()).unwrap();
        for tier in tiers(&config, data.rows) {
            let start = Start {
                params: params.clone(),
                config,
            };
            let mut fused = pollster::block_on(FusedTrainer::with_tier(
                gpu(),
                &network,
                &[start],
                &data,
                tier,
            ))
            .unwrap();
            fused.train(40).unwrap();
            assert_close(
                &format!("{optimizer:?}: parameters, fused ({tier:?}) vs layered"),
                &pollster::block_on(fused.params(0)).unwrap(),
                &layered,
                1e-6,
                1e-5,
            );
        }
    }
}

#[test]
fn long_runs_split_into_dispatches_match_cpu() {
    // 10000 epochs of XOR, and 3000 epochs of shuffled mini-batches with a short last one: more than one
    // dispatch can run on a software adapter. Both take batches of at most 5 rows, which every tier can.
    for tier in tiers(&mini_batches(TrainConfig::sgd(0.1)), 13) {
        let network = Network::new(vec![2, 3, 1]).unwrap();
        let [(fused, _), (cpu, _)] = fused_and_cpu(
            &network,
            &Dataset::xor(),
            TrainConfig::sgd(0.1),
            (DEFAULT_SEED, 10000),
            tier,
        );
        assert_close(
            &format!("XOR outputs after 10000 epochs, {tier:?}"),
            &fused,
            &cpu,
            1e-4,
            0.0,
        );
        let network = Network::build(
            vec![3, 4, 1],
            Activation::Tanh,
            Activation::Sigmoid,
            Loss::Bce,
        )
        .unwrap();
        let config = mini_batches(TrainConfig::sgd(0.1));
        let [(fused, fused_params), (cpu, cpu_params)] =
            fused_and_cpu(&network, &small_set(Loss::Bce, 1), config, (5, 3000), tier);
        assert_close(
            "shuffled outputs after 3000 epochs",
            &fused,
            &cpu,
            1e-4,
            1e-3,
        );
        assert_close(
            "shuffled parameters after 3000 epochs",
            &fused_params,
            &cpu_params,
            1e-4,
            1e-3,
        );
    }
}

/// Adam with mini-batches (a short last one), where both the seed's weights and its row order matter.
fn adam_batches(lr: f32, seed: u64) -> TrainConfig {
    TrainConfig {
        lr,
        optimizer: Optimizer::Adam { weight_decay: 0.01 },
        schedule: Schedule::Constant,
        batch_size: Some(5),
        shuffle_seed: seed,
    }
}

fn classifier() -> Network {
    Network::build(
        vec![3, 6, 1],
        Activation::Tanh,
        Activation::Sigmoid,
        Loss::Bce,
    )
    .unwrap()
}

fn fused_trainer(network: &Network, starts: &[Start], data: &Dataset) -> FusedTrainer<'static> {
    pollster::block_on(FusedTrainer::new(gpu(), network, starts, data)).unwrap()
}

#[test]
fn run_i_of_a_sweep_equals_a_single_run_with_seed_plus_i() {
    let (network, data) = (classifier(), small_set(Loss::Bce, 1));
    let start = |seed: u64, lr: f32| Start {
        params: network.init_params(seed),
        config: adam_batches(lr, seed),
    };
    let starts: Vec<Start> = [0.01, 0.05]
        .iter()
        .flat_map(|&lr| (0..3).map(move |i| (40 + i, lr)))
        .map(|(seed, lr)| start(seed, lr))
        .collect();
    let mut sweep = fused_trainer(&network, &starts, &data);
    sweep.train(25).unwrap();
    let metrics = pollster::block_on(sweep.metrics()).unwrap();
    for (run, single_start) in starts.iter().enumerate() {
        let mut single = fused_trainer(&network, std::slice::from_ref(single_start), &data);
        single.train(25).unwrap();
        assert_eq!(
            pollster::block_on(sweep.params(run)).unwrap(),
            pollster::block_on(single.params(0)).unwrap(),
            "run {run} of the sweep"
        );
        assert_eq!(
            metrics[run],
            pollster::block_on(single.metrics()).unwrap()[0]
        );
    }
    assert_ne!(
        pollster::block_on(sweep.params(0)).unwrap(),
        pollster::block_on(sweep.params(1)).unwrap(),
        "different seeds train different networks"
    );
}

#[test]
fn how_epochs_are_split_and_resuming_change_nothing() {
    let (network, data) = (classifier(), small_set(Loss::Bce, 1));
    let start = Start {
        params: network.init_params(8),
        config: adam_batches(0.02, 8),
    };
    let mut whole = fused_trainer(&network, std::slice::from_ref(&start), &data);
    whole.train(40).unwrap();
    let mut pieces = fused_trainer(&network, std::slice::from_ref(&start), &data);
    for epochs in [1, 9, 13, 17] {
        pieces.train(epochs).unwrap();
    }
    let params = pollster::block_on(whole.params(0)).unwrap();
    assert_eq!(
        params,
        pollster::block_on(pieces.params(0)).unwrap(),
        "40 epochs at once or in pieces"
    );

    // Stop after 15 epochs, keep the parameters and the optimizer state, resume in a new trainer.
    let mut first = fused_trainer(&network, std::slice::from_ref(&start), &data);
    first.train(15).unwrap();
    let saved = Start {
        params: pollster::block_on(first.params(0)).unwrap(),
        config: start.config,
    };
    let state = pollster::block_on(first.optimizer_state(0)).unwrap();
    let mut resumed = fused_trainer(&network, &[saved], &data);
    resumed.resume(15, &state).unwrap();
    resumed.train(25).unwrap();
    assert_eq!(resumed.epoch(), 40);
    assert_eq!(
        params,
        pollster::block_on(resumed.params(0)).unwrap(),
        "resumed after 15 epochs"
    );
}

#[test]
fn fused_metrics_agree_with_the_cpu_evaluation() {
    for (network, loss, outputs) in [
        (Network::new(vec![3, 5, 2]).unwrap(), Loss::Sse, 2),
        (classifier(), Loss::Bce, 1),
        (
            Network::build(
                vec![3, 6, 4],
                Activation::Relu,
                Activation::Softmax,
                Loss::Ce,
            )
            .unwrap(),
            Loss::Ce,
            4,
        ),
        (
            Network::build(
                vec![3, 6, 2],
                Activation::LeakyRelu,
                Activation::Identity,
                Loss::Mse,
            )
            .unwrap(),
            Loss::Mse,
            2,
        ),
    ] {
        let data = small_set(loss, outputs);
        let start = Start {
            params: network.init_params(2),
            config: TrainConfig::sgd(0.05),
        };
        let mut fused = fused_trainer(&network, std::slice::from_ref(&start), &data);
        fused.train(20).unwrap();
        let metrics = pollster::block_on(fused.metrics()).unwrap()[0];
        let params = pollster::block_on(fused.params(0)).unwrap();
        let mut cpu = CpuTrainer::<f32>::new(&network, &params, &data, start.config).unwrap();
        let evaluation = cpu.evaluate();
        let what = format!("{loss}");
        assert!(
            (metrics.loss - evaluation.loss).abs() <= 1e-5 + 1e-4 * evaluation.loss.abs(),
            "{what}: loss on the device {} vs the CPU {}",
            metrics.loss,
            evaluation.loss
        );
        let worst = wgmlp::bench::max_abs_diff(&evaluation.outputs, &data.targets);
        assert!(
            (metrics.max_error - worst).abs() < 1e-5,
            "{what}: {} vs {worst}",
            metrics.max_error
        );
        if let Some(accuracy) =
            wgmlp::data::accuracy(loss, &evaluation.outputs, &data.targets, outputs)
        {
            assert_eq!(
                metrics.correct as f64 / data.rows as f64,
                accuracy,
                "{what}: accuracy"
            );
        }
    }
}

#[test]
fn the_engine_is_chosen_by_size_and_forced_by_option() {
    use wgmlp::engine::Chosen;
    use wgmlp::{Engine, Trainer};
    let config = TrainConfig {
        optimizer: Optimizer::Adam { weight_decay: 0.0 },
        ..TrainConfig::sgd(0.01)
    };
    let small = Network::new(vec![2, 3, 1]).unwrap();
    let large = Network::new(vec![2, 100, 100, 1]).unwrap();
    let choose =
        |engine, network: &Network| Trainer::choose(Some(gpu()), engine, network, 4, &config, 1);
    assert_eq!(choose(Engine::Auto, &small).unwrap(), Chosen::Fused);
    assert_eq!(choose(Engine::Layered, &small).unwrap(), Chosen::Layered);
    assert_eq!(
        choose(Engine::Auto, &large).unwrap(),
        Chosen::Layered,
        "too large for private memory"
    );
    let error = choose(Engine::Fused, &large).unwrap_err().to_string();
    assert!(
        error.contains("fused engine") && error.contains("private memory"),
        "{error}"
    );
    assert_eq!(
        Trainer::choose(None, Engine::Auto, &small, 4, &config, 1).unwrap(),
        Chosen::Cpu
    );
    let error = Trainer::choose(None, Engine::Fused, &small, 4, &config, 1).unwrap_err();
    assert!(error.to_string().contains("--engine"), "{error}");

    // Every engine behind the one interface gives the same progress.
    let data = Dataset::xor();
    let start = Start {
        params: small.init_params(DEFAULT_SEED),
        config,
    };
    let mut progress = Vec::new();
    for (gpu, engine) in [
        (Some(gpu()), Engine::Fused),
        (Some(gpu()), Engine::Layered),
        (None, Engine::Auto),
    ] {
        let mut trainer =
            Trainer::new(gpu, engine, &small, std::slice::from_ref(&start), &data).unwrap();
        trainer.train(200).unwrap();
        progress.push((trainer.engine(), trainer.progress().unwrap()[0]));
    }
    for (engine, p) in &progress[1..] {
        let (_, fused) = progress[0];
        assert!(
            (p.loss - fused.loss).abs() < 1e-5,
            "{engine:?}: {p:?} vs fused {fused:?}"
        );
        assert!(
            (p.max_error - fused.max_error).abs() < 1e-5,
            "{engine:?}: {p:?} vs fused {fused:?}"
        );
    }
}

#[test]
fn a_network_too_large_for_private_memory_trains_in_workgroup_memory() {
    // 2-24-24-1 with Adam holds 2888 f32 values: more than one invocation's share, not a workgroup's (11.3
    // KiB of WebGPU's guaranteed 16).
    let network = Network::build(
        vec![2, 24, 24, 1],
        Activation::Tanh,
        Activation::Sigmoid,
        Loss::Bce,
    )
    .unwrap();
    let optimizer = Optimizer::Adam { weight_decay: 0.0 };
    let data = Dataset {
        rows: 40,
        inputs: common::random(80, 5),
        targets: common::targets_for(Loss::Bce, 40, 1, 6),
    };
    let config = TrainConfig {
        lr: 0.01,
        optimizer,
        schedule: Schedule::Constant,
        batch_size: Some(16),
        shuffle_seed: 2,
    };
    let tier = FusedTrainer::check_size(gpu(), &network, data.rows, &config, 1)
        .unwrap()
        .tier;
    assert_eq!(tier, Tier::Workgroup { threads: 32 });
    let [(fused_outputs, fused_params), (cpu_outputs, cpu_params)] =
        fused_and_cpu(&network, &data, config, (3, 25), tier);
    assert_close("outputs", &fused_outputs, &cpu_outputs, 1e-4, 1e-3);
    assert_close("parameters", &fused_params, &cpu_params, 1e-4, 1e-3);
}

#[test]
fn a_sweep_with_shuffled_batches_matches_cpu_run_by_run() {
    // 8 networks side by side, each with its own row order, over 257 rows in batches of 256: more epochs
    // than one dispatch may hold on llvmpipe, so the loop accounting is part of what is checked.
    let network = Network::new(vec![2, 3, 1]).unwrap();
    let data = Dataset {
        rows: 257,
        inputs: common::random(514, 12),
        targets: common::targets_for(Loss::Sse, 257, 1, 13),
    };
    let starts: Vec<Start> = (0..8u64)
        .map(|i| Start {
            params: network.init_params(20 + i),
            config: TrainConfig {
                batch_size: Some(256),
                shuffle_seed: 20 + i,
                ..TrainConfig::sgd(0.2)
            },
        })
        .collect();
    let mut sweep = fused_trainer(&network, &starts, &data);
    sweep.train(150).unwrap();
    for (run, start) in starts.iter().enumerate() {
        let mut cpu = CpuTrainer::<f32>::new(&network, &start.params, &data, start.config).unwrap();
        cpu.train(150);
        assert_close(
            &format!("run {run} after 150 epochs"),
            &pollster::block_on(sweep.params(run)).unwrap(),
            cpu.params(),
            1e-4,
            1e-3,
        );
    }
}

#[test]
fn a_few_networks_share_each_batch_over_a_workgroup_in_row_order() {
    let network = Network::new(vec![2, 3, 1]).unwrap();
    let data = Dataset::xor();
    let config = TrainConfig::sgd(0.1);
    let tier_for = |rows, runs| {
        FusedTrainer::check_size(gpu(), &network, rows, &config, runs)
            .unwrap()
            .tier
    };
    if let Some(reason) = gpu().rows_tier_refused() {
        // An adapter whose compiler cannot take the tier (llvmpipe through GL) never gets it, and says why.
        assert_eq!(tier_for(40, 1), Tier::Private);
        let start = Start {
            params: network.init_params(DEFAULT_SEED),
            config,
        };
        let refused = pollster::block_on(FusedTrainer::with_tier(
            gpu(),
            &network,
            &[start],
            &data,
            TURNS,
        ));
        let error = refused.err().expect("the rows tier is refused").to_string();
        assert!(error.contains("tier") && error.contains(reason), "{error}");
        return;
    }
    assert_eq!(tier_for(40, 1), Tier::Rows { threads: 64 });
    assert_eq!(
        tier_for(40, 1024),
        Tier::Private,
        "a sweep fills the device"
    );
    assert_eq!(
        tier_for(4, 1),
        Tier::Private,
        "no more rows than a subgroup: not worth the barriers"
    );
    // A thread a row, summed thread by thread, gives the private tier's sums bit for bit: XOR's 2-3-1 with
    // momentum, and a classifier on mini-batches of 5 with a short last one.
    for (network, data, config) in [
        (
            network.clone(),
            data.clone(),
            TrainConfig {
                optimizer: Optimizer::Sgd { momentum: 0.9 },
                ..config
            },
        ),
        (classifier(), small_set(Loss::Bce, 1), adam_batches(0.01, 4)),
    ] {
        let batch = config.batches(data.rows)[0].len() as u32;
        let start = Start {
            params: network.init_params(DEFAULT_SEED),
            config,
        };
        let threads = batch.next_power_of_two();
        let [private, rows] = [Tier::Private, Tier::Rows { threads }].map(|tier| {
            let mut fused = pollster::block_on(FusedTrainer::with_tier(
                gpu(),
                &network,
                std::slice::from_ref(&start),
                &data,
                tier,
            ))
            .unwrap();
            fused.train(500).unwrap();
            pollster::block_on(fused.params(0)).unwrap()
        });
        // The same sums in the same order; a compiler that fuses the private tier's `g += a·d` into one
        // rounding (lavapipe's does not) leaves the two apart by rounding.
        let what = format!("[{network}]: rows tier vs private tier");
        match gpu().is_software() {
            true => assert_eq!(rows, private, "{what}"),
            false => assert_close(&what, &rows, &private, 1e-6, 1e-5),
        }
    }
    // Two threads taking turns over batches of 5 (a short last one): the sums in another order, the
    // reference's to rounding.
    let (network, data, config) = (classifier(), small_set(Loss::Bce, 1), adam_batches(0.01, 4));
    let [(fused_outputs, fused_params), (cpu_outputs, cpu_params)] =
        fused_and_cpu(&network, &data, config, (DEFAULT_SEED, 30), TURNS);
    assert_close(
        "turns: outputs",
        &fused_outputs,
        &cpu_outputs,
        TOLERANCE.0,
        TOLERANCE.1,
    );
    assert_close(
        "turns: parameters",
        &fused_params,
        &cpu_params,
        TOLERANCE.0,
        TOLERANCE.1,
    );
}

#[test]
fn looped_code_matches_cpu_in_every_tier() {
    // The form that large networks get, tried on one small enough for every tier and for llvmpipe's loop
    // limit: hidden layers of different widths, momentum, mini-batches with a short last one.
    let network = Network::build(
        vec![3, 5, 4, 2],
        Activation::Tanh,
        Activation::Softmax,
        Loss::Ce,
    )
    .unwrap();
    let data = small_set(Loss::Ce, 2);
    for config in [
        TrainConfig {
            optimizer: Optimizer::Sgd { momentum: 0.5 },
            ..TrainConfig::sgd(0.1)
        },
        adam_batches(0.01, 4),
    ] {
        let turns = gpu().rows_tier_refused().is_none().then_some(TURNS);
        for tier in tiers(&config, data.rows).into_iter().chain(turns) {
            let looped = (tier, Some(Form::Looped));
            let [(fused_outputs, fused_params), (cpu_outputs, cpu_params)] =
                fused_and_cpu_in(&network, &data, config, (5, 40), looped);
            let what = format!("looped, {tier:?}, {config:?}");
            assert_close(
                &what,
                &fused_outputs,
                &cpu_outputs,
                TOLERANCE.0,
                TOLERANCE.1,
            );
            assert_close(&what, &fused_params, &cpu_params, TOLERANCE.0, TOLERANCE.1);
        }
    }
}

#[test]
fn a_second_trainer_of_the_same_network_compiles_nothing() {
    // The process keeps the engine's pipelines by their source: a sweep rerun, the playground's next session.
    // A network no other test of this binary trains, so that the first trainer here compiles.
    let network = Network::build(
        vec![3, 7, 1],
        Activation::Tanh,
        Activation::Sigmoid,
        Loss::Bce,
    )
    .unwrap();
    let data = small_set(Loss::Bce, 1);
    let trainer = |seed| {
        let start = Start {
            params: network.init_params(seed),
            config: TrainConfig::sgd(0.1),
        };
        pollster::block_on(FusedTrainer::new(gpu(), &network, &[start], &data)).unwrap()
    };
    let first = trainer(1);
    assert!(first.compile_time() > std::time::Duration::ZERO);
    let second = trainer(2);
    assert_eq!(second.variant(), first.variant());
    assert_eq!(second.compile_time(), std::time::Duration::ZERO);
}
