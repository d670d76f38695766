// The fused engine: one invocation trains one whole network for many epochs in a single dispatch, so a
// dispatch's fixed cost is paid once per log interval instead of once per op per step. Thousands of
// invocations train thousands of networks (seeds, learning rates) side by side.
//
// src/gpu/generate.rs writes, for one network, the constants (INPUTS, OUTPUTS, PARAMS, STATE, UNITS, WIDEST,
// LOSS and the optimizer's) and the straight-line functions this file calls: `forward(row)`,
// `backward(row, scale)`, `update(lr, step)`, `measure_row(row)`, and `load_params`, `load_state` and
// `store` that move a network between `weights` and private memory. Every loop over units and parameters is
// unrolled there and every index is a constant, so the network lives in registers where the device has them,
// and the only loops left run over epochs, batches and rows.
//
// The math is the CPU reference's, one row at a time: forward, then backward adding each row's share of
// dW = Aᵀ·dZ and db = Σ dZ into the gradients in row order, which is the order the reference's matmul sums
// in; then one optimizer step per batch.

const SSE: u32 = 0u;
const MSE: u32 = 1u;
const BCE: u32 = 2u;
const CE: u32 = 3u;

// What one dispatch does: `epochs` epochs from `first_epoch` on (fused_train), or the metrics of every network
// (fused_measure), or the outputs of network `evaluated` on every row (fused_evaluate).
struct Job {
    networks: u32,
    rows: u32,
    batch: u32,
    first_epoch: u32,
    epochs: u32,
    evaluated: u32,
}

// A network's own settings: its learning rate and the seed of its row order.
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
// metrics[networks × 3] (loss, largest |output − target|, rows classified right), then outputs[rows×OUTPUTS]
// and logits[rows×OUTPUTS] of the evaluated network.
@group(0) @binding(3) var<storage, read_write> results: array<f32>;
@group(0) @binding(4) var<uniform> job: Job;

// One invocation's network, in private memory.
var<private> params: array<f32, PARAMS>;
var<private> grads: array<f32, PARAMS>;
var<private> state: array<f32, STATE>;
// Every layer's output for the current row, the input first.
var<private> units: array<f32, UNITS>;
var<private> logits: array<f32, OUTPUTS>;
// dZ of the layer being differentiated, and the layer below's while it is computed.
var<private> delta: array<f32, WIDEST>;
var<private> carry: array<f32, WIDEST>;

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

// Trains network number `thread_index` for `job.epochs` epochs, one optimizer step per batch, rows in the epoch's order.
@compute @workgroup_size(WORKGROUP_SIZE)
fn fused_train(@builtin(workgroup_id) workgroup: vec3<u32>, @builtin(local_invocation_index) local: u32,
               @builtin(num_workgroups) workgroups: vec3<u32>) {
    let network = thread_index(workgroup, local, workgroups);
    if network >= job.networks {
        return;
    }
    load_params(network);
    load_state(network);
    let run = runs[network];
    let shuffles = job.batch < job.rows;
    let batches = (job.rows + job.batch - 1u) / job.batch;
    for (var e = 0u; e < job.epochs; e++) {
        let epoch = job.first_epoch + e;
        for (var b = 0u; b < batches; b++) {
            let start = b * job.batch;
            let end = min(start + job.batch, job.rows);
            grads = array<f32, PARAMS>();
            let scale = gradient_scale(end - start);
            for (var position = start; position < end; position++) {
                var row = position;
                if shuffles {
                    row = shuffled_row(run.seed_lo, run.seed_hi, epoch, job.rows, position);
                }
                forward(row);
                backward(row, scale);
            }
            update(run.lr, epoch * batches + b + 1u);
        }
    }
    store(network);
}

// metrics[network] = (loss over every row, largest |output − target|, rows classified right).
@compute @workgroup_size(WORKGROUP_SIZE)
fn fused_measure(@builtin(workgroup_id) workgroup: vec3<u32>, @builtin(local_invocation_index) local: u32,
                 @builtin(num_workgroups) workgroups: vec3<u32>) {
    let network = thread_index(workgroup, local, workgroups);
    if network >= job.networks {
        return;
    }
    load_params(network);
    var loss = 0.0;
    var worst = 0.0;
    var correct = 0u;
    for (var row = 0u; row < job.rows; row++) {
        forward(row);
        let measured = measure_row(row);
        loss += measured.x;
        // Written so that a NaN error makes the worst NaN.
        if !(measured.y <= worst) {
            worst = measured.y;
        }
        correct += u32(measured.z);
    }
    switch LOSS {
        case MSE: {
            loss /= f32(job.rows * OUTPUTS);
        }
        case BCE, CE: {
            loss /= f32(job.rows);
        }
        default: {}
    }
    results[3u * network] = loss;
    results[3u * network + 1u] = worst;
    results[3u * network + 2u] = f32(correct);
}

// outputs[row] and logits[row] of network `job.evaluated`, a row an invocation.
@compute @workgroup_size(WORKGROUP_SIZE)
fn fused_evaluate(@builtin(workgroup_id) workgroup: vec3<u32>, @builtin(local_invocation_index) local: u32,
                  @builtin(num_workgroups) workgroups: vec3<u32>) {
    let row = thread_index(workgroup, local, workgroups);
    if row >= job.rows {
        return;
    }
    load_params(job.evaluated);
    forward(row);
    let outputs = 3u * job.networks;
    let logits_at = outputs + job.rows * OUTPUTS;
    for (var j = 0u; j < OUTPUTS; j++) {
        results[outputs + row * OUTPUTS + j] = units[UNITS - OUTPUTS + j];
        results[logits_at + row * OUTPUTS + j] = logits[j];
    }
}
