//! The kernels, the one way to describe a dispatch of them (`Op`), and the one way to encode a list of
//! dispatches (`Program`).
//!
//! Every kernel reads and writes a single storage buffer, the arena, at offsets given in its `Args`. So one
//! bind group layout serves all kernels, and a program's arguments are written to a uniform buffer once, each
//! op in its own slot chosen by a dynamic offset.

use std::ops::Range;

use bytemuck::{Pod, Zeroable};

use crate::cpu::MatmulShape;
use crate::network::{Activation, Loss};
use crate::train::{Optimizer, Schedule, cosine_angle};
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
/// Threads along each side of a `matmul_registers` workgroup, each holding 8×8 elements of its block.
pub const MATMUL_REGISTER_THREADS: u32 = 8;

/// Columns of c a `matmul_fused_nt` workgroup computes (`NT_COLUMNS`), over MATMUL_BLOCK rows.
pub const MATMUL_NT_COLUMNS: u32 = 8;

/// Columns a `bias_backward_tree` workgroup sums (`TREE_COLUMNS` in shaders/bias.wgsl), each by
/// WORKGROUP_SIZE / BIAS_TREE_COLUMNS threads.
pub const BIAS_TREE_COLUMNS: u32 = 8;

/// The shader files (`shaders/NAME.wgsl`), each with the shared prelude and functions in front of it.
pub const SHADERS: [(&str, &str); 6] = [
    (
        "matmul",
        concat!(
            include_str!("../../shaders/common.wgsl"),
            include_str!("../../shaders/functions.wgsl"),
            include_str!("../../shaders/matmul.wgsl")
        ),
    ),
    (
        "bias",
        concat!(
            include_str!("../../shaders/common.wgsl"),
            include_str!("../../shaders/functions.wgsl"),
            include_str!("../../shaders/bias.wgsl")
        ),
    ),
    (
        "activation",
        concat!(
            include_str!("../../shaders/common.wgsl"),
            include_str!("../../shaders/functions.wgsl"),
            include_str!("../../shaders/activation.wgsl")
        ),
    ),
    (
        "loss",
        concat!(
            include_str!("../../shaders/common.wgsl"),
            include_str!("../../shaders/functions.wgsl"),
            include_str!("../../shaders/loss.wgsl")
        ),
    ),
    (
        "data",
        concat!(
            include_str!("../../shaders/common.wgsl"),
            include_str!("../../shaders/functions.wgsl"),
            include_str!("../../shaders/data.wgsl")
        ),
    ),
    (
        "optimizer",
        concat!(
            include_str!("../../shaders/common.wgsl"),
            include_str!("../../shaders/functions.wgsl"),
            include_str!("../../shaders/optimizer.wgsl")
        ),
    ),
];

/// A compute kernel. Each has a WGSL entry point and a CPU twin in [`crate::cpu`] of the same name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    Matmul,
    MatmulBlocked,
    MatmulRegisters,
    MatmulFused(MatmulVariant),
    BiasAdd,
    BiasBackward,
    BiasBackwardTree,
    ActivationForward,
    ActivationBackward,
    SoftmaxForward,
    LossBackward,
    MeasureRows,
    MeasureSum,
    ShuffledRows,
    GatherRows,
    SgdUpdate,
    AdamStep,
    AdamUpdate,
    AdvanceCounter,
    NextEpoch,
}

impl Kernel {
    /// Every kernel, `matmul_fused` in its plain variant and its a·bᵀ one (`matmul_fused_nt`); its other
    /// variants differ only in their override constants.
    pub const ALL: [Kernel; 21] = [
        Kernel::Matmul,
        Kernel::MatmulBlocked,
        Kernel::MatmulRegisters,
        Kernel::MatmulFused(MatmulVariant::PLAIN),
        Kernel::MatmulFused(MatmulVariant {
            transpose_b: true,
            ..MatmulVariant::PLAIN
        }),
        Kernel::BiasAdd,
        Kernel::BiasBackward,
        Kernel::BiasBackwardTree,
        Kernel::ActivationForward,
        Kernel::ActivationBackward,
        Kernel::SoftmaxForward,
        Kernel::LossBackward,
        Kernel::MeasureRows,
        Kernel::MeasureSum,
        Kernel::ShuffledRows,
        Kernel::GatherRows,
        Kernel::SgdUpdate,
        Kernel::AdamStep,
        Kernel::AdamUpdate,
        Kernel::AdvanceCounter,
        Kernel::NextEpoch,
    ];

    /// The matmul versions, in the order they were written.
    pub const MATMULS: [Kernel; 4] = [
        Kernel::Matmul,
        Kernel::MatmulBlocked,
        Kernel::MatmulRegisters,
        Kernel::MatmulFused(MatmulVariant::PLAIN),
    ];

