// Shared by every kernel: prepended to each shader file by src/gpu/kernel.rs.
//
// All tensors live in one storage buffer, the arena; each dispatch reads its offsets and sizes from `args`,
// one slot of a uniform buffer selected by a dynamic offset.

struct Args {
    out: u32,      // arena offsets, in f32 elements
    a: u32,
    b: u32,
    c: u32,        // matmul_fused: its epilogue's operand
    d: u32,        // matmul_fused: not an offset but the steps of k a slice sums (k for one slice)
    rows: u32,
    cols: u32,
    inner: u32,    // matmul: the shared dimension k; next_epoch: the schedule's period
    flags: u32,    // matmul: bit 0 reads `a` transposed, bit 1 reads `b` transposed; activations: which one;
                   // next_epoch: the schedule's kind
    scale: f32,    // optimizers: the base learning rate; loss_backward: the gradient's factor; next_epoch: the
                   // schedule's parameter
    decay: f32,    // sgd_update: the momentum; adam_update: the weight decay
    beta1: f32,    // adam_update
    beta2: f32,
    epsilon: f32,
    seed_lo: u32,  // gather_rows: the two halves of the order's seed
    seed_hi: u32,
}

@group(0) @binding(0) var<storage, read_write> arena: array<f32>;
@group(0) @binding(1) var<uniform> args: Args;
