// Activations and their derivatives. The element-wise ones work over len = rows × cols and are chosen by
// args.activation; `activate` and `slope` are in shaders/functions.wgsl.

// a[len] = f(z[len]); out = a, a = z, activation = f.
@compute @workgroup_size(WORKGROUP_SIZE)
fn activation_forward(@builtin(workgroup_id) workgroup: vec3<u32>, @builtin(local_invocation_index) local: u32,
                      @builtin(num_workgroups) workgroups: vec3<u32>) {
    let i = thread_index(workgroup, local, workgroups);
    if i < args.rows * args.cols {
        arena[args.out + i] = activate(arena[args.a + i], args.activation);
    }
}

// dz[len] = da[len] ⊙ f′, from the activation's output a; out = dz, a = da, b = a, activation = f.
@compute @workgroup_size(WORKGROUP_SIZE)
fn activation_backward(@builtin(workgroup_id) workgroup: vec3<u32>, @builtin(local_invocation_index) local: u32,
                       @builtin(num_workgroups) workgroups: vec3<u32>) {
    let i = thread_index(workgroup, local, workgroups);
    if i < args.rows * args.cols {
        arena[args.out + i] = arena[args.a + i] * slope(arena[args.b + i], args.activation);
    }
}

// a[rows×cols] = softmax(z) along each row, shifted by the row's maximum; out = a, a = z. A thread a row.
@compute @workgroup_size(WORKGROUP_SIZE)
fn softmax_forward(@builtin(workgroup_id) workgroup: vec3<u32>, @builtin(local_invocation_index) local: u32,
                   @builtin(num_workgroups) workgroups: vec3<u32>) {
    let row = thread_index(workgroup, local, workgroups);
    if row >= args.rows {
        return;
    }
    let z = args.a + row * args.cols;
    let a = args.out + row * args.cols;
    var largest = arena[z];
    for (var j = 1u; j < args.cols; j++) {
        largest = max(largest, arena[z + j]);
    }
    var sum = 0.0;
    for (var j = 0u; j < args.cols; j++) {
        let e = exp(arena[z + j] - largest);
        arena[a + j] = e;
        sum += e;
    }
    for (var j = 0u; j < args.cols; j++) {
        arena[a + j] /= sum;
    }
}
