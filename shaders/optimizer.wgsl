// Parameter updates over len = rows × cols parameters, all layers at once, PyTorch's formulas.

// This epoch's learning rate: the base rate times the schedule's factor, which next_epoch keeps in the arena.
fn rate() -> f32 {
    return args.lr * arena[args.d];
}

// velocity = μ·velocity + grads; params −= lr · velocity.
// out = params, a = grads, b = velocity, lr = the base rate, d = the schedule's factor, momentum = μ.
@compute @workgroup_size(WORKGROUP_SIZE)
fn sgd_update(@builtin(workgroup_id) workgroup: vec3<u32>, @builtin(local_invocation_index) local: u32,
              @builtin(num_workgroups) workgroups: vec3<u32>) {
    let i = thread_index(workgroup, local, workgroups);
    if i < args.rows * args.cols {
        let v = args.momentum * arena[args.b + i] + arena[args.a + i];
        arena[args.b + i] = v;
        arena[args.out + i] -= rate() * v;
    }
}

// AdamW step number t: θ −= lr·λ·θ; m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²;
// θ −= lr · (m / (1 − β1^t)) / (√(v / (1 − β2^t)) + ε).
// out = params, a = grads, b = the moments (m, then v, each len long), c = t and the bias corrections
// 1 − β1^t and 1 − β2^t (adam_step writes them before this runs), lr = the base rate, d = the schedule's
// factor, weight_decay = λ.
@compute @workgroup_size(WORKGROUP_SIZE)
fn adam_update(@builtin(workgroup_id) workgroup: vec3<u32>, @builtin(local_invocation_index) local: u32,
               @builtin(num_workgroups) workgroups: vec3<u32>) {
    let i = thread_index(workgroup, local, workgroups);
    let len = args.rows * args.cols;
    if i < len {
        let lr = rate();
        let g = arena[args.a + i];
        var p = arena[args.out + i];
        p = p - lr * args.weight_decay * p;
        let m = args.beta1 * arena[args.b + i] + (1.0 - args.beta1) * g;
        let v = args.beta2 * arena[args.b + len + i] + (1.0 - args.beta2) * g * g;
        arena[args.b + i] = m;
        arena[args.b + len + i] = v;
        let m_hat = m / arena[args.c + 1u];
        let v_hat = v / arena[args.c + 2u];
        arena[args.out + i] = p - lr * m_hat / (sqrt(v_hat) + args.epsilon);
    }
}

// Adam's step t += 1, then the bias corrections of step t, 1 − β1^t and 1 − β2^t, once for every parameter
// (adam_update reads them rather than taking two powers a parameter). out = t, the two corrections after it.
// One thread.
@compute @workgroup_size(WORKGROUP_SIZE)
fn adam_step(@builtin(local_invocation_index) local: u32) {
    if local == 0u {
        let t = arena[args.out] + 1.0;
        arena[args.out] = t;
        arena[args.out + 1u] = 1.0 - pow(args.beta1, t);
        arena[args.out + 2u] = 1.0 - pow(args.beta2, t);
    }
}
