// The matrix multiply, in three versions that are all twins of cpu::matmul; src/gpu/kernel.rs picks one by
// shape and has the same numbers as these constants, checked by a test.
//
// matmul: one SMALL_TILE×SMALL_TILE block of c a workgroup, one element a thread.
const SMALL_TILE: u32 = 16u;

var<workgroup> small_a: array<array<f32, SMALL_TILE>, SMALL_TILE>;
var<workgroup> small_b: array<array<f32, SMALL_TILE>, SMALL_TILE>;

// matmul_blocked: one BLOCK×BLOCK block of c a workgroup of BLOCK_THREADS×BLOCK_THREADS threads, each owning a
// PER_THREAD×PER_THREAD grid of it, while DEPTH-wide slices of a and b pass through workgroup memory.
const BLOCK: u32 = 64u;
const BLOCK_THREADS: u32 = 16u;
const PER_THREAD: u32 = 4u;  // BLOCK / BLOCK_THREADS
const DEPTH: u32 = 16u;

var<workgroup> block_a: array<f32, BLOCK * DEPTH>;  // BLOCK rows of op(a) × DEPTH
var<workgroup> block_b: array<f32, DEPTH * BLOCK>;  // DEPTH rows of op(b) × BLOCK

// The block of rows a workgroup computes: more blocks than a grid dimension holds spill from y into z.
fn row_block(workgroup: vec3<u32>, workgroups: vec3<u32>) -> u32 {
    return workgroup.z * workgroups.y + workgroup.y;
}

// Where op(a)[i][p] and op(b)[p][j] sit: (row stride, column stride) of each, from the transposes bits, as
// `strides` in src/cpu.rs.
fn a_strides() -> vec2<u32> {
    return select(vec2<u32>(args.inner, 1u), vec2<u32>(1u, args.rows), (args.transposes & 1u) != 0u);
}

fn b_strides() -> vec2<u32> {
    return select(vec2<u32>(args.cols, 1u), vec2<u32>(1u, args.inner), (args.transposes & 2u) != 0u);
}

// op(a)[row][p], or 0 outside the m×k matrix so that partial tiles add nothing.
fn load_a(row: u32, p: u32) -> f32 {
    if row >= args.rows || p >= args.inner {
        return 0.0;
    }
    let s = a_strides();
    return arena[args.a + row * s.x + p * s.y];
}

// op(b)[p][col], or 0 outside the k×n matrix.
fn load_b(p: u32, col: u32) -> f32 {
    if p >= args.inner || col >= args.cols {
        return 0.0;
    }
    let s = b_strides();
    return arena[args.b + p * s.x + col * s.y];
}

