// The fused engine's subgroup tier: the private tier (shaders/fused_private.wgsl, whose memory, measuring and
// evaluating it uses) with LANES invocations of one subgroup to a network. Each lane holds the whole network
// and adds one row of every batch; the generated `update` sums the lanes' gradients, lane 0 first, and
// every lane takes the same step. A batch of up to LANES rows thus costs the time of one row, and adds up in
// the reference's row order.

// Trains network number `workgroup` for `job.epochs` epochs, a workgroup of LANES lanes a network.
@compute @workgroup_size(LANES)
fn fused_train_lanes(@builtin(workgroup_id) workgroup: vec3<u32>,
                     @builtin(num_workgroups) workgroups: vec3<u32>,
                     @builtin(subgroup_invocation_id) lane: u32) {
    let network = workgroup_index(workgroup, workgroups);
    if network >= job.networks {
        return;
    }
    lane_row = lane;
    load_params(network);
    load_state(network);
    train_epochs(runs[network]);
    if lane == 0u {
        store(network);
    }
}
