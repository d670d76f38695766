//! The kernels, the one way to describe a dispatch of them (`Op`), and the one way to encode a list of
//! dispatches (`Program`).
//!
//! Every kernel reads and writes a single storage buffer, the arena, at offsets given in its `Args`. So one
//! bind group layout serves all kernels, and a program's arguments are written to a uniform buffer once, each
//! op in its own slot chosen by a dynamic offset.

use std::ops::Range;

use bytemuck::{Pod, Zeroable};

use crate::cpu::MatmulShape;
use crate::{Error, Result};

/// Threads per workgroup of the one-dimensional kernels (`WORKGROUP_SIZE` in shaders/common.wgsl).
pub const WORKGROUP_SIZE: u32 = 64;

/// Side of the square of the output one `matmul` workgroup computes, one element a thread (`SMALL_TILE` in
/// shaders/matmul.wgsl).
pub const MATMUL_TILE: u32 = 16;

/// Side of the square of the output one `matmul_blocked` workgroup computes (`BLOCK`), with this many threads
/// a side (`BLOCK_THREADS`).
pub const MATMUL_BLOCK: u32 = 64;
pub const MATMUL_BLOCK_THREADS: u32 = 16;

/// The most workgroups wgpu lets a dispatch have in one dimension by default.
const MAX_WORKGROUPS_PER_DIMENSION: u32 = 65535;

/// The shader files (`shaders/NAME.wgsl`), each with the shared prelude in front of it.
pub const SHADERS: [(&str, &str); 5] = [
    (
        "matmul",
        concat!(
            include_str!("../../shaders/common.wgsl"),
            include_str!("../../shaders/matmul.wgsl")
        ),
    ),
    (
        "bias",
        concat!(
            include_str!("../../shaders/common.wgsl"),
            include_str!("../../shaders/bias.wgsl")
        ),
    ),
    (
        "activation",
        concat!(
            include_str!("../../shaders/common.wgsl"),
            include_str!("../../shaders/activation.wgsl")
        ),
    ),
    (
        "loss",
        concat!(
            include_str!("../../shaders/common.wgsl"),
            include_str!("../../shaders/loss.wgsl")
        ),
    ),
    (
        "optimizer",
        concat!(
            include_str!("../../shaders/common.wgsl"),
            include_str!("../../shaders/optimizer.wgsl")
        ),
    ),
];

/// A compute kernel. Each has a WGSL entry point and a CPU twin in [`crate::cpu`] of the same name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    Matmul,
    MatmulBlocked,
    BiasAdd,
    BiasBackward,
    SigmoidForward,
    SigmoidBackward,
    SseBackward,
    SgdUpdate,
}

impl Kernel {
    pub const ALL: [Kernel; 8] = [
        Kernel::Matmul,
        Kernel::MatmulBlocked,
        Kernel::BiasAdd,
        Kernel::BiasBackward,
        Kernel::SigmoidForward,
        Kernel::SigmoidBackward,
        Kernel::SseBackward,
        Kernel::SgdUpdate,
    ];

    /// The matmul version for `shape`: the blocked one once the output fills at least one of its blocks.
    pub fn matmul_for(shape: MatmulShape) -> Kernel {
        let block = MATMUL_BLOCK as usize;
        if shape.m >= block && shape.n >= block {
            Kernel::MatmulBlocked
        } else {
            Kernel::Matmul
        }
    }

