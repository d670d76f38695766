// Loss gradients with respect to the network's output, element by element over len = rows × cols.

// doutput[len] = output − target, the gradient of ½·Σ(target − output)²; out = doutput, a = output, b = target.
@compute @workgroup_size(WORKGROUP_SIZE)
fn sse_backward(@builtin(workgroup_id) workgroup: vec3<u32>, @builtin(local_invocation_index) local: u32,
                @builtin(num_workgroups) workgroups: vec3<u32>) {
    let i = thread_index(workgroup, local, workgroups);
    if i < args.rows * args.cols {
        arena[args.out + i] = arena[args.a + i] - arena[args.b + i];
    }
}
