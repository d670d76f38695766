// The linear layer's kernels: the tiled matrix multiply, the bias add and the bias gradient.

// Two versions of the matrix multiply, both twins of cpu::matmul; src/gpu/kernel.rs picks one by shape and has
// the same numbers as these constants, checked by a test.
//
// matmul: one SMALL_TILE×SMALL_TILE block of c a workgroup, one element a thread.
const SMALL_TILE: u32 = 16u;

var<workgroup> small_a: array<array<f32, SMALL_TILE>, SMALL_TILE>;
var<workgroup> small_b: array<array<f32, SMALL_TILE>, SMALL_TILE>;

// op(a)[row][p], or 0 outside the m×k matrix so that partial tiles add nothing.
fn load_a(row: u32, p: u32) -> f32 {
    if row >= args.rows || p >= args.inner {
        return 0.0;
    }
    if (args.flags & 1u) != 0u {
        return arena[args.a + p * args.rows + row];
    }
    return arena[args.a + row * args.inner + p];
}

// op(b)[p][col], or 0 outside the k×n matrix.
fn load_b(p: u32, col: u32) -> f32 {
    if p >= args.inner || col >= args.cols {
        return 0.0;
    }
    if (args.flags & 2u) != 0u {
        return arena[args.b + col * args.inner + p];
    }
    return arena[args.b + p * args.cols + col];
}

// c[m×n] = op(a)[m×k] · op(b)[k×n]; m = rows, k = inner, n = cols. One element a thread, strips of a and b
// staged through workgroup memory. Suits small matrices, such as a batch of a few rows, where the big block
// of matmul_blocked would be mostly idle.
@compute @workgroup_size(SMALL_TILE, SMALL_TILE)
fn matmul(@builtin(workgroup_id) workgroup: vec3<u32>, @builtin(local_invocation_id) local: vec3<u32>) {
    let row = workgroup.y * SMALL_TILE + local.y;
    let col = workgroup.x * SMALL_TILE + local.x;
    var acc = 0.0;
    for (var t = 0u; t < args.inner; t += SMALL_TILE) {
        small_a[local.y][local.x] = load_a(row, t + local.x);
        small_b[local.y][local.x] = load_b(t + local.y, col);
        workgroupBarrier();
        for (var p = 0u; p < SMALL_TILE; p++) {
            acc += small_a[local.y][p] * small_b[p][local.x];
        }
        workgroupBarrier();
    }
    if row < args.rows && col < args.cols {
        arena[args.out + row * args.cols + col] = acc;
    }
}

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