    /// The matmul version for `shape`: `matmul_fused` specialized for its transposes once the output has at
    /// least 256 elements (on lavapipe it beats the small `matmul` even on a 256×10 output, most of its 64×64
    /// block idle: the small one's barriers cost more), the small one below.
    pub fn matmul_for(shape: MatmulShape) -> Kernel {
        if shape.m * shape.n >= 256 {
            Kernel::MatmulFused(MatmulVariant::for_shape(shape, Epilogue::None))
        } else {
            Kernel::Matmul
        }
    }

    /// The WGSL entry point, which is also the CPU twin's name (`matmul_blocked` is a twin of `matmul`;
    /// `advance_counter`, `adam_step` and `next_epoch` move the counters the CPU keeps in fields (`adam_step`
    /// with the bias corrections that `cpu::adam_update` computes in place); `measure_rows` and
    /// `measure_sum` together are `cpu::measure`).
    pub fn entry_point(self) -> &'static str {
        match self {
            Kernel::Matmul => "matmul",
            Kernel::MatmulBlocked => "matmul_blocked",
            Kernel::MatmulRegisters => "matmul_registers",
            Kernel::MatmulFused(variant) if variant.along_inner() => "matmul_fused_nt",
            Kernel::MatmulFused(_) => "matmul_fused",
            Kernel::BiasAdd => "bias_add",
            Kernel::BiasBackward => "bias_backward",
            Kernel::BiasBackwardTree => "bias_backward_tree",
            Kernel::ActivationForward => "activation_forward",
            Kernel::ActivationBackward => "activation_backward",
            Kernel::SoftmaxForward => "softmax_forward",
            Kernel::LossBackward => "loss_backward",
            Kernel::MeasureRows => "measure_rows",
            Kernel::MeasureSum => "measure_sum",
            Kernel::ShuffledRows => "shuffled_rows",
            Kernel::GatherRows => "gather_rows",
            Kernel::SgdUpdate => "sgd_update",
            Kernel::AdamStep => "adam_step",
            Kernel::AdamUpdate => "adam_update",
            Kernel::AdvanceCounter => "advance_counter",
            Kernel::NextEpoch => "next_epoch",
        }
    }

    /// Which entry of [`SHADERS`] holds the kernel.
    pub fn shader(self) -> usize {
        match self {
            Kernel::Matmul
            | Kernel::MatmulBlocked
            | Kernel::MatmulRegisters
            | Kernel::MatmulFused(_) => 0,
            Kernel::BiasAdd | Kernel::BiasBackward | Kernel::BiasBackwardTree => 1,
            Kernel::ActivationForward | Kernel::ActivationBackward | Kernel::SoftmaxForward => 2,
            Kernel::LossBackward | Kernel::MeasureRows | Kernel::MeasureSum => 3,
            Kernel::ShuffledRows
            | Kernel::GatherRows
            | Kernel::AdvanceCounter
            | Kernel::NextEpoch => 4,
            Kernel::SgdUpdate | Kernel::AdamStep | Kernel::AdamUpdate => 5,
        }
    }

    /// The `@workgroup_size` the entry point declares.
    pub fn workgroup_size(self) -> [u32; 3] {
        match self {
            Kernel::Matmul => [MATMUL_TILE, MATMUL_TILE, 1],
            Kernel::MatmulBlocked => [MATMUL_BLOCK_THREADS, MATMUL_BLOCK_THREADS, 1],
            Kernel::MatmulRegisters | Kernel::MatmulFused(_) => {
                [MATMUL_REGISTER_THREADS, MATMUL_REGISTER_THREADS, 1]
            }
            _ => [WORKGROUP_SIZE, 1, 1],
        }
    }

    /// The values of the override constants the pipeline is compiled with (none but `matmul_fused`'s).
    pub fn constants(self) -> Vec<(&'static str, f64)> {
        let Kernel::MatmulFused(variant) = self else {
            return Vec::new();
        };
        let (epilogue, activation) = variant.epilogue.code();
        vec![
            ("TRANSPOSE_A", f64::from(u8::from(variant.transpose_a))),
            ("TRANSPOSE_B", f64::from(u8::from(variant.transpose_b))),
            ("EPILOGUE", f64::from(epilogue)),
            ("ACTIVATION", f64::from(activation)),
        ]
    }
}

/// What one `matmul_fused` pipeline is specialized for (its override constants): which operands it reads
/// transposed, and what it does to an element of c as it stores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MatmulVariant {
    pub transpose_a: bool,
    pub transpose_b: bool,
    pub epilogue: Epilogue,
}

