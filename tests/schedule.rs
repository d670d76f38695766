//! The learning-rate schedule: its factor epoch by epoch, its text, and a run under it on every engine: the
//! GPU engines against the CPU reference, sweeps, and resuming part way along the curve.

mod common;

use common::{assert_close, gpu, small_set};
use wgmlp::gpu::{FusedTrainer, Tier};
use wgmlp::{
    Activation, CpuTrainer, Dataset, Error, GpuTrainer, Loss, Network, Optimizer, Schedule, Start,
    TrainConfig,
};

// The tolerances of the same comparisons without a schedule: GPU against CPU (tests/training.rs,
// tests/fused.rs), and one GPU engine against another.
const TOLERANCE: (f32, f32) = (1e-4, 1e-3);
const ON_THE_GPU: (f32, f32) = (1e-6, 1e-5);

const STEP: Schedule = Schedule::Step {
    every: 4,
    factor: 0.7,
};

#[test]
fn a_constant_schedule_keeps_the_base_rate() {
    for epoch in [0, 1, 99, u64::MAX] {
        assert_eq!(Schedule::Constant.rate(0.1, epoch), 0.1);
    }
}

#[test]
fn a_step_schedule_multiplies_the_rate_at_each_boundary() {
    let halving = Schedule::Step {
        every: 3,
        factor: 0.5,
    };
    let rates: Vec<f32> = (0..10).map(|epoch| halving.rate(0.8, epoch)).collect();
    assert_eq!(rates, [0.8, 0.8, 0.8, 0.4, 0.4, 0.4, 0.2, 0.2, 0.2, 0.1]);
    // Far along, by squaring: factor^⌊e/every⌋ to a rounding a multiplication at most (each squaring
    // doubles the error of the one before), and 0 once it underflows.
    let decay = Schedule::Step {
        every: 1,
        factor: 0.999,
    };
    for epoch in [1u64, 7, 1000, 12_345] {
        let exact = f64::from(0.999f32).powf(epoch as f64);
        let factor = f64::from(decay.factor(epoch));
        assert!(
            (factor - exact).abs() <= epoch as f64 * f64::from(f32::EPSILON) * exact,
            "0.999^{epoch}: {factor} vs {exact}"
        );
    }
    assert_eq!(decay.factor(1 << 40), 0.0);
    assert_eq!(
        Schedule::Step {
            every: 1,
            factor: 1.0
        }
        .factor(1 << 40),
        1.0
    );
}

#[test]
fn a_cosine_schedule_anneals_from_the_base_rate_to_0_at_its_horizon() {
    let horizon = 1000;
    let cosine = Schedule::Cosine { horizon };
    assert_eq!(cosine.factor(0), 1.0);
    assert_eq!(cosine.factor(1000), 0.0);
    // Past the horizon the rate stays 0: a run is meant to end there.
    assert_eq!(cosine.factor(1001), 0.0);
    assert_eq!(cosine.factor(u64::MAX), 0.0);
    let mut previous = 1.0;
    for epoch in 0..=u64::from(horizon) {
        let factor = cosine.factor(epoch);
        let exact = 0.5 * (1.0 + (std::f64::consts::PI * epoch as f64 / 1000.0).cos());
        // Relative to the factor, which near the end is small: the last epochs keep a rate of the right size.
        assert!(
            (f64::from(factor) - exact).abs() <= 1e-6 * exact,
            "epoch {epoch}: {factor} vs {exact}"
        );
        assert!(factor <= previous, "epoch {epoch}: the rate never rises");
        previous = factor;
    }
    assert_eq!(Schedule::Cosine { horizon: 1 }.factor(0), 1.0);
    assert_eq!(Schedule::Cosine { horizon: 1 }.factor(1), 0.0);
}

