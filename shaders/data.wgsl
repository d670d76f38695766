// Moving training data into place, and the counters the device keeps for itself.
//
// Row numbers and positions are stored as f32 values in the arena: exact up to 2^24, which the trainer checks.

// out[rows×cols] = the rows of src that the epoch's order lists from the position in the cursor onwards;
// out = out, a = src, b = order, c = cursor.
@compute @workgroup_size(WORKGROUP_SIZE)
fn gather_rows(@builtin(workgroup_id) workgroup: vec3<u32>, @builtin(local_invocation_index) local: u32,
               @builtin(num_workgroups) workgroups: vec3<u32>) {
    let i = thread_index(workgroup, local, workgroups);
    if i < args.rows * args.cols {
        let position = u32(arena[args.c]) + i / args.cols;
        let source_row = u32(arena[args.b + position]);
        arena[args.out + i] = arena[args.a + source_row * args.cols + i % args.cols];
    }
}

// counter += scale, between the dispatches that read it: Adam's step count, the batch cursor. One thread.
@compute @workgroup_size(WORKGROUP_SIZE)
fn advance_counter(@builtin(local_invocation_index) local: u32) {
    if local == 0u {
        arena[args.out] += args.scale;
    }
}
