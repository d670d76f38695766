// The fused engine: a whole network's training, many epochs of it, in one dispatch, so that a dispatch's
// fixed cost is paid once per log interval instead of once per op per step. This file is what every tier
// shares; shaders/fused_private.wgsl trains a network in one invocation's private memory (thousands of them
// side by side), shaders/fused_rows.wgsl the same with a workgroup's threads sharing the rows, and
// shaders/fused_workgroup.wgsl a larger one in a workgroup's memory, a unit a thread.
//
// src/gpu/generate.rs writes, for one network, the constants (INPUTS, OUTPUTS, PARAMS, STATE, UNITS, WIDEST,
// LOSS, THREADS, ROW_SHARES, FIXED_ROWS, PARTIALS, SHUFFLES, the optimizer's and the schedule's) and the functions the
// tiers call: `forward(row)`, `backward(row, scale)` and `measure_row(row)`. Small networks get them
// unrolled, every index a constant (or, in the workgroup tier, the thread's unit), so that the only loops
// left run over epochs, batches and rows; larger ones keep their loops over units, so that they compile fast.
//
// The math is the CPU reference's, one row at a time: forward, then backward adding each row's share of
// dW = Aᵀ·dZ and db = Σ dZ into the gradients in row order, which is the order the reference's matmul sums
// in; then one optimizer step per batch.

const SGD: u32 = 0u;
const ADAM: u32 = 1u;

// The losses' numbers (SSE, MSE, BCE, CE) are in shaders/functions.wgsl.

// What one dispatch does: `epochs` epochs from `first_epoch` on (fused_train), or every network's metrics over
// rows `first_row..end_row`, added to those of the rows before (fused_measure), or the outputs of network
// `evaluated` on every row (fused_evaluate).
struct Job {
    networks: u32,
    rows: u32,
    batch: u32,
    first_epoch: u32,
    epochs: u32,
    evaluated: u32,
    first_row: u32,
    end_row: u32,
}

// A network's own settings: its base learning rate and the seed of its row order.
struct Run {
    lr: f32,
    seed_lo: u32,
    seed_hi: u32,
    unused: u32,
}

// inputs[rows×INPUTS], then targets[rows×OUTPUTS]
@group(0) @binding(0) var<storage, read> data: array<f32>;
// parameters[PARAMS], then optimizer state[STATE], interleaved: value k of network n at k·networks + n, so
// that neighbouring invocations read neighbouring words.
@group(0) @binding(1) var<storage, read_write> weights: array<f32>;
@group(0) @binding(2) var<storage, read> runs: array<Run>;
// metrics[networks × 3] (loss, largest |output − target|, rows classified right as u32 bits), then outputs[rows×OUTPUTS]
// and logits[rows×OUTPUTS] of the evaluated network.
@group(0) @binding(3) var<storage, read_write> results: array<f32>;
@group(0) @binding(4) var<uniform> job: Job;

fn input_of(row: u32, i: u32) -> f32 {
    return data[row * INPUTS + i];
}

fn target_of(row: u32, j: u32) -> f32 {
    return data[job.rows * INPUTS + row * OUTPUTS + j];
}

// The factor in d = factor · (output − target) for a batch of `rows` rows; `Loss::gradient_scale` in Rust.
fn gradient_scale(rows: u32) -> f32 {
    switch LOSS {
        case MSE: {
            return 2.0 / f32(rows * OUTPUTS);
        }
        case BCE, CE: {
            return 1.0 / f32(rows);
        }
        default: {
            return 1.0;
        }
    }
}

// The row that `position` of `epoch` visits: the run's shuffled order with mini-batches, in place otherwise.
fn row_at(run: Run, epoch: u32, position: u32) -> u32 {
    if SHUFFLES {
        return shuffled_row(run.seed_lo, run.seed_hi, epoch, job.rows, position);
    }
    return position;
}

// The first row of each batch that this invocation adds to its gradients; it adds every ROW_SHARES-th row
// from there. In the rows tier ROW_SHARES threads share a batch, and `update` sums their gradients.
var<private> first_row: u32;

// Trains the loaded network `job.epochs` epochs from `job.first_epoch` on, one optimizer step per batch, rows
// in the epoch's order; the tier's `zero_grads`, `forward`, `backward` and `update` do the work.
fn train_epochs(run: Run) {
    let batches = (job.rows + job.batch - 1u) / job.batch;
    for (var e = 0u; e < job.epochs; e++) {
        let epoch = job.first_epoch + e;
        let lr = scheduled_rate(run.lr, epoch);
        // Only mini-batches shuffle. A full batch takes no loop: on llvmpipe a loop's iteration costs more
        // than a tiny network's whole step.
        if SHUFFLES {
            for (var b = 0u; b < batches; b++) {
                train_batch(run, lr, epoch, b, batches);
            }
        } else {
            train_batch(run, lr, epoch, 0u, 1u);
        }
    }
}

