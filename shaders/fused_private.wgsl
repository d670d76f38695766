// The fused engine's private tier: one invocation trains one network, held in its private memory (in
// registers where the device has enough), so thousands of invocations train thousands of networks side by
// side. Besides the functions every tier shares (shaders/fused.wgsl), src/gpu/generate.rs writes this tier's
// `load_params`, `load_state`, `store` and `update` unrolled, every index a constant.

var<private> params: array<f32, PARAMS>;
var<private> grads: array<f32, PARAMS>;
var<private> state: array<f32, STATE>;
// Every layer's output for the current row, the input first.
var<private> units: array<f32, UNITS>;
var<private> logits: array<f32, OUTPUTS>;
// dZ of the layer being differentiated, and the layer below's while it is computed.
var<private> delta: array<f32, WIDEST>;
var<private> carry: array<f32, WIDEST>;

fn zero_grads() {
    grads = array<f32, PARAMS>();
}

// Trains network number `thread_index` for `job.epochs` epochs.
@compute @workgroup_size(WORKGROUP_SIZE)
fn fused_train(@builtin(workgroup_id) workgroup: vec3<u32>, @builtin(local_invocation_index) local: u32,
               @builtin(num_workgroups) workgroups: vec3<u32>) {
    let network = thread_index(workgroup, local, workgroups);
    if network >= job.networks {
        return;
    }
    load_params(network);
    load_state(network);
    train_epochs(runs[network]);
    store(network);
}

// The metrics of network number `thread_index` over rows `job.first_row..job.end_row`.
@compute @workgroup_size(WORKGROUP_SIZE)
fn fused_measure(@builtin(workgroup_id) workgroup: vec3<u32>, @builtin(local_invocation_index) local: u32,
                 @builtin(num_workgroups) workgroups: vec3<u32>) {
    let network = thread_index(workgroup, local, workgroups);
    if network >= job.networks {
        return;
    }
    load_params(network);
    var sum = read_tally(network);
    for (var row = job.first_row; row < job.end_row; row++) {
        forward(row);
        sum = tally(sum, measure_row(row));
    }
    write_tally(network, sum);
}

// The outputs and logits of network `job.evaluated` on row number `thread_index`.
@compute @workgroup_size(WORKGROUP_SIZE)
fn fused_evaluate(@builtin(workgroup_id) workgroup: vec3<u32>, @builtin(local_invocation_index) local: u32,
                  @builtin(num_workgroups) workgroups: vec3<u32>) {
    let row = thread_index(workgroup, local, workgroups);
    if row >= job.rows {
        return;
    }
    load_params(job.evaluated);
    forward(row);
    write_outputs(row);
}
