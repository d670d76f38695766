//! Each GPU kernel against its CPU twin, on shapes that are not multiples of the tile or workgroup size.

mod common;

use std::ops::Range;

use common::{assert_close, gpu, random};
use wgmlp::cpu::{self, MatmulShape};
use wgmlp::gpu::{Epilogue, Kernel, MatmulVariant, Metrics, Op, RowOrder, groups};
use wgmlp::train::Optimizer;
use wgmlp::{Activation, Gpu, Loss, Schedule, TrainConfig};

const ATOL: f32 = 1e-5;
const RTOL: f32 = 1e-5;

/// Lays tensors one after another in an arena and remembers where each went.
#[derive(Default)]
struct Arena {
    values: Vec<f32>,
}

impl Arena {
    fn put(&mut self, values: &[f32]) -> Range<usize> {
        let start = self.values.len();
        self.values.extend_from_slice(values);
        start..self.values.len()
    }

    fn run(&self, ops: &[Op]) -> Vec<f32> {
        pollster::block_on(gpu().run(&self.values, ops)).expect("the kernel runs")
    }
}

#[test]
fn every_kernel_compiles_on_the_device() {
    // Pipelines are compiled at first use; this compiles every one, each in the variants Kernel::ALL lists.
    pollster::block_on(gpu().compile_kernels(&Kernel::ALL)).expect("every kernel compiles");
}

fn check_matmul(shape: MatmulShape) {
    for kernel in Kernel::MATMULS {
        check_matmul_with(kernel, shape);
    }
}

fn check_matmul_with(kernel: Kernel, shape: MatmulShape) {
    let MatmulShape { m, k, n, .. } = shape;
    let (a, b) = (random(m * k, 1), random(k * n, 2));
    let mut expected = vec![0.0; m * n];
    cpu::matmul(&mut expected, &a, &b, shape);

    let mut arena = Arena::default();
    let (ra, rb) = (arena.put(&a), arena.put(&b));
    let rc = arena.put(&vec![f32::NAN; m * n]); // every output element must be written
    let result = arena.run(&[Op::matmul_with(kernel, rc.clone(), ra, rb, shape).unwrap()]);
    // Each output sums k products of values in [-1, 1): the rounding error grows with k.
    assert_close(
        &format!("matmul {shape:?}"),
        &result[rc],
        &expected,
        ATOL * (k as f32).max(1.0),
        RTOL,
    );
}

#[test]
fn matmul_matches_cpu_on_awkward_shapes() {
    for (m, k, n) in [
        (1, 1, 1),
        (3, 5, 7),
        (64, 64, 64),
        (65, 257, 33),
        (1, 300, 2),
        (17, 1, 19),
    ] {
        let shape = MatmulShape::new(m, k, n);
        check_matmul(shape);
        check_matmul(shape.transpose_a());
        check_matmul(shape.transpose_b());
        check_matmul(shape.transpose_a().transpose_b());
    }
}

#[test]
fn matmul_with_empty_inner_dimension_gives_zeros() {
    check_matmul(MatmulShape::new(3, 0, 5));
    check_matmul(MatmulShape::new(0, 4, 5));
}

#[test]
fn matmul_picks_the_specialized_kernel_from_256_outputs() {
    assert_eq!(
        Kernel::matmul_for(MatmulShape::new(4, 2, 3)),
        Kernel::Matmul
    );
    assert_eq!(
        Kernel::matmul_for(MatmulShape::new(25, 500, 10)),
        Kernel::Matmul
    );
    let fused = |transpose_a, transpose_b| {
        Kernel::MatmulFused(MatmulVariant {
            transpose_a,
            transpose_b,
            epilogue: Epilogue::None,
        })
    };
    assert_eq!(
        Kernel::matmul_for(MatmulShape::new(256, 1, 1)),
        fused(false, false)
    );
    assert_eq!(
        Kernel::matmul_for(MatmulShape::new(256, 784, 10).transpose_a()),
        fused(true, false)
    );
    let nt = Kernel::matmul_for(MatmulShape::new(63, 500, 500).transpose_b());
    assert_eq!(nt, fused(false, true));
    assert_eq!(nt.entry_point(), "matmul_fused_nt");
}

