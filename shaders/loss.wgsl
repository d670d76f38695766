// The gradient of every loss with respect to the network's output, element by element over len = rows × cols.

// d[len] = scale · (output − target); out = d, a = output, b = target. For sse and mse this is dO; for bce on a
// sigmoid and ce on a softmax it is already dZ, which is why those two need no activation_backward.
@compute @workgroup_size(WORKGROUP_SIZE)
fn loss_backward(@builtin(workgroup_id) workgroup: vec3<u32>, @builtin(local_invocation_index) local: u32,
                 @builtin(num_workgroups) workgroups: vec3<u32>) {
    let i = thread_index(workgroup, local, workgroups);
    if i < args.rows * args.cols {
        arena[args.out + i] = args.scale * (arena[args.a + i] - arena[args.b + i]);
    }
}