    /// The WGSL entry point, which is also the CPU twin's name (`matmul_blocked` is a twin of `matmul`).
    pub fn entry_point(self) -> &'static str {
        match self {
            Kernel::Matmul => "matmul",
            Kernel::MatmulBlocked => "matmul_blocked",
            Kernel::BiasAdd => "bias_add",
            Kernel::BiasBackward => "bias_backward",
            Kernel::SigmoidForward => "sigmoid_forward",
            Kernel::SigmoidBackward => "sigmoid_backward",
            Kernel::SseBackward => "sse_backward",
            Kernel::SgdUpdate => "sgd_update",
        }
    }

    /// Which entry of [`SHADERS`] holds the kernel.
    pub fn shader(self) -> usize {
        match self {
            Kernel::Matmul | Kernel::MatmulBlocked => 0,
            Kernel::BiasAdd | Kernel::BiasBackward => 1,
            Kernel::SigmoidForward | Kernel::SigmoidBackward => 2,
            Kernel::SseBackward => 3,
            Kernel::SgdUpdate => 4,
        }
    }

    /// The `@workgroup_size` the entry point declares.
    pub fn workgroup_size(self) -> [u32; 3] {
        match self {
            Kernel::Matmul => [MATMUL_TILE, MATMUL_TILE, 1],
            Kernel::MatmulBlocked => [MATMUL_BLOCK_THREADS, MATMUL_BLOCK_THREADS, 1],
            _ => [WORKGROUP_SIZE, 1, 1],
        }
    }

    pub(crate) fn index(self) -> usize {
        Kernel::ALL
            .iter()
            .position(|&k| k == self)
            .expect("Kernel::ALL lists every kernel")
    }
}

/// One dispatch's arguments, laid out as `struct Args` in shaders/common.wgsl. Offsets count f32 elements.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct Args {
    pub out: u32,
    pub a: u32,
    pub b: u32,
    pub rows: u32,
    pub cols: u32,
    pub inner: u32,
    pub flags: u32,
    pub scale: f32,
}

/// One kernel dispatch over regions of the arena.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Op {
    pub kernel: Kernel,
    pub args: Args,
}

impl Op {
    /// c[m×n] = op(a)[m×k] · op(b)[k×n], with the kernel version that suits the shape.
    pub fn matmul(
        c: Range<usize>,
        a: Range<usize>,
        b: Range<usize>,
        shape: MatmulShape,
    ) -> Result<Op> {
        Op::matmul_with(Kernel::matmul_for(shape), c, a, b, shape)
    }

    /// c[m×n] = op(a)[m×k] · op(b)[k×n] with a chosen version, `Kernel::Matmul` or `Kernel::MatmulBlocked`.
    pub fn matmul_with(
        kernel: Kernel,
        c: Range<usize>,
        a: Range<usize>,
        b: Range<usize>,
        shape: MatmulShape,
    ) -> Result<Op> {
        assert!(
            matches!(kernel, Kernel::Matmul | Kernel::MatmulBlocked),
            "matmul_with takes a matmul kernel, not {kernel:?}"
        );
        let MatmulShape { m, k, n, .. } = shape;
        expect_len("matmul", "c (m×n)", &c, m * n)?;
        expect_len("matmul", "a (m×k)", &a, m * k)?;
        expect_len("matmul", "b (k×n)", &b, k * n)?;
        let flags = u32::from(shape.transpose_a) | u32::from(shape.transpose_b) << 1;
        Ok(Op::new(
            Kernel::Matmul,
            &c,
            &a,
            b.start,
            [m, n, k],
            flags,
            0.0,
        ))
    }

    /// z[rows×cols] += bias[cols]
    pub fn bias_add(z: Range<usize>, bias: Range<usize>, rows: usize) -> Result<Op> {
        expect_len("bias_add", "z (rows×cols)", &z, rows * bias.len())?;
        let cols = bias.len();
        Ok(Op::new(
            Kernel::BiasAdd,
            &z,
            &bias,
            0,
            [rows, cols, 0],
            0,
            0.0,
        ))
    }

    /// dbias[cols] = Σ_rows dz[rows×cols]
    pub fn bias_backward(dbias: Range<usize>, dz: Range<usize>, rows: usize) -> Result<Op> {
        expect_len("bias_backward", "dz (rows×cols)", &dz, rows * dbias.len())?;
        let cols = dbias.len();
        Ok(Op::new(
            Kernel::BiasBackward,
            &dbias,
            &dz,
            0,
            [rows, cols, 0],
            0,
            0.0,
        ))
    }

    /// a[len] = σ(z[len])
    pub fn sigmoid_forward(a: Range<usize>, z: Range<usize>) -> Result<Op> {
        expect_len("sigmoid_forward", "z", &z, a.len())?;
        Ok(Op::elementwise(Kernel::SigmoidForward, &a, &z, 0, 0.0))
    }