/// c = epilogue(op(a)·op(b)) on the GPU against the CPU's matmul, then bias_add and activation_forward, or
/// activation_backward.
fn check_epilogue(shape: MatmulShape, epilogue: Epilogue) {
    let MatmulShape { m, k, n, .. } = shape;
    let (a, b) = (random(m * k, 13), random(k * n, 14));
    let mut expected = vec![0.0; m * n];
    cpu::matmul(&mut expected, &a, &b, shape);
    let operand = match epilogue {
        Epilogue::None => Vec::new(),
        Epilogue::BiasActivation(f) => {
            let bias = random(n, 15);
            cpu::bias_add(&mut expected, &bias);
            let z = expected.clone();
            cpu::activation_forward(&mut expected, &z, f);
            bias
        }
        Epilogue::Slope(f) => {
            // The activation's output, from a z in [-4, 4), so that every slope is met.
            let z: Vec<f32> = random(m * n, 16).iter().map(|v| 4.0 * v).collect();
            let mut y = vec![0.0; m * n];
            cpu::activation_forward(&mut y, &z, f);
            let da = expected.clone();
            cpu::activation_backward(&mut expected, &da, &y, f);
            y
        }
    };
    let mut arena = Arena::default();
    let (ra, rb, roperand) = (arena.put(&a), arena.put(&b), arena.put(&operand));
    let rc = arena.put(&vec![f32::NAN; m * n]);
    let op = Op::matmul_epilogue(rc.clone(), ra, rb, shape, epilogue, roperand).unwrap();
    let result = arena.run(&[op]);
    assert_close(
        &format!("{} {shape:?} with {epilogue:?}", op.kernel.entry_point()),
        &result[rc],
        &expected,
        ATOL * (k as f32).max(1.0),
        RTOL,
    );
}

#[test]
fn matmul_epilogues_match_the_cpu_ops_they_fuse() {
    for (m, k, n) in [
        (1, 1, 1),
        (3, 5, 7),
        (65, 257, 33),
        (130, 70, 9),
        (64, 0, 3),
    ] {
        let shape = MatmulShape::new(m, k, n);
        for f in common::HIDDEN {
            // The forward pass of a layer, and dZ of the layer below from dZ·Wᵀ (matmul_fused_nt).
            check_epilogue(shape, Epilogue::BiasActivation(f));
            check_epilogue(shape.transpose_b(), Epilogue::Slope(f));
        }
        check_epilogue(shape, Epilogue::Slope(Activation::Tanh));
        check_epilogue(
            shape.transpose_a(),
            Epilogue::BiasActivation(Activation::Sigmoid),
        );
    }
}

#[test]
fn matmul_epilogue_refuses_softmax_and_a_wrong_operand() {
    let shape = MatmulShape::new(2, 3, 4);
    let err = Op::matmul_epilogue(
        0..8,
        8..14,
        14..26,
        shape,
        Epilogue::BiasActivation(Activation::Softmax),
        26..30,
    )
    .unwrap_err();
    assert!(err.to_string().contains("softmax"), "{err}");
    let err = Op::matmul_epilogue(
        0..8,
        8..14,
        14..26,
        shape,
        Epilogue::Slope(Activation::Relu),
        26..30,
    )
    .unwrap_err();
    assert!(err.to_string().contains("activation output (m×n)"), "{err}");
}

#[test]
fn split_matmul_and_split_sum_match_cpu() {
    // dW = Aᵀ·dZ over a batch of 257 rows in slices, the last one short, and the plain product too.
    for shape in [
        MatmulShape::new(65, 257, 33).transpose_a(),
        MatmulShape::new(3, 200, 70),
        MatmulShape::new(1, 5, 1).transpose_a(),
    ] {
        for asked in [1, 2, 3, 5, 8] {
            let MatmulShape { m, k, n, .. } = shape;
            let slices = Op::split_slices(shape, asked);
            assert!(
                slices <= asked && slices <= k.max(1),
                "{slices} slices of {k}"
            );
            let (a, b) = (random(m * k, 17), random(k * n, 18));
            let mut expected = vec![0.0; m * n];
            cpu::matmul(&mut expected, &a, &b, shape);
            let mut arena = Arena::default();
            let (ra, rb) = (arena.put(&a), arena.put(&b));
            let partials = arena.put(&vec![f32::NAN; slices * m * n]);
            let rc = arena.put(&vec![f32::NAN; m * n]);
            let result = arena.run(&[
                Op::matmul_split(partials.clone(), ra, rb, shape, asked).unwrap(),
                Op::split_sum(rc.clone(), partials).unwrap(),
            ]);
            assert_close(
                &format!("{slices} slices of {shape:?}"),
                &result[rc],
                &expected,
                ATOL * k as f32,
                RTOL,
            );
        }
    }
    let nt = MatmulShape::new(4, 300, 4).transpose_b();
    let err = Op::matmul_split(0..32, 32..1232, 1232..2432, nt, 2).unwrap_err();
    assert!(err.to_string().contains("matmul_fused_nt"), "{err}");
}