impl MatmulVariant {
    /// No transpose, no epilogue: the variant every device compiles up front.
    pub const PLAIN: MatmulVariant = MatmulVariant {
        transpose_a: false,
        transpose_b: false,
        epilogue: Epilogue::None,
    };

    /// Whether the entry point is `matmul_fused_nt`: c = A·Bᵀ, whose operands are both contiguous along
    /// the inner dimension, is read with that dimension on the fast thread axis.
    pub fn along_inner(self) -> bool {
        !self.transpose_a && self.transpose_b
    }

    pub fn for_shape(shape: MatmulShape, epilogue: Epilogue) -> Self {
        MatmulVariant {
            transpose_a: shape.transpose_a,
            transpose_b: shape.transpose_b,
            epilogue,
        }
    }
}

/// What `matmul_fused` applies to each element of the product as it stores it (`EPILOGUE_` in
/// shaders/matmul.wgsl); the activations are element-wise ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Epilogue {
    None,
    /// c = f(a·b + bias): a layer's forward pass, `matmul`, `bias_add` and `activation_forward` in one.
    BiasActivation(Activation),
    /// c = (a·b) ⊙ f′(y), y the activation's output: dZ of the layer below from dZ·Wᵀ, `matmul` and
    /// `activation_backward` in one.
    Slope(Activation),
}

impl Epilogue {
    /// (EPILOGUE, ACTIVATION) as the shader numbers them.
    fn code(self) -> (u32, u32) {
        let activation = |f| activation_code(f).expect("Op::matmul_epilogue refuses softmax");
        match self {
            Epilogue::None => (0, 0),
            Epilogue::BiasActivation(f) => (1, activation(f)),
            Epilogue::Slope(f) => (2, activation(f)),
        }
    }
}

/// The number `activation_forward` and `activation_backward` know an element-wise activation by (the
/// constants at the top of shaders/activation.wgsl); softmax is not one.
pub fn activation_code(f: Activation) -> Result<u32> {
    Ok(match f {
        Activation::Identity => 0,
        Activation::Sigmoid => 1,
        Activation::Tanh => 2,
        Activation::Relu => 3,
        Activation::LeakyRelu => 4,
        Activation::Softmax => {
            return Err(Error::Unsupported {
                op: "activation_forward or activation_backward",
                what: f.to_string(),
                reason: "it is row-wise, so softmax_forward computes it and loss_backward (with ce) \
                         its gradient",
            });
        }
    })
}

/// The number the shaders know a loss by (the constants SSE, MSE, BCE and CE in shaders/functions.wgsl).
pub fn loss_code(loss: Loss) -> u32 {
    match loss {
        Loss::Sse => 0,
        Loss::Mse => 1,
        Loss::Bce => 2,
        Loss::Ce => 3,
    }
}

/// The numbers `schedule_factor` in shaders/functions.wgsl knows a schedule by: its kind (the constants above
/// it), its period in epochs, and its parameter (the step's factor, or the angle of a cosine's epoch).
pub fn schedule_code(schedule: Schedule) -> (u32, u32, f32) {
    match schedule {
        Schedule::Constant => (0, 1, 1.0),
        Schedule::Step { every, factor } => (1, every, factor),
        Schedule::Cosine { horizon } => (2, horizon, cosine_angle(horizon)),
    }
}

