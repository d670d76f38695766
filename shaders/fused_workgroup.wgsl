// The fused engine's workgroup tier: one workgroup trains one network, held in workgroup memory, for networks
// too large for one invocation's private memory. Thread `lane` computes unit `lane` of every layer (the
// generated `forward` and `backward` say so), with a barrier between layers; the loops over parameters are
// spread over the threads.

var<workgroup> params: array<f32, PARAMS>;
var<workgroup> grads: array<f32, PARAMS>;
var<workgroup> state: array<f32, STATE>;
// Every layer's output for the current row, the input first.
var<workgroup> units: array<f32, UNITS>;
var<workgroup> logits: array<f32, OUTPUTS>;
// dZ of the layer being differentiated, and the layer below's while it is computed.
var<workgroup> delta: array<f32, WIDEST>;
var<workgroup> carry: array<f32, WIDEST>;
// This invocation's unit in every layer, and its share of the parameters: lane, lane + THREADS, ...
var<private> lane: u32;

// Every access to shared memory below is fenced on both sides, so that no thread reads what another is
// still writing.
fn load_params(network: u32) {
    workgroupBarrier();
    for (var k = lane; k < PARAMS; k += THREADS) {
        params[k] = weights[weight_at(network, k)];
    }
    workgroupBarrier();
}

fn load_state(network: u32) {
    workgroupBarrier();
    for (var k = lane; k < STATE; k += THREADS) {
        state[k] = weights[weight_at(network, PARAMS + k)];
    }
    workgroupBarrier();
}

fn store(network: u32) {
    workgroupBarrier();
    for (var k = lane; k < PARAMS; k += THREADS) {
        weights[weight_at(network, k)] = params[k];
    }
    for (var k = lane; k < STATE; k += THREADS) {
        weights[weight_at(network, PARAMS + k)] = state[k];
    }
}

fn zero_grads() {
    workgroupBarrier();
    for (var k = lane; k < PARAMS; k += THREADS) {
        grads[k] = 0.0;
    }
    workgroupBarrier();
}

fn update(lr: f32, step: u32) {
    let correction = corrections(step);
    workgroupBarrier();
    for (var k = lane; k < PARAMS; k += THREADS) {
        update_param(k, grads[k], lr, correction);
    }
    workgroupBarrier();
}

// Trains network number `workgroup_index` for `job.epochs` epochs, as the private tier does.
@compute @workgroup_size(THREADS)
fn fused_train(@builtin(workgroup_id) workgroup: vec3<u32>, @builtin(local_invocation_index) local: u32,
               @builtin(num_workgroups) workgroups: vec3<u32>) {
    lane = local;
    let network = workgroup_index(workgroup, workgroups);
    if network >= job.networks {
        return;
    }
    load_params(network);
    load_state(network);
    train_epochs(runs[network]);
    store(network);
}

// The metrics of network number `workgroup_index` over rows `job.first_row..job.end_row`, tallied by its
// first thread.
@compute @workgroup_size(THREADS)
fn fused_measure(@builtin(workgroup_id) workgroup: vec3<u32>, @builtin(local_invocation_index) local: u32,
                 @builtin(num_workgroups) workgroups: vec3<u32>) {
    lane = local;
    let network = workgroup_index(workgroup, workgroups);
    if network >= job.networks {
        return;
    }
    load_params(network);
    var sum = read_tally(network);
    for (var row = job.first_row; row < job.end_row; row++) {
        forward(row);
        if lane == 0u {
            sum = tally(sum, measure_row(row));
        }
    }
    if lane == 0u {
        write_tally(network, sum);
    }
}

// The outputs and logits of network `job.evaluated` on row number `workgroup_index`.
@compute @workgroup_size(THREADS)
fn fused_evaluate(@builtin(workgroup_id) workgroup: vec3<u32>, @builtin(local_invocation_index) local: u32,
                  @builtin(num_workgroups) workgroups: vec3<u32>) {
    lane = local;
    let row = workgroup_index(workgroup, workgroups);
    if row >= job.rows {
        return;
    }
    load_params(job.evaluated);
    forward(row);
    if lane == 0u {
        write_outputs(row);
    }
}
