// Activations and their derivatives, element by element over len = rows × cols.

// a[len] = σ(z[len]) = 1 / (1 + e^(−z)); out = a, a = z.
@compute @workgroup_size(WORKGROUP_SIZE)
fn sigmoid_forward(@builtin(workgroup_id) workgroup: vec3<u32>, @builtin(local_invocation_index) local: u32,
                   @builtin(num_workgroups) workgroups: vec3<u32>) {
    let i = thread_index(workgroup, local, workgroups);
    if i < args.rows * args.cols {
        arena[args.out + i] = 1.0 / (1.0 + exp(-arena[args.a + i]));
    }
}

// dz[len] = da[len] ⊙ a ⊙ (1 − a), with a the sigmoid's output; out = dz, a = da, b = a.
@compute @workgroup_size(WORKGROUP_SIZE)
fn sigmoid_backward(@builtin(workgroup_id) workgroup: vec3<u32>, @builtin(local_invocation_index) local: u32,
                    @builtin(num_workgroups) workgroups: vec3<u32>) {
    let i = thread_index(workgroup, local, workgroups);
    if i < args.rows * args.cols {
        let y = arena[args.b + i];
        arena[args.out + i] = arena[args.a + i] * y * (1.0 - y);
    }
}