#[test]
fn schedules_read_and_write_their_command_line_text() {
    for (text, end, schedule) in [
        ("constant", 10, Schedule::Constant),
        (
            "step:100:0.5",
            10,
            Schedule::Step {
                every: 100,
                factor: 0.5,
            },
        ),
        (
            "step:1:1",
            10,
            Schedule::Step {
                every: 1,
                factor: 1.0,
            },
        ),
        ("cosine", 750, Schedule::Cosine { horizon: 750 }),
        ("cosine:2000", 750, Schedule::Cosine { horizon: 2000 }),
        ("cosine:750", 750, Schedule::Cosine { horizon: 750 }),
    ] {
        assert_eq!(Schedule::parse(text, end).unwrap(), schedule, "{text}");
        assert_eq!(
            Schedule::parse(&schedule.to_string(), end).unwrap(),
            schedule
        );
    }
    assert_eq!(Schedule::Cosine { horizon: 750 }.to_string(), "cosine:750");
}

#[test]
fn malformed_schedules_are_refused_with_what_to_write() {
    for (text, end, fragments) in [
        ("", 10, &["choose constant", "step:100:0.5", "cosine"][..]),
        ("linear", 10, &["choose constant"][..]),
        ("Constant", 10, &["choose constant"][..]),
        ("step", 10, &["step:EPOCHS:FACTOR"][..]),
        ("step:10", 10, &["step:EPOCHS:FACTOR"][..]),
        ("step:10:0.5:2", 10, &["step:EPOCHS:FACTOR"][..]),
        ("step:0:0.5", 10, &["EPOCHS", "from 1", "step:100:0.5"][..]),
        ("step:-3:0.5", 10, &["EPOCHS", "whole number"][..]),
        ("step:1.5:0.5", 10, &["EPOCHS", "whole number"][..]),
        ("step:4294967296:0.5", 10, &["EPOCHS", "to 4294967295"][..]),
        ("step:10:0", 10, &["FACTOR", "above 0", "step:100:0.5"][..]),
        ("step:10:1e-50", 10, &["FACTOR", "above 0"][..]),
        ("step:10:-0.5", 10, &["FACTOR", "above 0"][..]),
        ("step:10:1.5", 10, &["FACTOR", "at most 1"][..]),
        ("step:10:nan", 10, &["FACTOR"][..]),
        ("step:10:inf", 10, &["FACTOR"][..]),
        ("step:10:half", 10, &["FACTOR"][..]),
        (
            "cosine:0",
            10,
            &["cosine's EPOCHS", "from 1", "cosine:1000"][..],
        ),
        ("cosine:x", 10, &["cosine's EPOCHS", "whole number"][..]),
        (
            "cosine:100",
            101,
            &["ends at epoch 101", "--epochs", "leave out :100"][..],
        ),
        (
            "cosine",
            1 << 33,
            &["ends at epoch 8589934592", "4294967295"][..],
        ),
    ] {
        let error = Schedule::parse(text, end).unwrap_err();
        let message = error.to_string();
        assert!(
            matches!(
                error,
                Error::InvalidOption {
                    option: "lr-schedule",
                    ..
                }
            ),
            "{text:?}: {message}"
        );
        for fragment in fragments {
            assert!(
                message.contains(fragment),
                "{text:?}: {fragment:?} missing from {message}"
            );
        }
    }
}

#[test]
fn schedules_built_in_code_are_checked_by_every_trainer() {
    let network = Network::new(vec![2, 3, 1]).unwrap();
    let params = network.init_params(1);
    for schedule in [
        Schedule::Step {
            every: 0,
            factor: 0.5,
        },
        Schedule::Step {
            every: 2,
            factor: f32::NAN,
        },
        Schedule::Step {
            every: 2,
            factor: 2.0,
        },
        Schedule::Cosine { horizon: 0 },
    ] {
        let config = TrainConfig {
            schedule,
            ..TrainConfig::sgd(0.1)
        };
        let data = Dataset::xor();
        let start = Start {
            params: params.clone(),
            config,
        };
        let errors = [
            CpuTrainer::<f32>::new(&network, &params, &data, config).err(),
            pollster::block_on(GpuTrainer::new(gpu(), &network, &params, &data, config)).err(),
            pollster::block_on(FusedTrainer::new(gpu(), &network, &[start], &data)).err(),
        ];
        for error in errors {
            assert!(
                matches!(
                    error,
                    Some(Error::InvalidOption {
                        option: "lr-schedule",
                        ..
                    })
                ),
                "{schedule:?}: {error:?}"
            );
        }
    }
}

