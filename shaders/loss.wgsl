// The gradient of every loss with respect to the network's output, element by element over len = rows × cols,
// and the metrics of a forward pass over a whole data set.

// d[len] = loss_scale · (output − target); out = d, a = output, b = target. For sse and mse this is dO; for bce on a
// sigmoid and ce on a softmax it is already dZ, which is why those two need no activation_backward.
@compute @workgroup_size(WORKGROUP_SIZE)
fn loss_backward(@builtin(workgroup_id) workgroup: vec3<u32>, @builtin(local_invocation_index) local: u32,
                 @builtin(num_workgroups) workgroups: vec3<u32>) {
    let i = thread_index(workgroup, local, workgroups);
    if i < args.rows * args.cols {
        arena[args.out + i] = args.loss_scale * (arena[args.a + i] - arena[args.b + i]);
    }
}

// The metrics of a forward pass over the data set, reduced on the device so that a log point reads back three
// numbers: `measure_rows` tallies each row and sums the tallies of a workgroup's rows, `measure_sum` sums
// those a workgroup at a time until one is left. Together they are `cpu::measure`; a mean loss is divided by
// its count on the host. A tally is (Σ loss terms, the largest |output − target|, rows right), the rows right
// counted in f32: exact up to 2^24 rows.

var<workgroup> tallies: array<vec3<f32>, WORKGROUP_SIZE>;

// Two tallies as one: loss terms and rows right added, the larger error kept, a NaN error kept as NaN.
fn combine(x: vec3<f32>, y: vec3<f32>) -> vec3<f32> {
    return vec3<f32>(x.x + y.x, worse(x.y, y.y), x.z + y.z);
}

// The workgroup's tallies combined by halves (a tree, not one thread over all), written at out + 3·group by
// the groups that cover some of the `args.rows` tallies or rows (a spilled grid has spare ones).
fn sum_tallies(own: vec3<f32>, local: u32, group: u32) {
    tallies[local] = own;
    workgroupBarrier();
    for (var half = WORKGROUP_SIZE / 2u; half > 0u; half /= 2u) {
        if local < half {
            tallies[local] = combine(tallies[local], tallies[local + half]);
        }
        workgroupBarrier();
    }
    if local == 0u && group * WORKGROUP_SIZE < args.rows {
        let sum = tallies[0];
        arena[args.out + 3u * group] = sum.x;
        arena[args.out + 3u * group + 1u] = sum.y;
        arena[args.out + 3u * group + 2u] = sum.z;
    }
}

// One row's tally, the loss term as `cpu::loss_value` has it, from output at `o`, target at `y` and logits
// at `z`, each `args.cols` long. The loss is fixed for the dispatch, so the switch is uniform; each case
// takes one loop over the row (llvmpipe counts an invocation's loop iterations).
fn measure_row(o: u32, y: u32, z: u32) -> vec3<f32> {
    var worst = 0.0;
    var loss = 0.0;
    switch args.loss {
        case SSE, MSE: {
            for (var j = 0u; j < args.cols; j++) {
                let error = arena[o + j] - arena[y + j];
                worst = worse(worst, abs(error));
                loss += error * error;
            }
            // Halving is exact, so ½·Σ is Σ ½·(y − o)².
            return vec3<f32>(select(loss, 0.5 * loss, args.loss == SSE), worst, 0.0);
        }
        case BCE: {
            for (var j = 0u; j < args.cols; j++) {
                worst = worse(worst, abs(arena[o + j] - arena[y + j]));
                // max(z, 0) − z·y + ln(1 + e^(−|z|)) never takes log(0).
                let logit = arena[z + j];
                loss += max(logit, 0.0) - logit * arena[y + j] + log(1.0 + exp(-abs(logit)));
            }
            return vec3<f32>(loss, worst, f32((arena[o] >= 0.5) == (arena[y] >= 0.5)));
        }
        default: {
            // ce: log-sum-exp of the logits in one pass (the sum rescaled whenever the largest grows), less
            // Σ z·y; the predicted and the target class are the largest of their row, the last of equals as
            // Rust's `max_by` picks.
            var largest = arena[z];
            var exps = 0.0;
            var best_output = arena[o];
            var best_target = arena[y];
            var predicted = 0u;
            var expected = 0u;
            for (var j = 0u; j < args.cols; j++) {
                let out_j = arena[o + j];
                let y_j = arena[y + j];
                let logit = arena[z + j];
                worst = worse(worst, abs(out_j - y_j));
                if logit > largest {
                    exps = exps * exp(largest - logit) + 1.0;
                    largest = logit;
                } else {
                    exps += exp(logit - largest);
                }
                loss -= logit * y_j;
                if out_j >= best_output {
                    best_output = out_j;
                    predicted = j;
                }
                if y_j >= best_target {
                    best_target = y_j;
                    expected = j;
                }
            }
            return vec3<f32>(loss + largest + log(exps), worst, f32(predicted == expected));
        }
    }
}

// partials[⌈rows/WORKGROUP_SIZE⌉ × 3] = each workgroup's rows tallied; out = partials, a = output, b = target,
// c = logits, loss = the loss (`loss_code`).
@compute @workgroup_size(WORKGROUP_SIZE)
fn measure_rows(@builtin(workgroup_id) workgroup: vec3<u32>, @builtin(local_invocation_index) local: u32,
                @builtin(num_workgroups) workgroups: vec3<u32>) {
    let row = thread_index(workgroup, local, workgroups);
    var own = vec3<f32>(0.0);
    if row < args.rows {
        let at = row * args.cols;
        own = measure_row(args.a + at, args.b + at, args.c + at);
    }
    sum_tallies(own, local, workgroup_index(workgroup, workgroups));
}

// sums[⌈n/WORKGROUP_SIZE⌉ × 3] = tallies[n × 3] combined a workgroup at a time; out = sums, a = tallies,
// rows = n.
@compute @workgroup_size(WORKGROUP_SIZE)
fn measure_sum(@builtin(workgroup_id) workgroup: vec3<u32>, @builtin(local_invocation_index) local: u32,
               @builtin(num_workgroups) workgroups: vec3<u32>) {
    let i = thread_index(workgroup, local, workgroups);
    var own = vec3<f32>(0.0);
    if i < args.rows {
        own = vec3<f32>(arena[args.a + 3u * i], arena[args.a + 3u * i + 1u], arena[args.a + 3u * i + 2u]);
    }
    sum_tallies(own, local, workgroup_index(workgroup, workgroups));
}
