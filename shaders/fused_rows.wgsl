// The fused engine's rows tier: the private tier (shaders/fused_private.wgsl, whose memory, measuring and
// evaluating it uses) with THREADS threads of one workgroup to a network. Each thread holds the whole network
// and adds every THREADS-th row of each batch from its own; the generated `update` sums the threads'
// gradients through workgroup memory in thread order (`sum_grads`), and every thread takes the same step
// from the same sums, so the copies stay equal. A batch of THREADS rows thus costs the time of one row, and
// no subgroup operation is needed: it runs wherever a workgroup does.

// This thread's number in the workgroup.
var<private> lane: u32;
// A round of the gradients of every thread, PARTIALS / THREADS parameters each: thread t's gradient of the
// round's parameter c at c·THREADS + t.
var<workgroup> partials: array<f32, PARTIALS>;
// The gradients summed over the threads.
var<workgroup> summed: array<f32, PARAMS>;

// summed[first + c] for this thread's share of the round's `count` parameters (c = lane, lane + THREADS, ...),
// each a sum over the threads in order.
fn sum_partials(first: u32, count: u32) {
    for (var c = lane; c < count; c += THREADS) {
        var sum = 0.0;
        for (var t = 0u; t < THREADS; t++) {
            sum += partials[c * THREADS + t];
        }
        summed[first + c] = sum;
    }
}

// Trains network number `workgroup_index` for `job.epochs` epochs, a workgroup of THREADS threads a network.
@compute @workgroup_size(THREADS)
fn fused_train_rows(@builtin(workgroup_id) workgroup: vec3<u32>, @builtin(local_invocation_index) local: u32,
                    @builtin(num_workgroups) workgroups: vec3<u32>) {
    let network = workgroup_index(workgroup, workgroups);
    if network >= job.networks {
        return;
    }
    lane = local;
    first_row = local;
    load_params(network);
    load_state(network);
    train_epochs(runs[network]);
    if lane == 0u {
        store(network);
    }
}
