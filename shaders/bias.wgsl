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

// bias_backward_tree: TREE_COLUMNS columns a workgroup, each summed by TREE_SLICES threads over every
// TREE_SLICES-th row (neighbouring threads on neighbouring columns of a row), then the slices' sums added in
// a tree through workgroup memory: no thread walks all the rows alone. TREE_COLUMNS × TREE_SLICES =
// WORKGROUP_SIZE.
const TREE_COLUMNS: u32 = 8u;
const TREE_SLICES: u32 = 8u;

var<workgroup> slice_sums: array<f32, WORKGROUP_SIZE>;

// dbias[cols] = Σ_rows dz[rows×cols]; out = dbias, a = dz.
@compute @workgroup_size(WORKGROUP_SIZE)
fn bias_backward_tree(@builtin(workgroup_id) workgroup: vec3<u32>,
                      @builtin(local_invocation_index) local: u32,
                      @builtin(num_workgroups) workgroups: vec3<u32>) {
    let col = workgroup_index(workgroup, workgroups) * TREE_COLUMNS + local % TREE_COLUMNS;
    let slice = local / TREE_COLUMNS;
    var sum = 0.0;
    if col < args.cols {
        for (var row = slice; row < args.rows; row += TREE_SLICES) {
            sum += arena[args.a + row * args.cols + col];
        }
    }
    slice_sums[local] = sum;
    workgroupBarrier();
    // Slices 4..7 onto 0..3, then 2..3 onto 0..1, then 1 onto 0.
    for (var half = TREE_SLICES / 2u; half > 0u; half /= 2u) {
        if slice < half {
            slice_sums[local] += slice_sums[local + half * TREE_COLUMNS];
        }
        workgroupBarrier();
    }
    if slice == 0u && col < args.cols {
        arena[args.out + col] = slice_sums[local];
    }
}