// The learning rate of `epoch` for a run whose base rate is `lr`; a constant schedule compiles to `lr` itself.
fn scheduled_rate(lr: f32, epoch: u32) -> f32 {
    if SCHEDULE == CONSTANT_SCHEDULE {
        return lr;
    }
    return lr * schedule_factor(SCHEDULE, SCHEDULE_PERIOD, SCHEDULE_PARAMETER, epoch);
}

// Step `b` of `batches` of `epoch` at learning rate `lr`: the gradient of its rows, then the optimizer's
// update.
fn train_batch(run: Run, lr: f32, epoch: u32, b: u32, batches: u32) {
    let start = b * job.batch;
    let end = min(start + job.batch, job.rows);
    zero_grads();
    let scale = gradient_scale(end - start);
    if FIXED_ROWS > 0u {
        // A constant bound: the compiler may write the loop out (llvmpipe's loop costs more than XOR's row).
        for (var position = 0u; position < FIXED_ROWS; position++) {
            add_row(run, epoch, position, scale);
        }
    } else {
        for (var position = start + first_row; position < end; position += ROW_SHARES) {
            add_row(run, epoch, position, scale);
        }
    }
    update(lr, epoch * batches + b + 1u);
}

// Adds the gradient of the row at `position` of `epoch`'s order.
fn add_row(run: Run, epoch: u32, position: u32, scale: f32) {
    let row = row_at(run, epoch, position);
    forward(row);
    backward(row, scale);
}

// Adam's bias corrections (1 − β1^t, 1 − β2^t) for step t, counted from 1.
fn corrections(step: u32) -> vec2<f32> {
    let t = f32(step);
    return vec2<f32>(1.0 - pow(BETA1, t), 1.0 - pow(BETA2, t));
}

// One parameter's optimizer step with its gradient `g`, PyTorch's formulas as in shaders/optimizer.wgsl.
// Called with a constant `k` in the unrolled private tier, so that everything stays in registers.
fn update_param(k: u32, g: f32, lr: f32, correction: vec2<f32>) {
    if OPTIMIZER == SGD {
        let v = MOMENTUM * state[k] + g;
        state[k] = v;
        params[k] -= lr * v;
    } else {
        let p = params[k] - lr * WEIGHT_DECAY * params[k];
        let m = BETA1 * state[k] + (1.0 - BETA1) * g;
        let v = BETA2 * state[PARAMS + k] + (1.0 - BETA2) * g * g;
        state[k] = m;
        state[PARAMS + k] = v;
        params[k] = p - lr * (m / correction.x) / (sqrt(v / correction.y) + EPSILON);
    }
}

// Where a network's value k sits in `weights`.
fn weight_at(network: u32, k: u32) -> u32 {
    return k * job.networks + network;
}

// The measurements of one network over the rows so far.
struct Tally {
    loss: f32,
    worst: f32,
    correct: u32,
}

// Adds `measure_row`'s (loss term, largest error, right or not) of one row.
fn tally(sum: Tally, measured: vec3<f32>) -> Tally {
    var next = sum;
    next.loss += measured.x;
    next.worst = worse(sum.worst, measured.y);
    next.correct += u32(measured.z);
    return next;
}

// The tally of network `network` so far: none before the first measured row, else what the dispatch of the
// rows before left in `results`.
fn read_tally(network: u32) -> Tally {
    if job.first_row == 0u {
        return Tally(0.0, 0.0, 0u);
    }
    let at = 3u * network;
    return Tally(results[at], results[at + 1u], bitcast<u32>(results[at + 2u]));
}

// metrics[network] = (the loss summed over the rows so far, the worst error, the rows right); the host divides
// the sum by what the loss is a mean of.
fn write_tally(network: u32, sum: Tally) {
    let at = 3u * network;
    results[at] = sum.loss;
    results[at + 1u] = sum.worst;
    // A count as its bits: an f32 counts exactly only to 2^24.
    results[at + 2u] = bitcast<f32>(sum.correct);
}

// outputs[row] and logits[row] after `forward(row)`, after the metrics in `results`.
fn write_outputs(row: u32) {
    let outputs = 3u * job.networks;
    let logits_at = outputs + job.rows * OUTPUTS;
    for (var j = 0u; j < OUTPUTS; j++) {
        results[outputs + row * OUTPUTS + j] = units[UNITS - OUTPUTS + j];
        results[logits_at + row * OUTPUTS + j] = logits[j];
    }
}
