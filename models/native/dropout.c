/* Dropout in one pass, for float32 on the CPU: out = residual + x * keep * scale (residual optional).
 * keep_i is drawn from a counter-based hash of (seed, i), not from a stored mask, so the backward
 * pass recomputes the same mask from the seed (dx = dy * keep * scale) and nothing but the seed is
 * saved; any thread can draw any element, so the work splits over threads freely. Element i is
 * dropped when the top byte of its hash is below `cut` (= round(256 p)), as in models.layers.Dropout.
 * Torch's own dropout on the CPU draws one double per element and applies it in 3 to 5 more ops.
 */
#include <stddef.h>
#include <stdint.h>

#include "mask.h"

/* Elements [i0, i1) of one block of at most 2^32 (32-bit lanes vectorise twice as wide as 64-bit). */
static void apply_range(uint32_t seed_lo, uint32_t seed_hi, uint32_t c, float scale, uint32_t i0, uint32_t i1,
                        const float *restrict x, const float *restrict residual, float *restrict out) {
    if (residual)
        for (uint32_t i = i0; i < i1; i++)
            out[i] = residual[i] + (top_byte(seed_lo, seed_hi, i) >= c ? x[i] * scale : 0.0f);
    else
        for (uint32_t i = i0; i < i1; i++)
            out[i] = top_byte(seed_lo, seed_hi, i) >= c ? x[i] * scale : 0.0f;
}

void dropout_apply(int threads, int64_t n, uint64_t seed, int cut, float scale, const float *x,
                   const float *residual, float *out) {
    const int64_t chunk = 1 << 16;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
    for (int64_t start = 0; start < n; start += chunk) {
        int64_t block = start >> 32, end = start + chunk < n ? start + chunk : n;
        size_t base = (size_t)block << 32;  /* each 2^32 block hashes its own index in the seed */
        apply_range((uint32_t)seed, (uint32_t)(seed >> 32) ^ (uint32_t)block, (uint32_t)cut, scale,
                    (uint32_t)(start - base), (uint32_t)(end - base), x + base, residual ? residual + base : 0,
                    out + base);
    }
}
