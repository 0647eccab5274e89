/* The two matrix products of a Linear layer with few outputs (the seed's 1000 -> 10 output layer),
 * on the CPU. minisnn/narrow.py calls them in place of NumPy's matmul where they apply. `real`
 * (float or double) is defined before this source by minisnn/cpu_kernels.py.
 *
 * Why: with N <= 16 outputs a general BLAS works on tiles made for large matrices; here each of
 * these products does 10 multiply-adds per value it reads from a (T*B, K) array of spikes, and
 * reading the array is what it should cost. Two things make that so: the N output values are
 * kept in vector registers while four rows stream past together (x_wt), or the N rows of partial
 * sums of a block of columns stay in L1 while the rows stream past, eight at a time (add_dt_x).
 *
 * Each output value is summed in one fixed order, whatever the number of threads: x_wt in
 * vector lanes over k then across the lanes, add_dt_x over the rows in order. The library is
 * built without multiply-add contraction, like the other kernels; the sums are in another order
 * than BLAS's, so results agree with NumPy's to rounding, not bit for bit.
 *
 * GCC's and Clang's vector extensions: `vec` is one 64-byte vector, split by the compiler into
 * what the machine has (AVX-512, AVX2, NEON...).
 */
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__GNUC__) && !defined(__clang__)
/* the small helpers below take and return a 64-byte vector; they are inlined, so GCC's note
 * that such a call's ABI differs without AVX-512 does not apply */
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

#define MAX_OUTPUTS 16   /* NARROW_MAX_OUTPUTS in cpu_kernels.py: the callers check it */
#define LANES (64 / (long long)sizeof(real))
typedef real vec __attribute__((vector_size(64)));

static inline vec load(const real *p) { vec v; __builtin_memcpy(&v, p, sizeof v); return v; }
static inline void store(real *p, const vec *v) { __builtin_memcpy(p, v, sizeof *v); }
static inline real lane_sum(const vec *v)
{
    real s = 0;
    for (int l = 0; l < LANES; ++l)
        s = s + (*v)[l];
    return s;
}

#define XW_ROWS 4   /* rows of X that x_wt multiplies together: each vector of W loaded once */

/* XW_ROWS rows x[i] of X against G rows of W (outputs n .. n+G-1): XW_ROWS*G vector sums */
#define ROWS_BY(G)                                                                       \
    for (; n + G <= N; n += G) {                                                         \
        vec a[XW_ROWS][G];                                                               \
        for (int i = 0; i < XW_ROWS; ++i)                                                \
            for (int g = 0; g < G; ++g)                                                  \
                a[i][g] = (vec){0};                                                      \
        long long k = 0;                                                                 \
        for (; k + LANES <= K; k += LANES) {                                             \
            vec v[XW_ROWS];                                                              \
            for (int i = 0; i < XW_ROWS; ++i)                                            \
                v[i] = load(x[i] + k);                                                   \
            for (int g = 0; g < G; ++g) {                                                \
                const vec w = load(W + (n + g) * K + k);                                 \
                for (int i = 0; i < XW_ROWS; ++i)                                        \
                    a[i][g] = a[i][g] + v[i] * w;                                        \
            }                                                                            \
        }                                                                                \
        for (int i = 0; i < XW_ROWS; ++i)                                                \
            for (int g = 0; g < G; ++g) {                                                \
                real s = lane_sum(&a[i][g]);                                              \
                for (long long j = k; j < K; ++j)                                        \
                    s = s + x[i][j] * W[(n + g) * K + j];                                \
                o[i][n + g] = s;                                                         \
            }                                                                            \
    }

/* out (R, N) = X (R, K) . W (N, K)^T, N <= MAX_OUTPUTS: XW_ROWS rows of X at a time, in groups of
 * 5 outputs (20 vector sums, in registers), then 2, then 1 */
