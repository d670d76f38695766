// The bias of a linear layer: added to every row going forward, summed over the rows going back.

// z[rows×cols] += bias[cols], every row; out = z, a = bias.
@compute @workgroup_size(WORKGROUP_SIZE)
fn bias_add(@builtin(workgroup_id) workgroup: vec3<u32>, @builtin(local_invocation_index) local: u32,
            @builtin(num_workgroups) workgroups: vec3<u32>) {
    let i = thread_index(workgroup, local, workgroups);
    if i < args.rows * args.cols {
        arena[args.out + i] += arena[args.a + i % args.cols];
    }
}

// dbias[cols] = Σ_rows dz[rows×cols]; out = dbias, a = dz. One thread per column sums its rows in order.
@compute @workgroup_size(WORKGROUP_SIZE)
fn bias_backward(@builtin(workgroup_id) workgroup: vec3<u32>, @builtin(local_invocation_index) local: u32,
                 @builtin(num_workgroups) workgroups: vec3<u32>) {
    let col = thread_index(workgroup, local, workgroups);
    if col < args.cols {
        var sum = 0.0;
        for (var row = 0u; row < args.rows; row++) {
            sum += arena[args.a + row * args.cols + col];
        }
        arena[args.out + col] = sum;
    }
}
