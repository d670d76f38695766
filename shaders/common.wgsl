// Shared by every kernel: prepended to each shader file by src/gpu/kernel.rs.
//
// All tensors live in one storage buffer, the arena; each dispatch reads its offsets and sizes from `args`,
// one slot of a uniform buffer selected by a dynamic offset.

// What each field is for each kernel: the table on `Args` in src/gpu/kernel.rs.
struct Args {
    out: u32,      // arena offsets, in f32 elements
    a: u32,
    b: u32,
    c: u32,
    d: u32,
    rows: u32,     // sizes
    cols: u32,
    inner: u32,
    flags: u32,    // a code: the transposes, the activation, the loss or the schedule
    scale: f32,    // numbers
    decay: f32,
    beta1: f32,
    beta2: f32,
    epsilon: f32,
    seed_lo: u32,
    seed_hi: u32,
}

@group(0) @binding(0) var<storage, read_write> arena: array<f32>;
@group(0) @binding(1) var<uniform> args: Args;