fn classifier() -> Network {
    Network::build(
        vec![3, 8, 1],
        Activation::Relu,
        Activation::Sigmoid,
        Loss::Bce,
    )
    .unwrap()
}

/// Each schedule with an optimizer, full batches and mini-batches (13 rows in batches of 5: a short last one).
fn scheduled_configs() -> Vec<TrainConfig> {
    let mut configs = Vec::new();
    for schedule in [STEP, Schedule::Cosine { horizon: 30 }] {
        for (optimizer, lr) in [
            (Optimizer::Sgd { momentum: 0.9 }, 0.05),
            (Optimizer::Adam { weight_decay: 0.1 }, 0.01),
        ] {
            for batch_size in [None, Some(5)] {
                configs.push(TrainConfig {
                    lr,
                    optimizer,
                    schedule,
                    batch_size,
                    shuffle_seed: 9,
                });
            }
        }
    }
    configs
}

/// The CPU reference's parameters after `epochs` epochs of `config`.
fn cpu_params(network: &Network, data: &Dataset, config: TrainConfig, epochs: usize) -> Vec<f32> {
    let mut cpu = CpuTrainer::<f32>::new(network, &network.init_params(7), data, config).unwrap();
    cpu.train(epochs);
    cpu.params().to_vec()
}

#[test]
fn the_layered_engine_follows_every_schedule_as_the_cpu_does() {
    let (network, data) = (classifier(), small_set(Loss::Bce, 1));
    for config in scheduled_configs() {
        let mut layered = pollster::block_on(GpuTrainer::new(
            gpu(),
            &network,
            &network.init_params(7),
            &data,
            config,
        ))
        .unwrap();
        layered.train(30).unwrap();
        let (atol, rtol) = TOLERANCE;
        assert_close(
            &format!("layered, {config:?}"),
            &pollster::block_on(layered.params()).unwrap(),
            &cpu_params(&network, &data, config, 30),
            atol,
            rtol,
        );
    }
}

#[test]
fn the_fused_engine_follows_every_schedule_as_the_cpu_does() {
    let (network, data) = (classifier(), small_set(Loss::Bce, 1));
    for config in scheduled_configs() {
        let start = Start {
            params: network.init_params(7),
            config,
        };
        // The tier the engine picks (the subgroup one, where the adapter has subgroups, for a single small
        // network), and the other two.
        let picked = FusedTrainer::new(gpu(), &network, std::slice::from_ref(&start), &data);
        let mut trainers = vec![pollster::block_on(picked).unwrap()];
        for tier in [Tier::Private, Tier::Workgroup { threads: 32 }] {
            let trainer =
                FusedTrainer::with_tier(gpu(), &network, std::slice::from_ref(&start), &data, tier);
            trainers.push(pollster::block_on(trainer).unwrap());
        }
        let expected = cpu_params(&network, &data, config, 30);
        for mut fused in trainers {
            fused.train(30).unwrap();
            let (atol, rtol) = TOLERANCE;
            assert_close(
                &format!("fused ({:?}), {config:?}", fused.variant()),
                &pollster::block_on(fused.params(0)).unwrap(),
                &expected,
                atol,
                rtol,
            );
        }
    }
}

#[test]
fn a_schedule_changes_the_training_and_a_constant_one_changes_nothing() {
    let (network, data) = (classifier(), small_set(Loss::Bce, 1));
    let constant = TrainConfig::sgd(0.1);
    let explicit = TrainConfig {
        schedule: Schedule::Constant,
        ..constant
    };
    let stepped = TrainConfig {
        schedule: STEP,
        ..constant
    };
    let params = |config| cpu_params(&network, &data, config, 30);
    assert_eq!(params(constant), params(explicit));
    assert_ne!(
        params(constant),
        params(stepped),
        "the step schedule lowers the rate"
    );
}