#[test]
fn matmul_rows_beyond_one_grid_dimension_spill_into_the_next() {
    // More blocks of rows than the 65535 workgroups a grid dimension holds: 16-row tiles for matmul,
    // 64-row blocks for the others.
    check_matmul_with(Kernel::Matmul, MatmulShape::new(1_100_000, 2, 3));
    let fused = Kernel::MatmulFused(MatmulVariant::PLAIN);
    for kernel in [Kernel::MatmulBlocked, Kernel::MatmulRegisters, fused] {
        check_matmul_with(kernel, MatmulShape::new(4_200_000, 1, 2));
    }
    check_matmul_with(fused, MatmulShape::new(4_200_000, 1, 2).transpose_b());
}

#[test]
fn matmul_rejects_mismatched_shapes() {
    let err = Op::matmul(0..6, 6..12, 12..20, MatmulShape::new(2, 3, 3)).unwrap_err();
    assert!(
        err.to_string().contains("matmul") && err.to_string().contains("b (k×n)"),
        "{err}"
    );
}

#[test]
fn bias_kernels_match_cpu() {
    for (rows, cols) in [(1, 1), (4, 3), (63, 65), (257, 3), (0, 5), (1000, 17)] {
        let (z, bias) = (random(rows * cols, 3), random(cols, 4));
        let mut arena = Arena::default();
        let (rz, rbias) = (arena.put(&z), arena.put(&bias));
        let rdb = arena.put(&vec![f32::NAN; cols]);
        let rtree = arena.put(&vec![f32::NAN; cols]);
        let result = arena.run(&[
            Op::bias_backward(rdb.clone(), rz.clone(), rows).unwrap(),
            Op::bias_backward_tree(rtree.clone(), rz.clone(), rows).unwrap(),
            Op::bias_add(rz.clone(), rbias, rows).unwrap(),
        ]);

        let mut dbias = vec![0.0; cols];
        cpu::bias_backward(&mut dbias, &z);
        let mut added = z.clone();
        cpu::bias_add(&mut added, &bias);
        assert_close(
            &format!("bias_backward {rows}×{cols}"),
            &result[rdb],
            &dbias,
            ATOL * rows as f32,
            RTOL,
        );
        assert_close(
            &format!("bias_backward_tree {rows}×{cols}"),
            &result[rtree],
            &dbias,
            ATOL * rows as f32,
            RTOL,
        );
        assert_close(
            &format!("bias_add {rows}×{cols}"),
            &result[rz],
            &added,
            ATOL,
            RTOL,
        );
    }
}

#[test]
fn activation_kernels_match_cpu() {
    let elementwise = common::HIDDEN;
    for len in [1, 3, 63, 64, 65, 257, 5000] {
        // Values in [-8, 8), wide enough for every activation to saturate or go negative.
        let z: Vec<f32> = random(len, 5).iter().map(|v| 8.0 * v).collect();
        let da = random(len, 6);
        for f in elementwise {
            let mut a = vec![0.0; len];
            cpu::activation_forward(&mut a, &z, f);
            let mut dz = vec![0.0; len];
            cpu::activation_backward(&mut dz, &da, &a, f);

            let mut arena = Arena::default();
            let (rz, rda, ra) = (arena.put(&z), arena.put(&da), arena.put(&a));
            let (out_a, out_dz) = (
                arena.put(&vec![f32::NAN; len]),
                arena.put(&vec![f32::NAN; len]),
            );
            let result = arena.run(&[
                Op::activation_forward(out_a.clone(), rz, f).unwrap(),
                Op::activation_backward(out_dz.clone(), rda, ra, f).unwrap(),
            ]);
            assert_close(
                &format!("activation_forward {f} over {len}"),
                &result[out_a],
                &a,
                ATOL,
                RTOL,
            );
            assert_close(
                &format!("activation_backward {f} over {len}"),
                &result[out_dz],
                &dz,
                ATOL,
                RTOL,
            );
        }
    }
}