/// One dispatch's arguments, laid out as `struct Args` in shaders/common.wgsl. Offsets count f32 elements.
///
/// One layout serves every kernel, and each field means one thing: `out`, `a`, `b`, `c`, `d` are the
/// arena offsets of the kernel's operands, `rows × cols` the shape it runs over (and `inner` a product's
/// inner dimension); every other field is named for the one setting it holds, and only the kernels that
/// take that setting set it (the others leave it zero). Which operand is which, per kernel:
///
/// ```text
/// kernel               out, a, b, c, d                              rows × cols, inner   settings
/// matmul, _blocked,    C, A, B                                      m × n, k             transposes
///   _registers
/// matmul_fused(_nt)    C, A, B, epilogue operand                    m × n, k             depth
/// bias_add             z, bias                                      rows × cols
/// bias_backward(_tree) dbias, dz                                    rows × cols
/// activation_forward   a, z                                         1 × len              activation
/// activation_backward  dz, da, a                                    1 × len              activation
/// softmax_forward      a, z                                         rows × cols
/// loss_backward        d, output, target                            1 × len              loss_scale
/// measure_rows         partials, output, target, logits             rows × cols          loss
/// measure_sum          sums, tallies                                n × 1
/// shuffled_rows        rows, -, epoch, cursor                       len × 1              data_rows, seed
/// gather_rows          out, src, order                              rows × cols
/// sgd_update           params, grads, velocity, -, factor           1 × len              lr, momentum
/// adam_step            step (t, 1 − β1^t, 1 − β2^t)                 1 × 1                beta1, beta2
/// adam_update          params, grads, moments, step, factor         1 × len              lr, weight_decay,
///                                                                                        beta1, beta2, epsilon
/// advance_counter      counter                                      1 × 1                amount
/// next_epoch           epoch, cursor, factor                        1 × 1                schedule, period,
///                                                                                        schedule_parameter
/// ```
///
/// Codes: [`activation_code`], [`loss_code`], [`schedule_code`]. `factor` in sgd_update and adam_update
/// is the schedule's factor that next_epoch keeps.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct Args {
    pub out: u32,
    pub a: u32,
    pub b: u32,
    pub c: u32,
    pub d: u32,
    pub rows: u32,
    pub cols: u32,
    pub inner: u32,
    /// matmul_fused: the steps of k that one slice sums.
    pub depth: u32,
    /// shuffled_rows: the rows of the data set the order runs over.
    pub data_rows: u32,
    /// next_epoch: the schedule's period in epochs.
    pub period: u32,
    /// matmul: bit 0 set where a is read transposed, bit 1 for b.
    pub transposes: u32,
    pub activation: u32,
    pub loss: u32,
    pub schedule: u32,
    /// loss_backward: the factor in d = scale · (output − target).
    pub loss_scale: f32,
    pub lr: f32,
    pub momentum: f32,
    pub weight_decay: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub epsilon: f32,
    /// advance_counter: what it adds.
    pub amount: f32,
    /// next_epoch: the step schedule's factor, or the cosine's angle per epoch.
    pub schedule_parameter: f32,
    /// shuffled_rows: the seed's low and high halves.
    pub seed_lo: u32,
    pub seed_hi: u32,
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

    /// c[m×n] = op(a)[m×k] · op(b)[k×n] with a chosen version, one of [`Kernel::MATMULS`] (`matmul_fused` is
    /// specialized for the shape's transposes, whichever variant is given).
    pub fn matmul_with(
        kernel: Kernel,
        c: Range<usize>,
        a: Range<usize>,
        b: Range<usize>,
        shape: MatmulShape,
    ) -> Result<Op> {
        let kernel = match kernel {
            Kernel::MatmulFused(_) => {
                return Op::matmul_epilogue(c, a, b, shape, Epilogue::None, EMPTY);
            }
            Kernel::Matmul | Kernel::MatmulBlocked | Kernel::MatmulRegisters => kernel,
            _ => {
                return Err(Error::Unsupported {
                    op: "matmul_with",
                    what: format!("{kernel:?}"),
                    reason: "it takes one of Kernel::MATMULS (Kernel::Matmul, Kernel::MatmulBlocked, \
                             Kernel::MatmulRegisters or Kernel::MatmulFused)",
                });
            }
        };
        let MatmulShape { m, k, n, .. } = shape;
        expect_matmul(&c, &a, &b, shape)?;
        let mut op = Op::rows(kernel, [&c, &a, &b], m, n)?;
        op.args.inner = word(kernel, k)?;
        op.args.transposes = u32::from(shape.transpose_a) | u32::from(shape.transpose_b) << 1;
        Ok(op)
    }

    /// c[m×n] = epilogue(op(a)[m×k] · op(b)[k×n]) by `matmul_fused`; `operand` is the epilogue's: the bias
    /// (n) for [`Epilogue::BiasActivation`], the activation's output (m×n) for [`Epilogue::Slope`], empty
    /// for none.
    pub fn matmul_epilogue(
        c: Range<usize>,
        a: Range<usize>,
        b: Range<usize>,
        shape: MatmulShape,
        epilogue: Epilogue,
        operand: Range<usize>,
    ) -> Result<Op> {
        let MatmulShape { m, k, n, .. } = shape;
        expect_matmul(&c, &a, &b, shape)?;
        let (what, len, f) = match epilogue {
            Epilogue::None => ("no epilogue operand", 0, None),
            Epilogue::BiasActivation(f) => ("bias (n)", n, Some(f)),
            Epilogue::Slope(f) => ("activation output (m×n)", m * n, Some(f)),
        };
        expect_len("matmul_epilogue", what, &operand, len)?;
        if let Some(f) = f {
            activation_code(f)?;
        }
        let variant = MatmulVariant::for_shape(shape, epilogue);
        let kernel = Kernel::MatmulFused(variant);
        let mut op = Op::rows(kernel, [&c, &a, &b], m, n)?;
        op.args.c = word(kernel, operand.start)?;
        op.args.inner = word(kernel, k)?;
        // One slice covering the whole inner dimension.
        op.args.depth = word(kernel, k.max(1))?;
        Ok(op)
    }

    /// partials[slices×m×n] = op(a)·op(b) split along k into `slices` slices of at least `depth` steps
    /// (the last one shorter), slice s its own m×n product; [`Op::split_sum`] adds them into c. For products
    /// whose long dimension is the inner one, such as dW = Aᵀ·dZ over a batch: the slices run side by side.
    pub fn matmul_split(
        partials: Range<usize>,
        a: Range<usize>,
        b: Range<usize>,
        shape: MatmulShape,
        slices: usize,
    ) -> Result<Op> {
        let MatmulShape { m, n, .. } = shape;
        let (slices, depth) = split(shape.k, slices);
        expect_len(
            "matmul_split",
            "partials (slices×m×n)",
            &partials,
            slices * m * n,
        )?;
        let c = partials.start..partials.start + m * n;
        let mut op = Op::matmul_epilogue(c, a, b, shape, Epilogue::None, EMPTY)?;
        if slices > 1 && MatmulVariant::for_shape(shape, Epilogue::None).along_inner() {
            return Err(Error::Unsupported {
                op: "matmul_split",
                what: "a·bᵀ".into(),
                reason: "matmul_fused_nt already splits the inner dimension among a workgroup's threads",
            });
        }
        op.args.depth = word(op.kernel, depth)?;
        Ok(op)
    }

    /// The number of slices [`Op::matmul_split`] makes of `shape` when asked for `slices`.
    pub fn split_slices(shape: MatmulShape, slices: usize) -> usize {
        split(shape.k, slices).0
    }

    /// c[len] = Σ_s partials[s][len], s over the slices in order: the column sum of `bias_backward`, the
    /// slices its rows.
    pub fn split_sum(c: Range<usize>, partials: Range<usize>) -> Result<Op> {
        let slices = whole_rows("split_sum", "slices", &partials, c.len())?;
        Op::bias_backward(c, partials, slices)
    }

    /// z[rows×cols] += bias[cols]
    pub fn bias_add(z: Range<usize>, bias: Range<usize>, rows: usize) -> Result<Op> {
        expect_len("bias_add", "z (rows×cols)", &z, rows * bias.len())?;
        Op::rows(Kernel::BiasAdd, [&z, &bias, &EMPTY], rows, bias.len())
    }

    /// dbias[cols] = Σ_rows dz[rows×cols]
    pub fn bias_backward(dbias: Range<usize>, dz: Range<usize>, rows: usize) -> Result<Op> {
        expect_len("bias_backward", "dz (rows×cols)", &dz, rows * dbias.len())?;
        Op::rows(
            Kernel::BiasBackward,
            [&dbias, &dz, &EMPTY],
            rows,
            dbias.len(),
        )
    }

    /// dbias[cols] = Σ_rows dz[rows×cols], each column summed by several threads and a tree
    pub fn bias_backward_tree(dbias: Range<usize>, dz: Range<usize>, rows: usize) -> Result<Op> {
        let mut op = Op::bias_backward(dbias, dz, rows)?;
        op.kernel = Kernel::BiasBackwardTree;
        Ok(op)
    }

    /// a[len] = f(z[len]) for an element-wise f
    pub fn activation_forward(a: Range<usize>, z: Range<usize>, f: Activation) -> Result<Op> {
        expect_len("activation_forward", "z", &z, a.len())?;
        let mut op = Op::elementwise(Kernel::ActivationForward, [&a, &z, &EMPTY])?;
        op.args.activation = activation_code(f)?;
        Ok(op)
    }

    /// dz[len] = da[len] ⊙ f′(a)
    pub fn activation_backward(
        dz: Range<usize>,
        da: Range<usize>,
        a: Range<usize>,
        f: Activation,
    ) -> Result<Op> {
        expect_len("activation_backward", "da", &da, dz.len())?;
        expect_len("activation_backward", "a", &a, dz.len())?;
        let mut op = Op::elementwise(Kernel::ActivationBackward, [&dz, &da, &a])?;
        op.args.activation = activation_code(f)?;
        Ok(op)
    }

    /// a[rows×cols] = softmax(z) along each row
    pub fn softmax_forward(a: Range<usize>, z: Range<usize>, cols: usize) -> Result<Op> {
        expect_len("softmax_forward", "z", &z, a.len())?;
        let rows = whole_rows("softmax_forward", "rows", &a, cols)?;
        Op::rows(Kernel::SoftmaxForward, [&a, &z, &EMPTY], rows, cols)
    }

    /// d[len] = scale · (output − target)
    pub fn loss_backward(
        d: Range<usize>,
        output: Range<usize>,
        target: Range<usize>,
        scale: f32,
    ) -> Result<Op> {
        expect_len("loss_backward", "output", &output, d.len())?;
        expect_len("loss_backward", "target", &target, d.len())?;
        let mut op = Op::elementwise(Kernel::LossBackward, [&d, &output, &target])?;
        op.args.loss_scale = scale;
        Ok(op)
    }

    /// partials[⌈rows/WORKGROUP_SIZE⌉ × 3] = for each workgroup's rows of output (and the logits) against
    /// target, rows×cols each: (Σ the rows' loss terms, the largest |output − target|, the rows right)
    pub fn measure_rows(
        partials: Range<usize>,
        output: Range<usize>,
        target: Range<usize>,
        logits: Range<usize>,
        loss: Loss,
        cols: usize,
    ) -> Result<Op> {
        expect_len("measure_rows", "target", &target, output.len())?;
        expect_len("measure_rows", "logits", &logits, output.len())?;
        let rows = whole_rows("measure_rows", "rows", &output, cols)?;
        expect_len("measure_rows", "partials", &partials, 3 * groups(rows))?;
        let mut op = Op::rows(
            Kernel::MeasureRows,
            [&partials, &output, &target],
            rows,
            cols,
        )?;
        op.args.c = word(Kernel::MeasureRows, logits.start)?;
        op.args.loss = loss_code(loss);
        Ok(op)
    }

    /// sums[⌈n/WORKGROUP_SIZE⌉ × 3] = the tallies[n × 3] of `measure_rows` combined a workgroup at a time:
    /// loss terms and rows right added, errors by their largest.
    pub fn measure_sum(sums: Range<usize>, tallies: Range<usize>) -> Result<Op> {
        let n = tallies.len() / 3;
        expect_len("measure_sum", "tallies (3 a row)", &tallies, 3 * n)?;
        expect_len("measure_sum", "sums", &sums, 3 * groups(n))?;
        Op::rows(Kernel::MeasureSum, [&sums, &tallies, &EMPTY], n, 1)
    }

    /// rows[len] = the rows at positions cursor, cursor + 1, ... of the order that `seed` gives epoch `epoch`
    /// over `total_rows` rows, as f32; `cursor` and `epoch` are counters in the arena.
    pub fn shuffled_rows(rows: Range<usize>, order: RowOrder) -> Result<Op> {
        if rows.len() > order.rows {
            return Err(Error::ShapeMismatch {
                op: "shuffled_rows",
                expected: format!("at most {} rows (the data set's)", order.rows),
                got: format!("{} rows", rows.len()),
            });
        }
        let kernel = Kernel::ShuffledRows;
        let epoch = order.epoch..order.epoch + 1;
        let mut op = Op::rows(kernel, [&rows, &EMPTY, &epoch], rows.len(), 1)?;
        op.args.c = word(kernel, order.cursor)?;
        op.args.data_rows = word(kernel, order.rows)?;
        (op.args.seed_lo, op.args.seed_hi) = (order.seed as u32, (order.seed >> 32) as u32);
        Ok(op)
    }

    /// out[rows×cols] = the rows of src that order[rows] names (row numbers as f32, from `shuffled_rows`)
    pub fn gather_rows(
        out: Range<usize>,
        src: Range<usize>,
        order: Range<usize>,
        cols: usize,
    ) -> Result<Op> {
        expect_len("gather_rows", "out (rows×cols)", &out, order.len() * cols)?;
        whole_rows("gather_rows", "source rows", &src, cols)?;
        Op::rows(Kernel::GatherRows, [&out, &src, &order], order.len(), cols)
    }

    /// The epoch's end: epoch += 1, cursor = 0, and `factor` = the schedule's factor for the new epoch.
    pub fn next_epoch(order: RowOrder, schedule: Schedule, factor: usize) -> Result<Op> {
        let (epoch, cursor) = (order.epoch..order.epoch + 1, order.cursor..order.cursor + 1);
        let factor = factor..factor + 1;
        let mut op = Op::rows(Kernel::NextEpoch, [&epoch, &cursor, &factor], 1, 1)?;
        let (code, period, parameter) = schedule_code(schedule);
        (op.args.schedule, op.args.period) = (code, period);
        op.args.schedule_parameter = parameter;
        Ok(op)
    }

    /// velocity = μ·velocity + grads; params −= lr·f · velocity, where f is the schedule's factor, which the
    /// arena holds at `factor`
    pub fn sgd_update(
        params: Range<usize>,
        grads: Range<usize>,
        velocity: Range<usize>,
        lr: f32,
        factor: usize,
        momentum: f32,
    ) -> Result<Op> {
        expect_len("sgd_update", "grads", &grads, params.len())?;
        expect_len("sgd_update", "velocity", &velocity, params.len())?;
        let mut op = Op::elementwise(Kernel::SgdUpdate, [&params, &grads, &velocity])?;
        op.args.d = word(Kernel::SgdUpdate, factor)?;
        (op.args.lr, op.args.momentum) = (lr, momentum);
        Ok(op)
    }

    /// One AdamW step; `moments` holds m then v, `step` the step count and its bias corrections, which
    /// [`Op::adam_step`] moves on; the rate is lr·f as in [`Op::sgd_update`].
    pub fn adam_update(
        params: Range<usize>,
        grads: Range<usize>,
        moments: Range<usize>,
        step: usize,
        lr: f32,
        factor: usize,
        weight_decay: f32,
    ) -> Result<Op> {
        expect_len("adam_update", "grads", &grads, params.len())?;
        expect_len(
            "adam_update",
            "moments (m and v)",
            &moments,
            2 * params.len(),
        )?;
        let mut op = Op::elementwise(Kernel::AdamUpdate, [&params, &grads, &moments])?;
        op.args.c = word(Kernel::AdamUpdate, step)?;
        op.args.d = word(Kernel::AdamUpdate, factor)?;
        (op.args.lr, op.args.weight_decay) = (lr, weight_decay);
        (op.args.beta1, op.args.beta2, op.args.epsilon) = (
            Optimizer::ADAM_BETA1,
            Optimizer::ADAM_BETA2,
            Optimizer::ADAM_EPSILON,
        );
        Ok(op)
    }

    /// Adam's step count t at `step` += 1, and the bias corrections 1 − β1^t and 1 − β2^t after it: three
    /// values, computed once a step for every parameter's update.
    pub fn adam_step(step: usize) -> Result<Op> {
        let mut op = Op::rows(Kernel::AdamStep, [&(step..step + 3), &EMPTY, &EMPTY], 1, 1)?;
        (op.args.beta1, op.args.beta2) = (Optimizer::ADAM_BETA1, Optimizer::ADAM_BETA2);
        Ok(op)
    }

    /// counter += amount
    pub fn advance_counter(counter: usize, amount: f32) -> Result<Op> {
        let counter = counter..counter + 1;
        let mut op = Op::rows(Kernel::AdvanceCounter, [&counter, &EMPTY, &EMPTY], 1, 1)?;
        op.args.amount = amount;
        Ok(op)
    }

    /// `kernel` over `len` elements, one thread each: out, a, b their offsets (EMPTY where unused).
    fn elementwise(kernel: Kernel, operands: [&Range<usize>; 3]) -> Result<Op> {
        Op::rows(kernel, operands, 1, operands[0].len())
    }

    /// `kernel` over a rows×cols matrix: out, a, b its operands' offsets (EMPTY where unused).
    fn rows(
        kernel: Kernel,
        [out, a, b]: [&Range<usize>; 3],
        rows: usize,
        cols: usize,
    ) -> Result<Op> {
        let w = |x| word(kernel, x);
        let args = Args {
            out: w(out.start)?,
            a: w(a.start)?,
            b: w(b.start)?,
            rows: w(rows)?,
            cols: w(cols)?,
            ..Args::default()
        };
        Ok(Op { kernel, args })
    }

    /// The workgroup grid, with at most `per_dimension` workgroups a dimension (the device's
    /// `max_compute_workgroups_per_dimension`): one workgroup per output tile or block for matmul, one
    /// thread per row for softmax_forward and measure_rows and per column for bias_backward, one per element
    /// otherwise.
    pub fn workgroups(&self, per_dimension: u32) -> Result<[u32; 3]> {
        let Args { rows, cols, .. } = self.args;
        // The shaders index elements in u32; rows × cols can pass it even where each fits.
        let elements = u64::from(rows) * u64::from(cols);
        if elements > u64::from(u32::MAX) {
            return Err(Error::TooLarge {
                what: format!("{} over {rows}×{cols}", self.kernel.entry_point()),
                needed: elements,
                limit: u64::from(u32::MAX),
                unit: "elements (the shaders count them in u32)",
                remedy: "use fewer rows or smaller layers (--layers)",
            });
        }
        // A matmul's blocks of rows spill from y into z (`row_block` in shaders/matmul.wgsl), others' long
        // grids from x into y.
        let matmul = |block: u32| {
            let [y, z] = spill(rows.div_ceil(block), per_dimension);
            [cols.div_ceil(block), y, z]
        };
        let flat = |workgroups: u32| {
            let [x, y] = spill(workgroups, per_dimension);
            [x, y, 1]
        };
        let grid = match self.kernel {
            Kernel::Matmul => matmul(MATMUL_TILE),
            Kernel::MatmulBlocked | Kernel::MatmulRegisters => matmul(MATMUL_BLOCK),
            // The slices of k multiply the spilled row blocks in z (`matmul_fused` takes them apart).
            Kernel::MatmulFused(variant) if variant.along_inner() => {
                let [_, y, z] = matmul(MATMUL_BLOCK);
                [cols.div_ceil(MATMUL_NT_COLUMNS), y, z]
            }
            Kernel::MatmulFused(_) => {
                let [x, y, z] = matmul(MATMUL_BLOCK);
                let slices = self.args.inner.div_ceil(self.args.depth.max(1)).max(1);
                [x, y, z.saturating_mul(slices)]
            }
            Kernel::BiasBackward => flat(cols.div_ceil(WORKGROUP_SIZE)),
            Kernel::BiasBackwardTree => flat(cols.div_ceil(BIAS_TREE_COLUMNS)),
            Kernel::SoftmaxForward | Kernel::MeasureRows => flat(rows.div_ceil(WORKGROUP_SIZE)),
            _ => flat((rows * cols).div_ceil(WORKGROUP_SIZE)),
        };
        if let Some(&largest) = grid.iter().find(|&&n| n > per_dimension) {
            return Err(Error::TooLarge {
                what: format!("{} over {rows}×{cols}", self.kernel.entry_point()),
                needed: u64::from(largest),
                limit: u64::from(per_dimension),
                unit: "workgroups in one dimension",
                remedy: "use fewer rows or smaller layers (--layers)",
            });
        }
        Ok(grid)
    }
}