// c[m×n] = op(a)[m×k] · op(b)[k×n]; m = rows, k = inner, n = cols. One element a thread, strips of a and b
// staged through workgroup memory. Suits small matrices, such as a batch of a few rows, where the big block
// of matmul_blocked would be mostly idle.
@compute @workgroup_size(SMALL_TILE, SMALL_TILE)
fn matmul(@builtin(workgroup_id) workgroup: vec3<u32>, @builtin(local_invocation_id) local: vec3<u32>,
          @builtin(num_workgroups) workgroups: vec3<u32>) {
    let row = row_block(workgroup, workgroups) * SMALL_TILE + local.y;
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

// The same product for large matrices, PER_THREAD² elements a thread. Thread (x, y) owns the elements at rows
// y + BLOCK_THREADS·i and columns x + BLOCK_THREADS·j of the block, so that neighbouring threads touch
// neighbouring addresses. Each element sums its k products in order, as the CPU twin does.
@compute @workgroup_size(BLOCK_THREADS, BLOCK_THREADS)
fn matmul_blocked(@builtin(workgroup_id) workgroup: vec3<u32>,
                  @builtin(local_invocation_id) local: vec3<u32>,
                  @builtin(local_invocation_index) thread: u32,
                  @builtin(num_workgroups) workgroups: vec3<u32>) {
    let row0 = row_block(workgroup, workgroups) * BLOCK;
    let col0 = workgroup.x * BLOCK;
    var acc: array<f32, PER_THREAD * PER_THREAD>;
    for (var t = 0u; t < args.inner; t += DEPTH) {
        for (var e = thread; e < BLOCK * DEPTH; e += BLOCK_THREADS * BLOCK_THREADS) {
            block_a[e] = load_a(row0 + e / DEPTH, t + e % DEPTH);
            block_b[e] = load_b(t + e / BLOCK, col0 + e % BLOCK);
        }
        workgroupBarrier();
        for (var p = 0u; p < DEPTH; p++) {
            var a: array<f32, PER_THREAD>;
            var b: array<f32, PER_THREAD>;
            for (var i = 0u; i < PER_THREAD; i++) {
                a[i] = block_a[(local.y + BLOCK_THREADS * i) * DEPTH + p];
                b[i] = block_b[p * BLOCK + local.x + BLOCK_THREADS * i];
            }
            for (var i = 0u; i < PER_THREAD; i++) {
                for (var j = 0u; j < PER_THREAD; j++) {
                    acc[i * PER_THREAD + j] += a[i] * b[j];
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < PER_THREAD; i++) {
        let row = row0 + local.y + BLOCK_THREADS * i;
        for (var j = 0u; j < PER_THREAD; j++) {
            let col = col0 + local.x + BLOCK_THREADS * j;
            if row < args.rows && col < args.cols {
                arena[args.out + row * args.cols + col] = acc[i * PER_THREAD + j];
            }
        }
    }
}


// matmul_registers: the same BLOCK×BLOCK block of c a workgroup as matmul_blocked, but each of its
// REGISTER_THREADS×REGISTER_THREADS threads keeps an 8×8 grid of c in registers and reads a and b straight
// from the arena: no workgroup memory and no barrier, which a software adapter runs as slow memory and a
// switch between coroutines. Thread (x, y) owns rows 8y … 8y + 7 of the block and columns
// x + REGISTER_THREADS·j, so that neighbouring threads read neighbouring columns of b.
const REGISTER_THREADS: u32 = 8u;

// The product for large matrices. The 8×8 products of a step are written out rather than looped over
// (llvmpipe counts every loop iteration of an invocation against a limit, so only the k steps count), as
// two vec4 of columns a row; each element sums its k products in order, as the CPU twin does. Rows and
// columns past the matrix read its last row or column and are not stored.
@compute @workgroup_size(REGISTER_THREADS, REGISTER_THREADS)
fn matmul_registers(@builtin(workgroup_id) workgroup: vec3<u32>,
                    @builtin(local_invocation_id) local: vec3<u32>,
                    @builtin(num_workgroups) workgroups: vec3<u32>) {
    let row0 = row_block(workgroup, workgroups) * BLOCK + 8u * local.y;
    let col0 = workgroup.x * BLOCK + local.x;
    let last_row = max(args.rows, 1u) - 1u;
    let last_col = max(args.cols, 1u) - 1u;
    let sa = a_strides();
    let sb = b_strides();
    // Offsets of the 8 rows of op(a) and the 8 columns of op(b) this thread reads.
    var a_at: array<u32, 8>;
    var b_at: array<u32, 8>;
    for (var i = 0u; i < 8u; i++) {
        a_at[i] = args.a + min(row0 + i, last_row) * sa.x;
        b_at[i] = args.b + min(col0 + REGISTER_THREADS * i, last_col) * sb.y;
    }
    var acc: array<vec4<f32>, 16>;
    for (var p = 0u; p < args.inner; p++) {
        let pa = p * sa.y;
        let pb = p * sb.x;
        let low = vec4<f32>(arena[b_at[0] + pb], arena[b_at[1] + pb], arena[b_at[2] + pb],
                            arena[b_at[3] + pb]);
        let high = vec4<f32>(arena[b_at[4] + pb], arena[b_at[5] + pb], arena[b_at[6] + pb],
                             arena[b_at[7] + pb]);
        add_products(&acc, a_at, pa, low, high);
    }
    // acc indexed by constants only: one index computed at run time would keep all of it in memory.
    store_row(row0, col0, acc[0], acc[1]);
    store_row(row0 + 1u, col0, acc[2], acc[3]);
    store_row(row0 + 2u, col0, acc[4], acc[5]);
    store_row(row0 + 3u, col0, acc[6], acc[7]);
    store_row(row0 + 4u, col0, acc[8], acc[9]);
    store_row(row0 + 5u, col0, acc[10], acc[11]);
    store_row(row0 + 6u, col0, acc[12], acc[13]);
    store_row(row0 + 7u, col0, acc[14], acc[15]);
}

// c[row][col0 + REGISTER_THREADS·j] = (low, high)[j] for j < 8, where inside the matrix.
fn store_row(row: u32, col0: u32, low: vec4<f32>, high: vec4<f32>) {
    for (var j = 0u; j < 8u; j++) {
        let col = col0 + REGISTER_THREADS * j;
        if row < args.rows && col < args.cols {
            arena[args.out + row * args.cols + col] = select(high[j % 4u], low[j % 4u], j < 4u);
        }
    }
}

// matmul_fused: matmul_registers' 8×8 elements a thread, specialized per use by override constants rather
// than read through run-time strides: which operands are transposed, and an epilogue applied as c is stored.
// Every load in its loop has neighbouring threads on neighbouring addresses or on the same one where b is not
// transposed (c = A·B, dW = Aᵀ·dZ); c = A·Bᵀ (dX = dZ·Wᵀ), whose contiguous dimension is the inner one for
// both operands, has matmul_fused_nt, which puts that dimension on the fast thread axis. (Both transposed,
// which training never asks for, reads b with a stride.) A grid of several slices in z splits the inner
// dimension (split-K): slice s sums its `d` steps into the s-th m×n matrix at out, and bias_backward adds
// them, the slices its rows (`Op::split_sum`).
override TRANSPOSE_A: bool = false;
override TRANSPOSE_B: bool = false;
override EPILOGUE: u32 = 0u;    // one of the EPILOGUE_ constants, `Epilogue::code` in src/gpu/kernel.rs
override ACTIVATION: u32 = 0u;  // the epilogue's activation, numbered as `activate` and `slope` know them

const EPILOGUE_NONE: u32 = 0u;
const EPILOGUE_BIAS_ACTIVATION: u32 = 1u;  // c = f(a·b + bias), bias[n] at args.c
const EPILOGUE_SLOPE: u32 = 2u;            // c = (a·b) ⊙ f′(y), y[m×n] (the activation's output) at args.c

// c[m×n] = epilogue(op(a)[m×k] · op(b)[k×n]); m = rows, k = inner, n = cols, c = the epilogue's operand,
// d = the steps of k a slice sums (k for one slice).
@compute @workgroup_size(REGISTER_THREADS, REGISTER_THREADS)
fn matmul_fused(@builtin(workgroup_id) workgroup: vec3<u32>,
                @builtin(local_invocation_id) local: vec3<u32>,
                @builtin(num_workgroups) workgroups: vec3<u32>) {
    let slices = max((args.inner + args.depth - 1u) / args.depth, 1u);
    let slice = workgroup.z % slices;
    let block_row = (workgroup.z / slices) * workgroups.y + workgroup.y;
    let row0 = block_row * BLOCK + 8u * local.y;
    let col0 = workgroup.x * BLOCK + local.x;
    let last_row = max(args.rows, 1u) - 1u;
    let last_col = max(args.cols, 1u) - 1u;
    let begin = slice * args.depth;
    let end = min(args.inner, begin + args.depth);
    // op(a)[row][p] sits at a_at[row] + p·a_step, op(b)[p][col] at b_at[col] + p·b_step.
    let a_step = select(1u, args.rows, TRANSPOSE_A);
    let a_row = select(args.inner, 1u, TRANSPOSE_A);
    let b_step = select(args.cols, 1u, TRANSPOSE_B);
    let b_col = select(1u, args.inner, TRANSPOSE_B);
    var a_at: array<u32, 8>;
    var b_at: array<u32, 8>;
    for (var i = 0u; i < 8u; i++) {
        a_at[i] = args.a + min(row0 + i, last_row) * a_row;
        b_at[i] = args.b + min(col0 + REGISTER_THREADS * i, last_col) * b_col;
    }
    var acc: array<vec4<f32>, 16>;
    for (var p = begin; p < end; p++) {
        let pb = p * b_step;
        let low = vec4<f32>(arena[b_at[0] + pb], arena[b_at[1] + pb], arena[b_at[2] + pb],
                            arena[b_at[3] + pb]);
        let high = vec4<f32>(arena[b_at[4] + pb], arena[b_at[5] + pb], arena[b_at[6] + pb],
                             arena[b_at[7] + pb]);
        add_products(&acc, a_at, p * a_step, low, high);
    }
    let out = args.out + slice * args.rows * args.cols;
    store_fused(out, row0, col0, acc[0], acc[1]);
    store_fused(out, row0 + 1u, col0, acc[2], acc[3]);
    store_fused(out, row0 + 2u, col0, acc[4], acc[5]);
    store_fused(out, row0 + 3u, col0, acc[6], acc[7]);
    store_fused(out, row0 + 4u, col0, acc[8], acc[9]);
    store_fused(out, row0 + 5u, col0, acc[10], acc[11]);
    store_fused(out, row0 + 6u, col0, acc[12], acc[13]);
    store_fused(out, row0 + 7u, col0, acc[14], acc[15]);
}

// One step of an 8×8 grid of c: row i adds op(a)[i][p] (at a_at[i] + offset) times the 8 columns' values of
// op(b)[p] (low, high). Written out: acc indexed by constants only, or it would live in memory.
fn add_products(acc: ptr<function, array<vec4<f32>, 16>>, a_at: array<u32, 8>, offset: u32, low: vec4<f32>,
                high: vec4<f32>) {
    let a0 = arena[a_at[0] + offset];
    let a1 = arena[a_at[1] + offset];
    let a2 = arena[a_at[2] + offset];
    let a3 = arena[a_at[3] + offset];
    let a4 = arena[a_at[4] + offset];
    let a5 = arena[a_at[5] + offset];
    let a6 = arena[a_at[6] + offset];
    let a7 = arena[a_at[7] + offset];
    (*acc)[0] += a0 * low;
    (*acc)[1] += a0 * high;
    (*acc)[2] += a1 * low;
    (*acc)[3] += a1 * high;
    (*acc)[4] += a2 * low;
    (*acc)[5] += a2 * high;
    (*acc)[6] += a3 * low;
    (*acc)[7] += a3 * high;
    (*acc)[8] += a4 * low;
    (*acc)[9] += a4 * high;
    (*acc)[10] += a5 * low;
    (*acc)[11] += a5 * high;
    (*acc)[12] += a6 * low;
    (*acc)[13] += a6 * high;
    (*acc)[14] += a7 * low;
    (*acc)[15] += a7 * high;
}

// out[row][col0 + REGISTER_THREADS·j] = the epilogue of (low, high)[j] for j < 8.
fn store_fused(out: u32, row: u32, col0: u32, low: vec4<f32>, high: vec4<f32>) {
    for (var j = 0u; j < 8u; j++) {
        finish(out, row, col0 + REGISTER_THREADS * j, select(high[j % 4u], low[j % 4u], j < 4u));
    }
}

// out[row][col] = the epilogue of `value`, where inside the matrix.
fn finish(out: u32, row: u32, col: u32, value: f32) {
    if row < args.rows && col < args.cols {
        let at = row * args.cols + col;
        switch EPILOGUE {
            case EPILOGUE_BIAS_ACTIVATION: {
                arena[out + at] = activate(value + arena[args.c + col], ACTIVATION);
            }
            case EPILOGUE_SLOPE: {
                arena[out + at] = value * slope(arena[args.c + at], ACTIVATION);
            }
            default: {
                arena[out + at] = value;
            }
        }
    }
}

// matmul_fused_nt: c = A·Bᵀ, both operands read along their contiguous inner dimension with neighbouring
// threads on neighbouring steps: thread (x, y) holds 8 rows × 8 columns of c (rows 8y …, the workgroup's
// BLOCK rows × NT_COLUMNS columns) summed over the steps p ≡ x (mod REGISTER_THREADS), and the
// REGISTER_THREADS partial sums of an element are added through workgroup memory at the end, half of the
// rows at a time (8 KiB): one barrier pair per half, none in the loop. The same overrides as matmul_fused;
// one slice only.
const NT_COLUMNS: u32 = 8u;

var<workgroup> nt_partials: array<vec4<f32>, 512>;  // 64 threads × 4 rows × 8 columns

@compute @workgroup_size(REGISTER_THREADS, REGISTER_THREADS)
fn matmul_fused_nt(@builtin(workgroup_id) workgroup: vec3<u32>,
                   @builtin(local_invocation_id) local: vec3<u32>,
                   @builtin(local_invocation_index) thread: u32,
                   @builtin(num_workgroups) workgroups: vec3<u32>) {
    let block_row = workgroup.z * workgroups.y + workgroup.y;
    let row0 = block_row * BLOCK + 8u * local.y;
    let col0 = workgroup.x * NT_COLUMNS;
    let last_row = max(args.rows, 1u) - 1u;
    let last_col = max(args.cols, 1u) - 1u;
    // a[row][p] at a_at[row] + p, b[col][p] at b_at[col] + p.
    var a_at: array<u32, 8>;
    var b_at: array<u32, 8>;
    for (var i = 0u; i < 8u; i++) {
        a_at[i] = args.a + min(row0 + i, last_row) * args.inner;
        b_at[i] = args.b + min(col0 + i, last_col) * args.inner;
    }
    var acc: array<vec4<f32>, 16>;
    for (var p = local.x; p < args.inner; p += REGISTER_THREADS) {
        let low = vec4<f32>(arena[b_at[0] + p], arena[b_at[1] + p], arena[b_at[2] + p], arena[b_at[3] + p]);
        let high = vec4<f32>(arena[b_at[4] + p], arena[b_at[5] + p], arena[b_at[6] + p], arena[b_at[7] + p]);
        add_products(&acc, a_at, p, low, high);
    }
    // Rows 0–3 of every thread, then rows 4–7: partials[thread][row][half of the columns], and thread (x, y)
    // adds up row x / 2, columns 4·(x % 2) … of its row group.
    keep_partials(&acc, 0u, thread * 8u);
    workgroupBarrier();
    finish_nt(row0 + local.x / 2u, col0 + 4u * (local.x % 2u), local);
    workgroupBarrier();
    keep_partials(&acc, 8u, thread * 8u);
    workgroupBarrier();
    finish_nt(row0 + 4u + local.x / 2u, col0 + 4u * (local.x % 2u), local);
}

// nt_partials[at …] = acc[first …], 4 rows of the thread's 8 (first a constant, so acc stays in registers).
fn keep_partials(acc: ptr<function, array<vec4<f32>, 16>>, first: u32, at: u32) {
    nt_partials[at] = (*acc)[first];
    nt_partials[at + 1u] = (*acc)[first + 1u];
    nt_partials[at + 2u] = (*acc)[first + 2u];
    nt_partials[at + 3u] = (*acc)[first + 3u];
    nt_partials[at + 4u] = (*acc)[first + 4u];
    nt_partials[at + 5u] = (*acc)[first + 5u];
    nt_partials[at + 6u] = (*acc)[first + 6u];
    nt_partials[at + 7u] = (*acc)[first + 7u];
}

// c[row][col … col + 3] = the epilogue of the sum of the row group's REGISTER_THREADS partials, in order.
fn finish_nt(row: u32, col: u32, local: vec3<u32>) {
    var sum = vec4<f32>();
    for (var lane = 0u; lane < REGISTER_THREADS; lane++) {
        sum += nt_partials[(local.y * REGISTER_THREADS + lane) * 8u + local.x];
    }
    finish(args.out, row, col, sum.x);
    finish(args.out, row, col + 1u, sum.y);
    finish(args.out, row, col + 2u, sum.z);
    finish(args.out, row, col + 3u, sum.w);
}