#[test]
fn tanh_keeps_its_relative_precision_near_zero() {
    // tanh(z) ≈ z here, so only a relative tolerance tells a right answer from a cancelled one.
    let z: Vec<f32> = [1e-30, 1e-7, 3e-5, 1e-3, 0.05, 0.1249, 0.1251, 0.3, 1.0, 4.0]
        .iter()
        .flat_map(|&v| [v, -v])
        .collect();
    let mut expected = vec![0.0; z.len()];
    cpu::activation_forward(&mut expected, &z, Activation::Tanh);
    let mut arena = Arena::default();
    let (rz, out) = (arena.put(&z), arena.put(&vec![f32::NAN; z.len()]));
    let result = arena.run(&[Op::activation_forward(out.clone(), rz, Activation::Tanh).unwrap()]);
    assert_close("tanh near 0", &result[out], &expected, 0.0, 2e-6);
}

#[test]
fn softmax_matches_cpu_and_sums_to_one() {
    for (rows, cols) in [(1, 2), (3, 3), (65, 10), (200, 1)] {
        // Large logits: the shift by the row maximum must keep exp finite.
        let z: Vec<f32> = random(rows * cols, 7).iter().map(|v| 60.0 * v).collect();
        let mut expected = vec![0.0; rows * cols];
        cpu::softmax_forward(&mut expected, &z, cols);
        let mut arena = Arena::default();
        let rz = arena.put(&z);
        let out = arena.put(&vec![f32::NAN; rows * cols]);
        let result = arena.run(&[Op::softmax_forward(out.clone(), rz, cols).unwrap()]);
        assert_close(
            &format!("softmax_forward {rows}×{cols}"),
            &result[out.clone()],
            &expected,
            ATOL,
            RTOL,
        );
        for row in result[out].chunks(cols) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{row:?}");
        }
    }
}

#[test]
fn shuffled_rows_and_gather_rows_follow_the_cpu_order_from_the_cursor_on_and_next_epoch_moves_on() {
    let (rows, cols) = (70, 3);
    let src = random(rows * cols, 8);
    let config = TrainConfig {
        batch_size: Some(23),
        shuffle_seed: 0xDEAD_BEEF_0042,
        ..TrainConfig::sgd(0.1)
    };
    let (epoch, cursor, batch) = (5, 11, 23);
    let order = config.epoch_order(epoch, rows);
    let mut expected = vec![0.0; batch * cols];
    cpu::gather_rows(&mut expected, &src, &order[cursor..cursor + batch], cols);
    let mut arena = Arena::default();
    let rsrc = arena.put(&src);
    let repoch = arena.put(&[epoch as f32]).start;
    let rcursor = arena.put(&[cursor as f32]).start;
    let factor = arena.put(&[f32::NAN]).start;
    let rows_at = arena.put(&vec![f32::NAN; batch]);
    let out = arena.put(&vec![f32::NAN; batch * cols]);
    let row_order = RowOrder {
        seed: config.shuffle_seed,
        rows,
        epoch: repoch,
        cursor: rcursor,
    };
    let result = arena.run(&[
        Op::shuffled_rows(rows_at.clone(), row_order).unwrap(),
        Op::gather_rows(out.clone(), rsrc.clone(), rows_at, cols).unwrap(),
        Op::advance_counter(rcursor, batch as f32).unwrap(),
    ]);
    assert_eq!(
        &result[out.clone()],
        &expected[..],
        "gathered rows are copies"
    );
    assert_eq!(
        result[rcursor],
        (cursor + batch) as f32,
        "advance_counter moved the cursor on"
    );
    let schedule = Schedule::Step {
        every: 2,
        factor: 0.5,
    };
    let result = arena.run(&[Op::next_epoch(row_order, schedule, factor).unwrap()]);
    assert_eq!(
        (result[repoch], result[rcursor], result[factor]),
        ((epoch + 1) as f32, 0.0, 0.125),
        "next_epoch moves the epoch on, the cursor back, and the rate's factor to epoch 6's"
    );
}

