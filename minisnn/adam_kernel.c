/* Adam's update in one pass over a parameter (minisnn.optim.Adam.step, on NumPy arrays): read
 * p, g, m, v once, write p, m, v once, instead of the eleven array operations of the readable
 * NumPy code. Every operation is the one NumPy does, in the same order and in the same type
 * (`real`: float or double, defined before this source by minisnn/cpu_kernels.py), and the
 * library is built without contraction or fast-math, so p, m and v equal NumPy's bit for bit.
 * The constants arrive already rounded to `real`, as NumPy rounds a Python float scalar.
 *
 *   g ← g + wd·p (when wd ≠ 0);  m ← β1·m + (1−β1)·g;  v ← β2·v + ((1−β2)·g)·g;
 *   p ← p − (m / (sqrt(v)/root_c2 + eps))·step_size
 */
#include <math.h>

void adam_step(long long n, real *restrict p, const real *restrict g, real *restrict m,
               real *restrict v, real b1, real c1, real b2, real c2, real root_c2, real eps,
               real step_size, real wd)
{
#ifdef _OPENMP
#pragma omp parallel for simd schedule(static) if (n > 262144)
#endif
    for (long long i = 0; i < n; i++) {
        real gi = g[i];
        if (wd != (real)0)
            gi = gi + p[i] * wd;
        const real mi = m[i] * b1 + gi * c1;
        const real vi = v[i] * b2 + (gi * c2) * gi;
        const real denom = SQRT(vi) / root_c2 + eps;
        p[i] = p[i] - (mi / denom) * step_size;
        m[i] = mi;
        v[i] = vi;
    }
}