/// Where the device finds an epoch's row order: the seed, the data set's rows, and the arena slots of the
/// epoch counter and of the cursor (the next position to train).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RowOrder {
    pub seed: u64,
    pub rows: usize,
    pub epoch: usize,
    pub cursor: usize,
}

/// For an operand a kernel does not read.
const EMPTY: Range<usize> = 0..0;

/// An offset or size as the shaders take it; an arena checked against the device limits always fits.
fn word(kernel: Kernel, x: usize) -> Result<u32> {
    u32::try_from(x).map_err(|_| Error::TooLarge {
        what: format!("an argument of {}", kernel.entry_point()),
        needed: x as u64,
        limit: u64::from(u32::MAX),
        unit: "arena elements (offsets are u32)",
        remedy: "use fewer rows or smaller layers (--layers)",
    })
}

/// Folds a long one-dimensional grid into x·y workgroups, at most `per_dimension` along x (see
/// `thread_index` in shaders/functions.wgsl); y may still be too long, which [`Op::workgroups`] checks.
pub(crate) fn spill(workgroups: u32, per_dimension: u32) -> [u32; 2] {
    if workgroups <= per_dimension {
        [workgroups, 1]
    } else {
        [per_dimension, workgroups.div_ceil(per_dimension)]
    }
}

