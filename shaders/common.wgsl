// Shared by every kernel: prepended to each shader file by src/gpu/kernel.rs.
//
// All tensors live in one storage buffer, the arena; each dispatch reads its offsets and sizes from `args`,
// one slot of a uniform buffer selected by a dynamic offset.

// What each field is for each kernel: the table on `Args` in src/gpu/kernel.rs.
struct Args {
    // Arena offsets, in f32 elements, of the kernel's operands (which each is: `Args` in src/gpu/kernel.rs)
    out: u32,
    a: u32,
    b: u32,
    c: u32,
    d: u32,
    // Sizes
    rows: u32,
    cols: u32,
    inner: u32,
    depth: u32,       // matmul_fused: the steps of k a slice sums
    data_rows: u32,   // shuffled_rows: the rows of the data set
    period: u32,      // next_epoch: the schedule's period in epochs
    // Codes
    transposes: u32,  // matmul: bit 0 for a, bit 1 for b
    activation: u32,
    loss: u32,
    schedule: u32,
    // Numbers
    loss_scale: f32,
    lr: f32,
    momentum: f32,
    weight_decay: f32,
    beta1: f32,
    beta2: f32,
    epsilon: f32,
    amount: f32,             // advance_counter
    schedule_parameter: f32, // next_epoch
    seed_lo: u32,            // shuffled_rows: the seed's two halves
    seed_hi: u32,
}

@group(0) @binding(0) var<storage, read_write> arena: array<f32>;
@group(0) @binding(1) var<uniform> args: Args;