#[test]
fn every_run_of_a_fused_sweep_follows_the_schedule_from_its_own_rate() {
    let (network, data) = (classifier(), small_set(Loss::Bce, 1));
    let starts: Vec<Start> = [0.05, 0.2]
        .iter()
        .flat_map(|&lr| (0..2).map(move |seed| (lr, seed)))
        .map(|(lr, seed)| Start {
            params: network.init_params(seed),
            config: TrainConfig {
                schedule: Schedule::Cosine { horizon: 20 },
                batch_size: Some(5),
                shuffle_seed: seed,
                ..TrainConfig::sgd(lr)
            },
        })
        .collect();
    let mut sweep = pollster::block_on(FusedTrainer::new(gpu(), &network, &starts, &data)).unwrap();
    sweep.train(20).unwrap();
    for (run, start) in starts.iter().enumerate() {
        let mut cpu = CpuTrainer::<f32>::new(&network, &start.params, &data, start.config).unwrap();
        cpu.train(20);
        let (atol, rtol) = TOLERANCE;
        assert_close(
            &format!("run {run} of the sweep, lr {}", start.config.lr),
            &pollster::block_on(sweep.params(run)).unwrap(),
            cpu.params(),
            atol,
            rtol,
        );
    }
    // One compiled schedule serves the whole sweep: runs with different ones are refused.
    let mut mixed = starts.clone();
    mixed[1].config.schedule = STEP;
    let error = pollster::block_on(FusedTrainer::new(gpu(), &network, &mixed, &data))
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains("share") && error.contains("schedule"),
        "{error}"
    );
}

/// What a run saves to go on: its parameters and its optimizer's state.
struct Halves {
    params: Vec<f32>,
    state: Vec<f32>,
}

#[test]
fn resuming_part_way_along_the_schedule_equals_an_uninterrupted_run() {
    let (network, data) = (classifier(), small_set(Loss::Bce, 1));
    for config in scheduled_configs() {
        let what = format!("{config:?}");
        let params = network.init_params(7);

        // The CPU, bit for bit.
        let mut whole = CpuTrainer::<f32>::new(&network, &params, &data, config).unwrap();
        whole.train(30);
        let mut first = CpuTrainer::<f32>::new(&network, &params, &data, config).unwrap();
        first.train(13);
        let saved = Halves {
            params: first.params().to_vec(),
            state: first.optimizer_state(),
        };
        let mut resumed = CpuTrainer::<f32>::new(&network, &saved.params, &data, config).unwrap();
        resumed.resume(13, &saved.state).unwrap();
        resumed.train(17);
        assert_eq!(whole.params(), resumed.params(), "CPU, {what}");

        // The layered engine, whose device counts the epochs itself; resuming sets its counter and factor.
        let layered = |params: &[f32]| {
            pollster::block_on(GpuTrainer::new(gpu(), &network, params, &data, config)).unwrap()
        };
        let mut whole = layered(&params);
        whole.train(30).unwrap();
        let mut first = layered(&params);
        first.train(13).unwrap();
        let saved = Halves {
            params: pollster::block_on(first.params()).unwrap(),
            state: pollster::block_on(first.optimizer_state()).unwrap(),
        };
        let mut resumed = layered(&saved.params);
        resumed.resume(13, &saved.state).unwrap();
        resumed.train(17).unwrap();
        let (atol, rtol) = ON_THE_GPU;
        assert_close(
            &format!("layered, resumed vs whole, {what}"),
            &pollster::block_on(resumed.params()).unwrap(),
            &pollster::block_on(whole.params()).unwrap(),
            atol,
            rtol,
        );

        // The fused engine computes the rate from the epoch alone: bit for bit.
        let fused = |params: &[f32]| {
            let start = Start {
                params: params.to_vec(),
                config,
            };
            pollster::block_on(FusedTrainer::new(gpu(), &network, &[start], &data)).unwrap()
        };
        let mut whole = fused(&params);
        whole.train(30).unwrap();
        let mut first = fused(&params);
        first.train(13).unwrap();
        let saved = Halves {
            params: pollster::block_on(first.params(0)).unwrap(),
            state: pollster::block_on(first.optimizer_state(0)).unwrap(),
        };
        let mut resumed = fused(&saved.params);
        resumed.resume(13, &saved.state).unwrap();
        resumed.train(17).unwrap();
        assert_eq!(
            pollster::block_on(resumed.params(0)).unwrap(),
            pollster::block_on(whole.params(0)).unwrap(),
            "fused, {what}"
        );
    }
}