void narrow_x_wt(long long R, long long K, long long N, const real *restrict X,
                 const real *restrict W, real *restrict out)
{
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
    for (long long r = 0; r < R; r += XW_ROWS) {
        real spare[XW_ROWS][MAX_OUTPUTS];   /* rows past R (the last group repeats row r) */
        const real *x[XW_ROWS];
        real *o[XW_ROWS];
        for (int i = 0; i < XW_ROWS; ++i) {
            const int inside = r + i < R;
            x[i] = X + (inside ? r + i : r) * K;
            o[i] = inside ? out + (r + i) * N : spare[i];
        }
        long long n = 0;
        ROWS_BY(5)
        ROWS_BY(2)
        ROWS_BY(1)
    }
}

#define DTX_ROWS 8        /* rows of X that add_dt_x reads together */
#define MAX_BLOCK 512     /* the most columns one thread sums at a time */

/* G (N, K) += D (R, N)^T . X (R, K), N <= MAX_OUTPUTS: the columns in blocks, a block per thread */
void narrow_add_dt_x(long long R, long long N, long long K, const real *restrict D,
                     const real *restrict X, real *restrict G)
{
#ifdef _OPENMP
    const long long threads = omp_get_max_threads();
#else
    const long long threads = 1;
#endif
    /* as many blocks as threads where K allows it, a whole number of vectors each */
    long long block = (K + threads - 1) / threads;
    block = (block + LANES - 1) / LANES * LANES;
    block = block < 4 * LANES ? 4 * LANES : block > MAX_BLOCK ? MAX_BLOCK : block;
    const long long blocks = (K + block - 1) / block;
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
    for (long long b = 0; b < blocks; ++b) {
        const long long k0 = b * block;
        const long long width = K - k0 < block ? K - k0 : block;
        const long long nv = width / LANES, rest = width - nv * LANES;
        vec acc[MAX_OUTPUTS][MAX_BLOCK / (64 / sizeof(real))];   /* the block's sums, in L1 */
        real tail[MAX_OUTPUTS][64 / sizeof(real)];
        for (long long n = 0; n < N; ++n) {
            for (long long v = 0; v < nv; ++v)
                acc[n][v] = (vec){0};
            for (long long c = 0; c < rest; ++c)
                tail[n][c] = 0;
        }
        long long r = 0;
        for (; r < R; r += DTX_ROWS) {
            const long long rows = R - r < DTX_ROWS ? R - r : DTX_ROWS;
            const real *x = X + r * K + k0, *d = D + r * N;
            if (rows == DTX_ROWS) {
                for (long long v = 0; v < nv; ++v) {
                    vec xs[DTX_ROWS];
                    for (int i = 0; i < DTX_ROWS; ++i)
                        xs[i] = load(x + i * K + v * LANES);
                    for (long long n = 0; n < N; ++n) {
                        vec a = acc[n][v];
                        for (int i = 0; i < DTX_ROWS; ++i)
                            a = a + d[i * N + n] * xs[i];
                        acc[n][v] = a;
                    }
                }
            } else {
                for (long long v = 0; v < nv; ++v)
                    for (long long n = 0; n < N; ++n)
                        for (long long i = 0; i < rows; ++i)
                            acc[n][v] = acc[n][v] + d[i * N + n] * load(x + i * K + v * LANES);
            }
            for (long long n = 0; n < N; ++n)     /* the block's last columns, same order */
                for (long long c = 0; c < rest; ++c)
                    for (long long i = 0; i < rows; ++i)
                        tail[n][c] = tail[n][c] + d[i * N + n] * x[i * K + nv * LANES + c];
        }
        for (long long n = 0; n < N; ++n) {
            real *g = G + n * K + k0;
            for (long long v = 0; v < nv; ++v) {
                const vec sum = load(g + v * LANES) + acc[n][v];
                store(g + v * LANES, &sum);
            }
            for (long long c = 0; c < rest; ++c)
                g[nv * LANES + c] = g[nv * LANES + c] + tail[n][c];
        }
    }
}
