// Moving training data into place, and the counters the device keeps for itself.
//
// Counters are stored as f32 values in the arena: exact up to 2^24, which the trainer checks.

// order[rows] = the rows that positions cursor, cursor + 1, ... of the epoch's order visit, computed from the
// seed and the epoch (`shuffled_row`), as f32 (exact: the trainer keeps data sets below 2^24 rows); out = order,
// b = epoch, c = cursor, inner = the data set's rows. Once a row, so that gather_rows only copies.
@compute @workgroup_size(WORKGROUP_SIZE)
fn shuffled_rows(@builtin(workgroup_id) workgroup: vec3<u32>, @builtin(local_invocation_index) local: u32,
                 @builtin(num_workgroups) workgroups: vec3<u32>) {
    let i = thread_index(workgroup, local, workgroups);
    if i < args.rows {
        let position = u32(arena[args.c]) + i;
        let epoch = u32(arena[args.b]);
        arena[args.out + i] = f32(shuffled_row(args.seed_lo, args.seed_hi, epoch, args.data_rows, position));
    }
}

// out[rows×cols] = the rows of src that order[rows] names; out = out, a = src, b = order.
@compute @workgroup_size(WORKGROUP_SIZE)
fn gather_rows(@builtin(workgroup_id) workgroup: vec3<u32>, @builtin(local_invocation_index) local: u32,
               @builtin(num_workgroups) workgroups: vec3<u32>) {
    let i = thread_index(workgroup, local, workgroups);
    if i < args.rows * args.cols {
        let source_row = u32(arena[args.b + i / args.cols]);
        arena[args.out + i] = arena[args.a + source_row * args.cols + i % args.cols];
    }
}

// counter += amount, between the dispatches that read it: Adam's step count, the batch cursor. One thread.
@compute @workgroup_size(WORKGROUP_SIZE)
fn advance_counter(@builtin(local_invocation_index) local: u32) {
    if local == 0u {
        arena[args.out] += args.amount;
    }
}

// The epoch's end: epoch += 1, the cursor back to the first position, and the learning rate's factor for the
// new epoch; out = epoch, a = cursor, b = the factor; schedule, period and schedule_parameter are the
// schedule (`schedule_code`).
// One thread.
@compute @workgroup_size(WORKGROUP_SIZE)
fn next_epoch(@builtin(local_invocation_index) local: u32) {
    if local == 0u {
        let epoch = arena[args.out] + 1.0;
        arena[args.out] = epoch;
        arena[args.a] = 0.0;
        arena[args.b] = schedule_factor(args.schedule, args.period, args.schedule_parameter, u32(epoch));
    }
}
