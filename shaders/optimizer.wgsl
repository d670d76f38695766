// Parameter updates over len = rows × cols parameters, all layers at once.

// params[len] −= lr · grads[len]; out = params, a = grads, scale = lr.
@compute @workgroup_size(WORKGROUP_SIZE)
fn sgd_update(@builtin(workgroup_id) workgroup: vec3<u32>, @builtin(local_invocation_index) local: u32,
              @builtin(num_workgroups) workgroups: vec3<u32>) {
    let i = thread_index(workgroup, local, workgroups);
    if i < args.rows * args.cols {
        arena[args.out + i] -= args.scale * arena[args.a + i];
    }
}
