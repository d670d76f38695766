// Moving training data into place.

// out[rows×cols] = the rows of src that the order lists; out = out, a = src, b = order. The order holds row
// numbers as u32 bit patterns in f32 slots of the arena.
@compute @workgroup_size(WORKGROUP_SIZE)
fn gather_rows(@builtin(workgroup_id) workgroup: vec3<u32>, @builtin(local_invocation_index) local: u32,
               @builtin(num_workgroups) workgroups: vec3<u32>) {
    let i = thread_index(workgroup, local, workgroups);
    if i < args.rows * args.cols {
        let source_row = bitcast<u32>(arena[args.b + i / args.cols]);
        arena[args.out + i] = arena[args.a + source_row * args.cols + i % args.cols];
    }
}
