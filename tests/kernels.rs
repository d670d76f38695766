//! Each GPU kernel against its CPU twin, on shapes that are not multiples of the tile or workgroup size.

mod common;

use std::ops::Range;

use common::{assert_close, gpu, random};
use wgmlp::cpu::{self, MatmulShape};
use wgmlp::gpu::{Kernel, Op};

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

fn check_matmul(shape: MatmulShape) {
    for kernel in [Kernel::Matmul, Kernel::MatmulBlocked] {
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
fn matmul_picks_the_blocked_kernel_once_a_block_is_full() {
    assert_eq!(
        Kernel::matmul_for(MatmulShape::new(4, 2, 3)),
        Kernel::Matmul
    );
    assert_eq!(
        Kernel::matmul_for(MatmulShape::new(63, 500, 500)),
        Kernel::Matmul
    );
    assert_eq!(
        Kernel::matmul_for(MatmulShape::new(64, 1, 64)),
        Kernel::MatmulBlocked
    );
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
    for (rows, cols) in [(1, 1), (4, 3), (63, 65), (257, 3)] {
        let (z, bias) = (random(rows * cols, 3), random(cols, 4));
        let mut arena = Arena::default();
        let (rz, rbias) = (arena.put(&z), arena.put(&bias));
        let rdb = arena.put(&vec![f32::NAN; cols]);
        let result = arena.run(&[
            Op::bias_backward(rdb.clone(), rz.clone(), rows).unwrap(),
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
            &format!("bias_add {rows}×{cols}"),
            &result[rz],
            &added,
            ATOL,
            RTOL,
        );
    }
}

#[test]
fn elementwise_kernels_match_cpu() {
    for len in [1, 3, 63, 64, 65, 257, 5000] {
        let (x, y) = (random(len, 5), random(len, 6));
        let probabilities: Vec<f32> = y.iter().map(|v| (v + 1.0) / 2.0).collect();
        let mut arena = Arena::default();
        let (rx, ry, rp) = (arena.put(&x), arena.put(&y), arena.put(&probabilities));
        let outputs: Vec<Range<usize>> = (0..4).map(|_| arena.put(&vec![f32::NAN; len])).collect();
        let params = arena.put(&x);
        let result = arena.run(&[
            Op::sigmoid_forward(outputs[0].clone(), rx.clone()).unwrap(),
            Op::sigmoid_backward(outputs[1].clone(), rx.clone(), rp.clone()).unwrap(),
            Op::sse_backward(outputs[2].clone(), rx.clone(), ry.clone()).unwrap(),
            Op::sgd_update(params.clone(), ry.clone(), 0.3).unwrap(),
        ]);

        let mut expected = vec![vec![0.0; len]; 3];
        cpu::sigmoid_forward(&mut expected[0], &x);
        cpu::sigmoid_backward(&mut expected[1], &x, &probabilities);
        cpu::sse_backward(&mut expected[2], &x, &y);
        let mut updated = x.clone();
        cpu::sgd_update(&mut updated, &y, 0.3);
        for (name, (range, want)) in ["sigmoid_forward", "sigmoid_backward", "sse_backward"]
            .iter()
            .zip(outputs.iter().zip(&expected))
        {
            assert_close(
                &format!("{name} over {len}"),
                &result[range.clone()],
                want,
                ATOL,
                RTOL,
            );
        }
        assert_close(
            &format!("sgd_update over {len}"),
            &result[params],
            &updated,
            ATOL,
            RTOL,
        );
    }
}
