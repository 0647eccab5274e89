/* minisnn's fused LIF kernels: the whole forward (eqs. 1-3) and the whole BPTT (eqs. 4-7) of a
 * Leaky layer, one call each. One source for two compilers (see minisnn/fused.py):
 *
 *   NVRTC (MS_CUDA defined)  one GPU thread per neuron, looping over time with its state in
 *                            registers: a "chunk" is one neuron (MS_CHUNK 1), grid-stride.
 *   a C compiler             the CPU build: the neurons in chunks of MS_CHUNK, one chunk per
 *                            OpenMP thread at a time; inside a chunk, time is the outer loop
 *                            and the neurons the inner one, so that each step reads and writes
 *                            MS_CHUNK consecutive values (vectorised, cache-friendly) while the
 *                            chunk's state stays in L1.
 *
 * Either way every neuron goes through exactly the same arithmetic, in the reference's order of
 * operations (minisnn/neuron.py), with multiply-add contraction off. fused.py fills in the
 * parameter lists (@...@) and the #defines of one specialisation: MS_DOUBLE, MS_RESET (0
 * subtract, 1 zero, 2 none), MS_DETACH, MS_SURROGATE.
 */

/* ---- the C / CUDA difference ------------------------------------------------------------ */
#ifdef MS_CUDA
#define MS_KERNEL extern "C" __global__
#define MS_DEVICE __device__ __forceinline__
#define MS_RESTRICT __restrict__
#define MS_CHUNK 1
/* a thread's chunk is its neuron i0; it takes i0, i0 + (all threads), ... (grid-stride loop) */
#define MS_FOR_EACH_CHUNK(i0, n, N) \
    for (long long i0 = (long long)blockIdx.x * blockDim.x + threadIdx.x; i0 < (N); \
         i0 += (long long)blockDim.x * gridDim.x) { const long long n = 1;
#define MS_SIMD
#else
#include <math.h>
#define MS_KERNEL
#define MS_DEVICE static inline
#define MS_RESTRICT restrict
#define MS_CHUNK 256
#ifdef _OPENMP
/* threads only for a layer with enough work: waking them costs more than a small layer's steps */
#define MS_PARALLEL _Pragma("omp parallel for schedule(static) if ((long long)T * BN >= 262144)")
#define MS_SIMD _Pragma("omp simd")
#else
#define MS_PARALLEL
#define MS_SIMD
#endif
#define MS_FOR_EACH_CHUNK(i0, n, N) \
    MS_PARALLEL for (long long i0 = 0; i0 < (N); i0 += MS_CHUNK) { \
        const long long n = ((N) - i0 < MS_CHUNK) ? (N) - i0 : MS_CHUNK;
#endif
#define MS_END_CHUNK }

#if MS_DOUBLE
typedef double real;
#define MS_EXP exp
#define MS_ABS fabs
#else
typedef float real;
#define MS_EXP expf
#define MS_ABS fabsf
#endif

#define MS_STATIC 1
#define MS_LEARN_BETA 2
#define MS_HAS_DU 4
#define MS_HAS_DS 8
#define MS_HAS_START 16
#define MS_HAS_CARRY 32

/* ---- eq. (5): the surrogate dS~/dU at V = U - thr, one formula per built-in ----------------- */
MS_DEVICE real ms_surrogate(real v, real s, real p0, real p1)
{
#if MS_SURROGATE == 1   /* atan: (alpha/2) / (1 + (pi*alpha/2 * V)^2)
                           p0 = alpha/2, p1 = pi*alpha/2 */
    real kv = p1 * v;
    return p0 / (1 + kv * kv);
#elif MS_SURROGATE == 2 /* spike_operator: S */
    return s;
#elif MS_SURROGATE == 3 /* fast_sigmoid: 1 / (slope*|V| + 1)^2;  p0 = slope */
    real a = p0 * MS_ABS(v) + 1;
    return 1 / (a * a);
#elif MS_SURROGATE == 4 /* sigmoid: slope * sig * (1 - sig), sig = 1/(1 + exp(-slope*V))
                           p0 = -slope, p1 = slope */
    real sig = 1 / (1 + MS_EXP(p0 * v));
    return p1 * sig * (1 - sig);
#elif MS_SURROGATE == 5 /* straight_through: 1 */
    return 1;
#elif MS_SURROGATE == 6 /* triangular: max(1 - |V|/width, 0);  p0 = width */
    real a = 1 - MS_ABS(v) / p0;
    return a < 0 ? (real)0 : a;
#else
#error "unknown MS_SURROGATE"
#endif
}

/* ---- forward, eqs. (1)-(3): a chunk of neurons, all T steps, its state kept close --------- */
MS_KERNEL void minisnn_lif_forward(@FORWARD_PARAMS@)
{
    const real b = (flags & MS_LEARN_BETA) ? (real)beta_ptr[0] : beta;
    const long long x_step = (flags & MS_STATIC) ? 0 : BN;   /* a static I is read at every t */
    MS_FOR_EACH_CHUNK(i0, n, BN)
        real u_prev[MS_CHUNK];  /* U[t-1] */
#if MS_RESET != 2
        real s_prev[MS_CHUNK];  /* S[t-1]: only a reset reads it */
#endif
        const int has_start = flags & MS_HAS_START;   /* a segment: the state before step 0 */
        for (long long j = 0; j < n; ++j) {
            u_prev[j] = has_start ? U0[i0 + j] : (real)0;
#if MS_RESET != 2
            s_prev[j] = has_start ? S0[i0 + j] : (real)0;
#endif
        }
        for (int t = 0; t < T; ++t) {
            const real* MS_RESTRICT x = I + (long long)t * x_step + i0;
            real* MS_RESTRICT U_t = U + (long long)t * BN + i0;
            real* MS_RESTRICT S_t = S + (long long)t * BN + i0;
            MS_SIMD
            for (long long j = 0; j < n; ++j) {
                /* U[t] from U[t-1], S[t-1] and I[t], in the reference's order of operations */
#if MS_RESET == 0       /* subtract: U[t] = beta*U[t-1] + I[t] - thr*S[t-1] */
                const real u = (b * u_prev[j] + x[j]) - thr * s_prev[j];
#elif MS_RESET == 1     /* zero: U[t] = beta*((1 - S[t-1])*U[t-1]) + I[t] (snnTorch's form) */
                const real u = b * ((1 - s_prev[j]) * u_prev[j]) + x[j];
#else                   /* none: U[t] = beta*U[t-1] + I[t] */
                const real u = b * u_prev[j] + x[j];
#endif
                const real s = (u - thr > 0) ? (real)1 : (real)0;
                U_t[j] = u;
                S_t[j] = s;
                u_prev[j] = u;
#if MS_RESET != 2
                s_prev[j] = s;
#endif
            }
        }
    MS_END_CHUNK
}

/* ---- backward, eqs. (4)-(7): last step first, dL/dU[t+1] kept close ----------------------- */
MS_KERNEL void minisnn_lif_backward(@BACKWARD_PARAMS@)
{
    const real b = (flags & MS_LEARN_BETA) ? (real)beta_ptr[0] : beta;
    const int has_du = flags & MS_HAS_DU, has_ds = flags & MS_HAS_DS;
    const int is_static = flags & MS_STATIC, learn_beta = flags & MS_LEARN_BETA;
    const int has_start = flags & MS_HAS_START, has_carry = flags & MS_HAS_CARRY;
    MS_FOR_EACH_CHUNK(i0, n, BN)
        real d_next[MS_CHUNK];      /* dL/dU[t+1] */
        real sum_d[MS_CHUNK];       /* static input: sum over t of dL/dU[t] */
        real sum_dbeta[MS_CHUNK];   /* sum over t >= 1 of dL/dU[t] * dU[t]/dbeta */
        for (long long j = 0; j < n; ++j) {
            d_next[j] = 0;
            sum_d[j] = 0;
            sum_dbeta[j] = 0;
        }
        for (int t = T - 1; t >= 0; --t) {
            const long long k = (long long)t * BN + i0;
            const int later = t < T - 1;                  /* is there a step t+1? */
            MS_SIMD
            for (long long j = 0; j < n; ++j) {
                const real u = U[k + j];
                const real v = u - thr;
                const real s = (v > 0) ? (real)1 : (real)0;   /* S[t], recomputed from U[t] */
                const real g = ms_surrogate(v, s, p0, p1);
                /* direct terms: dL/dU[t] from outside, plus the spike path dL/dS[t] * g[t] */
                real d = has_du ? dU_out[k + j] : (real)0;
                if (has_ds)
                    d = d + dS_out[k + j] * g;
                if (!later && has_carry)
                    d = d + carry_in[i0 + j];      /* from the later segment: J·dL/dU, done there */
                if (later) {
                    /* J[t] = dU[t+1]/dU[t], as neuron.membrane_grads */
#if MS_RESET == 1
                    real J = b * (1 - s);
#if !MS_DETACH
                    J = J + (-b * u) * g;          /* reset path through S[t]: dU/dS = -beta*U[t] */
#endif
#else
                    real J = b;
#if MS_RESET == 0 && !MS_DETACH
                    J = J + (-thr) * g;            /* reset path through S[t]: dU/dS = -thr */
#endif
#endif
                    d = d + J * d_next[j];         /* eq. (7) */
                    if (learn_beta) {
#if MS_RESET == 1
                        sum_dbeta[j] = sum_dbeta[j] + d_next[j] * ((1 - s) * u);  /* dU[t+1]/dbeta */
#else
                        sum_dbeta[j] = sum_dbeta[j] + d_next[j] * u;
#endif
                    }
                }
                if (is_static)
                    sum_d[j] = sum_d[j] + d;
                else
                    dI[k + j] = d;                 /* dU[t]/dI[t] = 1 */
                d_next[j] = d;
            }
        }
        if (has_start) {
            /* the step from the state before the segment, U0 (S0), to U[0]: its J and dU/dbeta
               as at every later step, for the earlier segment's carry */
            MS_SIMD
            for (long long j = 0; j < n; ++j) {
                const real u = U0[i0 + j];
#if MS_RESET == 1 || (MS_RESET == 0 && !MS_DETACH)
                const real s = S0[i0 + j];         /* only a reset (or its Jacobian) reads it */
#endif
#if MS_RESET == 1
                real J = b * (1 - s);
#if !MS_DETACH
                J = J + (-b * u) * ms_surrogate(u - thr, s, p0, p1);
#endif
#else
                real J = b;
#if MS_RESET == 0 && !MS_DETACH
                J = J + (-thr) * ms_surrogate(u - thr, s, p0, p1);
#endif
#endif
                carry_out[i0 + j] = J * d_next[j];
                if (learn_beta) {
#if MS_RESET == 1
                    sum_dbeta[j] = sum_dbeta[j] + d_next[j] * ((1 - s) * u);
#else
                    sum_dbeta[j] = sum_dbeta[j] + d_next[j] * u;
#endif
                }
            }
        }
        for (long long j = 0; j < n; ++j) {
            if (is_static)
                dI[i0 + j] = sum_d[j];             /* eq. (6): a static input is used at every step */
            if (learn_beta)
                dbeta_part[i0 + j] = sum_dbeta[j];
        }
    MS_END_CHUNK
}