    /// dz[len] = da[len] ⊙ a ⊙ (1 − a)
    pub fn sigmoid_backward(dz: Range<usize>, da: Range<usize>, a: Range<usize>) -> Result<Op> {
        expect_len("sigmoid_backward", "da", &da, dz.len())?;
        expect_len("sigmoid_backward", "a", &a, dz.len())?;
        Ok(Op::elementwise(
            Kernel::SigmoidBackward,
            &dz,
            &da,
            a.start,
            0.0,
        ))
    }

    /// doutput[len] = output − target
    pub fn sse_backward(
        doutput: Range<usize>,
        output: Range<usize>,
        target: Range<usize>,
    ) -> Result<Op> {
        expect_len("sse_backward", "output", &output, doutput.len())?;
        expect_len("sse_backward", "target", &target, doutput.len())?;
        Ok(Op::elementwise(
            Kernel::SseBackward,
            &doutput,
            &output,
            target.start,
            0.0,
        ))
    }

    /// params[len] −= lr · grads[len]
    pub fn sgd_update(params: Range<usize>, grads: Range<usize>, lr: f32) -> Result<Op> {
        expect_len("sgd_update", "grads", &grads, params.len())?;
        Ok(Op::elementwise(Kernel::SgdUpdate, &params, &grads, 0, lr))
    }

    fn elementwise(
        kernel: Kernel,
        out: &Range<usize>,
        a: &Range<usize>,
        b: usize,
        scale: f32,
    ) -> Op {
        Op::new(kernel, out, a, b, [1, out.len(), 0], 0, scale)
    }

    fn new(
        kernel: Kernel,
        out: &Range<usize>,
        a: &Range<usize>,
        b: usize,
        [rows, cols, inner]: [usize; 3],
        flags: u32,
        scale: f32,
    ) -> Op {
        let word = |x: usize| {
            u32::try_from(x)
                .expect("arena sizes fit in u32: the arena was checked against the device limits")
        };
        Op {
            kernel,
            args: Args {
                out: word(out.start),
                a: word(a.start),
                b: word(b),
                rows: word(rows),
                cols: word(cols),
                inner: word(inner),
                flags,
                scale,
            },
        }
    }

    /// The workgroup grid: one workgroup per output tile or block for matmul, one thread per element (per column for
    /// bias_backward) otherwise.
    pub fn workgroups(&self) -> Result<[u32; 3]> {
        let Args { rows, cols, .. } = self.args;
        let [x, y] = match self.kernel {
            Kernel::Matmul => [cols.div_ceil(MATMUL_TILE), rows.div_ceil(MATMUL_TILE)],
            Kernel::MatmulBlocked => [cols.div_ceil(MATMUL_BLOCK), rows.div_ceil(MATMUL_BLOCK)],
            Kernel::BiasBackward => spill(cols.div_ceil(WORKGROUP_SIZE)),
            _ => spill((rows * cols).div_ceil(WORKGROUP_SIZE)),
        };
        if x > MAX_WORKGROUPS_PER_DIMENSION || y > MAX_WORKGROUPS_PER_DIMENSION {
            return Err(Error::TooLarge {
                what: format!("{} over {rows}×{cols}", self.kernel.entry_point()),
                needed: u64::from(x.max(y)),
                limit: u64::from(MAX_WORKGROUPS_PER_DIMENSION),
                unit: "workgroups in one dimension",
            });
        }
        Ok([x, y, 1])
    }
}

/// Folds a long one-dimensional grid into x·y workgroups (see `thread_index` in shaders/common.wgsl).
fn spill(workgroups: u32) -> [u32; 2] {
    if workgroups <= MAX_WORKGROUPS_PER_DIMENSION {
        [workgroups, 1]
    } else {
        [
            MAX_WORKGROUPS_PER_DIMENSION,
            workgroups.div_ceil(MAX_WORKGROUPS_PER_DIMENSION),
        ]
    }
}

fn expect_len(op: &'static str, what: &str, range: &Range<usize>, len: usize) -> Result<()> {
    if range.len() == len {
        return Ok(());
    }
    Err(Error::ShapeMismatch {
        op,
        expected: format!("{what} of {len} elements"),
        got: format!("{} elements", range.len()),
    })
}