/// How many workgroups of WORKGROUP_SIZE threads `n` threads fill: the tallies a measuring pass leaves.
pub fn groups(n: usize) -> usize {
    n.div_ceil(WORKGROUP_SIZE as usize)
}

/// (slices, steps a slice) of an inner dimension `k` split into at most `slices` equal slices, the last one
/// shorter: as many steps as `matmul_fused` reads from `d`.
fn split(k: usize, slices: usize) -> (usize, usize) {
    let depth = k.div_ceil(slices.max(1)).max(1);
    (k.div_ceil(depth).max(1), depth)
}

fn expect_matmul(
    c: &Range<usize>,
    a: &Range<usize>,
    b: &Range<usize>,
    shape: MatmulShape,
) -> Result<()> {
    let MatmulShape { m, k, n, .. } = shape;
    expect_len("matmul", "c (m×n)", c, m * n)?;
    expect_len("matmul", "a (m×k)", a, m * k)?;
    expect_len("matmul", "b (k×n)", b, k * n)
}

/// How many rows of `cols` elements `range` holds, which must be whole ones.
fn whole_rows(op: &'static str, what: &str, range: &Range<usize>, cols: usize) -> Result<usize> {
    if cols == 0 || !range.len().is_multiple_of(cols) {
        return Err(Error::ShapeMismatch {
            op,
            expected: format!("whole {what} of {cols} elements"),
            got: format!("{} elements", range.len()),
        });
    }
    Ok(range.len() / cols)
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