#[test]
fn next_epoch_gives_the_schedule_factor_of_the_cpu() {
    let schedules = [
        Schedule::Constant,
        Schedule::Step {
            every: 1,
            factor: 0.999,
        },
        Schedule::Step {
            every: 7,
            factor: 0.3,
        },
        Schedule::Cosine { horizon: 1 },
        Schedule::Cosine { horizon: 10 },
        Schedule::Cosine { horizon: 999 },
        Schedule::Cosine {
            horizon: 16_000_000,
        },
    ];
    let epochs = [
        1u64, 2, 5, 6, 7, 10, 14, 499, 500, 998, 999, 1000, 4321, 8_000_000, 15_999_999,
    ];
    let mut arena = Arena::default();
    let mut ops = Vec::new();
    let mut cases = Vec::new();
    for schedule in schedules {
        for epoch in epochs {
            // next_epoch moves the counter from the epoch before on to `epoch`.
            let order = RowOrder {
                seed: 0,
                rows: 1,
                epoch: arena.put(&[(epoch - 1) as f32]).start,
                cursor: arena.put(&[0.0]).start,
            };
            let factor = arena.put(&[f32::NAN]).start;
            ops.push(Op::next_epoch(order, schedule, factor).unwrap());
            cases.push((schedule, epoch, factor));
        }
    }
    let result = arena.run(&ops);
    for (schedule, epoch, factor) in cases {
        // Relative to the factor, which near a cosine's end is small: the formula keeps its precision there.
        assert_close(
            &format!("{schedule} at epoch {epoch}"),
            &[result[factor]],
            &[schedule.factor(epoch)],
            0.0,
            RTOL,
        );
    }
}

#[test]
fn the_device_row_order_equals_the_cpu_order() {
    // Every position of a few epochs, for sizes around powers of four and a 64-bit seed.
    for rows in [2, 3, 4, 5, 17, 63, 64, 65, 257, 1000] {
        let config = TrainConfig {
            batch_size: Some(1),
            shuffle_seed: 0x1234_5678_9ABC_DEF0 ^ rows as u64,
            ..TrainConfig::sgd(0.1)
        };
        for epoch in [0, 1, 7, 100_000] {
            let mut arena = Arena::default();
            let repoch = arena.put(&[epoch as f32]).start;
            let rcursor = arena.put(&[0.0]).start;
            let out = arena.put(&vec![f32::NAN; rows]);
            let row_order = RowOrder {
                seed: config.shuffle_seed,
                rows,
                epoch: repoch,
                cursor: rcursor,
            };
            let result = arena.run(&[Op::shuffled_rows(out.clone(), row_order).unwrap()]);
            let device: Vec<u32> = result[out].iter().map(|&r| r as u32).collect();
            let cpu_order = config.epoch_order(epoch, rows);
            assert_eq!(device, cpu_order, "{rows} rows, epoch {epoch}");
            let mut sorted = cpu_order.clone();
            sorted.sort();
            assert_eq!(
                sorted,
                (0..rows as u32).collect::<Vec<_>>(),
                "a permutation"
            );
        }
    }
}

