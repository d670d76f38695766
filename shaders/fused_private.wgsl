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

// Trains network number `thread_index` for `job.epochs` epochs, one optimizer step per batch, rows in the
// epoch's order.
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
    let batches = (job.rows + job.batch - 1u) / job.batch;
    for (var e = 0u; e < job.epochs; e++) {
        let epoch = job.first_epoch + e;
        for (var b = 0u; b < batches; b++) {
            let start = b * job.batch;
            let end = min(start + job.batch, job.rows);
            grads = array<f32, PARAMS>();
            let scale = gradient_scale(end - start);
            for (var position = start; position < end; position++) {
                let row = row_at(run, epoch, position);
                forward(row);
                backward(row, scale);
            }
            update(run.lr, epoch * batches + b + 1u);
        }
    }
    store(network);
}

// The metrics of network number `thread_index` over every row.
@compute @workgroup_size(WORKGROUP_SIZE)
fn fused_measure(@builtin(workgroup_id) workgroup: vec3<u32>, @builtin(local_invocation_index) local: u32,
                 @builtin(num_workgroups) workgroups: vec3<u32>) {
    let network = thread_index(workgroup, local, workgroups);
    if network >= job.networks {
        return;
    }
    load_params(network);
    var sum = Tally(0.0, 0.0, 0u);
    for (var row = 0u; row < job.rows; row++) {
        forward(row);
        sum = tally(sum, measure_row(row));
    }
    write_metrics(network, sum);
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
