@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
const N: u32 = 1024u;
// wg 8 threads; block 8 rows x 64 cols; a loads uniform. groups 16,128
@compute @workgroup_size(8)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) l: vec3<u32>) {
    let row0 = wg.y * 8u;
    let col0 = wg.x * 64u + l.x;
    var acc: array<vec4<f32>, 16>;
    for (var p = 0u; p < N; p++) {
        let bp = p * N + col0;
        let low = vec4<f32>(b[bp], b[bp + 8u], b[bp + 16u], b[bp + 24u]);
        let high = vec4<f32>(b[bp + 32u], b[bp + 40u], b[bp + 48u], b[bp + 56u]);
        let ap = row0 * N + p;
        let a0 = a[ap]; let a1 = a[ap + N]; let a2 = a[ap + 2u*N]; let a3 = a[ap + 3u*N];
        let a4 = a[ap + 4u*N]; let a5 = a[ap + 5u*N]; let a6 = a[ap + 6u*N]; let a7 = a[ap + 7u*N];
        acc[0] += a0 * low; acc[1] += a0 * high; acc[2] += a1 * low; acc[3] += a1 * high;
        acc[4] += a2 * low; acc[5] += a2 * high; acc[6] += a3 * low; acc[7] += a3 * high;
        acc[8] += a4 * low; acc[9] += a4 * high; acc[10] += a5 * low; acc[11] += a5 * high;
        acc[12] += a6 * low; acc[13] += a6 * high; acc[14] += a7 * low; acc[15] += a7 * high;
    }
    for (var i = 0u; i < 8u; i++) {
        for (var j = 0u; j < 8u; j++) {
            let v = select(acc[2u*i + 1u][j % 4u], acc[2u*i][j % 4u], j < 4u);
            c[(row0 + i) * N + col0 + 8u * j] = v;
        }
    }
}