#[test]
fn optimizer_kernels_match_cpu_over_several_steps() {
    for len in [1, 65, 1000] {
        let (params, grads) = (random(len, 9), random(len, 10));
        let mut arena = Arena::default();
        let (rsgd, radam) = (arena.put(&params), arena.put(&params));
        let rgrads = arena.put(&grads);
        let velocity = arena.put(&vec![0.0; len]);
        let moments = arena.put(&vec![0.0; 2 * len]);
        // Adam's step count and its two bias corrections, which adam_step writes.
        let step = arena.put(&[0.0, f32::NAN, f32::NAN]).start;
        // The schedule's factor: the kernels take the base rate times it.
        let factor = arena.put(&[0.5]).start;
        let mut ops = Vec::new();
        for _ in 0..3 {
            ops.push(
                Op::sgd_update(
                    rsgd.clone(),
                    rgrads.clone(),
                    velocity.clone(),
                    0.2,
                    factor,
                    0.9,
                )
                .unwrap(),
            );
            ops.push(Op::adam_step(step).unwrap());
            ops.push(
                Op::adam_update(
                    radam.clone(),
                    rgrads.clone(),
                    moments.clone(),
                    step,
                    0.02,
                    factor,
                    0.1,
                )
                .unwrap(),
            );
        }
        let result = arena.run(&ops);

        let (mut sgd, mut adam) = (params.clone(), params.clone());
        let mut v = vec![0.0; len];
        let (mut m1, mut m2) = (vec![0.0; len], vec![0.0; len]);
        for t in 1..=3 {
            cpu::sgd_update(&mut sgd, &grads, &mut v, 0.2 * 0.5, 0.9);
            cpu::adam_update(
                &mut adam,
                &grads,
                (&mut m1, &mut m2),
                t as f32,
                0.02 * 0.5,
                0.1,
            );
        }
        assert_close(
            &format!("sgd_update with momentum over {len}"),
            &result[rsgd],
            &sgd,
            ATOL,
            RTOL,
        );
        assert_close(
            &format!("sgd velocity over {len}"),
            &result[velocity],
            &v,
            ATOL,
            RTOL,
        );
        assert_close(
            &format!("adam_update over {len}"),
            &result[radam],
            &adam,
            ATOL,
            RTOL,
        );
        assert_close(
            &format!("adam first moment over {len}"),
            &result[moments.start..moments.start + len],
            &m1,
            ATOL,
            RTOL,
        );
        assert_close(
            &format!("adam second moment over {len}"),
            &result[moments.start + len..moments.end],
            &m2,
            ATOL,
            RTOL,
        );
        let correction = |beta: f32| 1.0 - beta.powi(3);
        assert_eq!(result[step], 3.0, "adam_step counts the steps");
        assert_close(
            "adam_step's bias corrections",
            &result[step + 1..step + 3],
            &[Optimizer::ADAM_BETA1, Optimizer::ADAM_BETA2].map(correction),
            ATOL,
            RTOL,
        );
        assert_eq!(result[step], 3.0, "advance_counter counted every step");
    }
}

#[test]
fn loss_backward_matches_cpu() {
    for len in [1, 63, 65, 257] {
        let (output, target) = (random(len, 11), random(len, 12));
        let mut expected = vec![0.0; len];
        cpu::loss_backward(&mut expected, &output, &target, 0.25);
        let mut arena = Arena::default();
        let (ro, rt) = (arena.put(&output), arena.put(&target));
        let out = arena.put(&vec![f32::NAN; len]);
        let result = arena.run(&[Op::loss_backward(out.clone(), ro, rt, 0.25).unwrap()]);
        assert_close(
            &format!("loss_backward over {len}"),
            &result[out],
            &expected,
            ATOL,
            RTOL,
        );
    }
}

/// The metrics of `output` (with `logits`) against `target` on `gpu`, measured as the layered trainer does:
/// `measure_rows`, then `measure_sum` until one tally is left.
fn measure_on(
    gpu: &Gpu,
    loss: Loss,
    (logits, output, target): (&[f32], &[f32], &[f32]),
    cols: usize,
) -> Metrics {
    let mut arena = Arena::default();
    let (rz, ro, ry) = (arena.put(logits), arena.put(output), arena.put(target));
    let mut tallies = arena.put(&vec![f32::NAN; 3 * groups(output.len() / cols)]);
    let mut ops = vec![Op::measure_rows(tallies.clone(), ro, ry, rz, loss, cols).unwrap()];
    while tallies.len() > 3 {
        let sums = arena.put(&vec![f32::NAN; 3 * groups(tallies.len() / 3)]);
        ops.push(Op::measure_sum(sums.clone(), tallies).unwrap());
        tallies = sums;
    }
    let result = pollster::block_on(gpu.run(&arena.values, &ops)).expect("the kernels run");
    let rows = output.len() / cols;
    Metrics {
        loss: f64::from(result[tallies.start]) / loss.mean_over(rows, cols) as f64,
        max_error: result[tallies.start + 1],
        correct: result[tallies.start + 2] as usize,
    }
}

