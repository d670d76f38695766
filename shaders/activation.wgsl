// Activations and their derivatives. The element-wise ones work over len = rows × cols and are chosen by
// args.flags, numbered as Activation::shader_code in src/gpu/kernel.rs (checked by a test).

const IDENTITY: u32 = 0u;
const SIGMOID: u32 = 1u;
const TANH: u32 = 2u;
const RELU: u32 = 3u;
const LEAKY_RELU: u32 = 4u;

const LEAKY_SLOPE: f32 = 0.01;

fn activate(z: f32, kind: u32) -> f32 {
    switch kind {
        case SIGMOID: {
            return 1.0 / (1.0 + exp(-z));
        }
        case TANH: {
            // Through e^(−2|z|), which never overflows.
            let e = exp(-2.0 * abs(z));
            return sign(z) * (1.0 - e) / (1.0 + e);
        }
        case RELU: {
            // NaN stays NaN, as on the CPU, so that a diverged run shows in its loss.
            return select(z, 0.0, z < 0.0);
        }
        case LEAKY_RELU: {
            return select(LEAKY_SLOPE * z, z, z > 0.0);
        }
        default: {
            return z;
        }
    }
}

// f′ in terms of the activation's output a.
fn slope(a: f32, kind: u32) -> f32 {
    switch kind {
        case SIGMOID: {
            return a * (1.0 - a);
        }
        case TANH: {
            return 1.0 - a * a;
        }
        case RELU: {
            return select(0.0, 1.0, a > 0.0);
        }
        case LEAKY_RELU: {
            return select(LEAKY_SLOPE, 1.0, a > 0.0);
        }
        default: {
            return 1.0;
        }
    }
}

// a[len] = f(z[len]); out = a, a = z, flags = f.
@compute @workgroup_size(WORKGROUP_SIZE)
fn activation_forward(@builtin(workgroup_id) workgroup: vec3<u32>, @builtin(local_invocation_index) local: u32,
                      @builtin(num_workgroups) workgroups: vec3<u32>) {
    let i = thread_index(workgroup, local, workgroups);
    if i < args.rows * args.cols {
        arena[args.out + i] = activate(arena[args.a + i], args.flags);
    }
}

// dz[len] = da[len] ⊙ f′, from the activation's output a; out = dz, a = da, b = a, flags = f.
@compute @workgroup_size(WORKGROUP_SIZE)
fn activation_backward(@builtin(workgroup_id) workgroup: vec3<u32>, @builtin(local_invocation_index) local: u32,
                       @builtin(num_workgroups) workgroups: vec3<u32>) {
    let i = thread_index(workgroup, local, workgroups);
    if i < args.rows * args.cols {
        arena[args.out + i] = arena[args.a + i] * slope(arena[args.b + i], args.flags);
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