/// Logits, outputs as the loss's output activation makes them, and targets that suit the loss; every fifth
/// row's outputs all equal, so that the predicted class is a tie (the last of equals wins).
fn measured_set(loss: Loss, rows: usize, cols: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let logits: Vec<f32> = random(rows * cols, 31).iter().map(|z| 4.0 * z).collect();
    let mut output = match loss {
        Loss::Sse | Loss::Bce => logits.iter().map(|z| 1.0 / (1.0 + (-z).exp())).collect(),
        Loss::Mse => logits.clone(),
        Loss::Ce => {
            let mut a = vec![0.0; logits.len()];
            cpu::softmax_forward(&mut a, &logits, cols);
            a
        }
    };
    for row in output.chunks_mut(cols).step_by(5) {
        row.fill(0.5);
    }
    (logits, output, common::targets_for(loss, rows, cols, 32))
}

#[test]
fn measure_kernels_match_cpu_for_every_loss_on_awkward_row_counts() {
    for &loss in Loss::ALL {
        for (rows, cols) in [(1, 1), (5, 3), (63, 2), (65, 4), (4097, 3), (9000, 1)] {
            let cols = if loss == Loss::Ce { cols.max(2) } else { cols };
            let (logits, output, target) = measured_set(loss, rows, cols);
            let what = format!("{loss} on {rows}×{cols}");
            let gpu_metrics = measure_on(gpu(), loss, (&logits, &output, &target), cols);
            let expected = cpu::measure(loss, &logits, &output, &target, cols);
            // The largest error and the rows right are exact: the same f32 differences and comparisons.
            assert_eq!(gpu_metrics.max_error, expected.max_error, "{what}");
            assert_eq!(gpu_metrics.correct, expected.correct, "{what}");
            let largest = logits.iter().fold(0.0f32, |m, z| m.max(z.abs()));
            let shape = (cols, common::measure_passes(rows), largest);
            common::assert_loss_close(&what, gpu_metrics.loss, expected.loss, loss, shape);
        }
    }
}

#[test]
fn measuring_keeps_a_nan_error_and_loss() {
    let (rows, cols) = (300, 2);
    let (logits, mut output, target) = measured_set(Loss::Mse, rows, cols);
    output[2 * 150 + 1] = f32::NAN;
    let m = measure_on(gpu(), Loss::Mse, (&logits, &output, &target), cols);
    assert!(m.max_error.is_nan() && m.loss.is_nan(), "{m:?}");
}

#[test]
fn grids_follow_the_device_limit_and_spill_or_fail_beyond_it() {
    // 4 workgroups a dimension: at most 4 × 4 workgroups of 64 threads for a one-dimensional kernel.
    let small = common::gpu_with_limits(|l| l.max_compute_workgroups_per_dimension = 4);
    assert_eq!(small.limits().max_compute_workgroups_per_dimension, 4);
    // 900 rows: 15 workgroups spilled to 4 × 4, one to spare, which must write nothing.
    let (rows, cols) = (900, 2);
    let (logits, output, target) = measured_set(Loss::Ce, rows, cols);
    let m = measure_on(&small, Loss::Ce, (&logits, &output, &target), cols);
    let expected = cpu::measure(Loss::Ce, &logits, &output, &target, cols);
    assert_eq!(
        (m.max_error, m.correct),
        (expected.max_error, expected.correct)
    );
    common::assert_loss_close(
        "ce, spilled",
        m.loss,
        expected.loss,
        Loss::Ce,
        (cols, 2, 4.0),
    );

    let (z, bias) = (random(1000, 3), random(1, 4));
    let mut arena = Arena::default();
    let (rz, rbias) = (arena.put(&z), arena.put(&bias));
    let op = Op::bias_add(rz.clone(), rbias.clone(), 1000).unwrap();
    assert_eq!(op.workgroups(4).unwrap(), [4, 4, 1]);
    let result = pollster::block_on(small.run(&arena.values, &[op])).unwrap();
    let mut added = z.clone();
    cpu::bias_add(&mut added, &bias);
    assert_close("bias_add, spilled", &result[rz], &added, ATOL, RTOL);

    // 1025 elements need 17 workgroups: more than 4 × 4.
    let op = Op::bias_add(0..1025, 1025..1026, 1025).unwrap();
    let err = pollster::block_on(small.run(&vec![0.0; 1026], &[op])).unwrap_err();
    assert!(
        err.to_string().contains("5 workgroups in one dimension")
            && err.to_string().contains("at most 4"),
        "{err}"
    );
}
