/* Dropout in one pass, for float32 on the CPU: out = residual + x * keep * scale (residual optional).
 * keep_i is drawn from a counter-based hash of (seed, i), not from a stored mask, so the backward
 * pass recomputes the same mask from the seed (dx = dy * keep * scale) and nothing but the seed is
 * saved; any thread can draw any element, so the work splits over threads freely. Element i is
 * dropped when its byte of a hash is below `cut` (= round(256 p)), as in models.layers.Dropout.
 * Torch's own dropout on the CPU draws one double per element and applies it in 3 to 5 more ops.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "mask.h"

typedef uint32_t u32x16 __attribute__((vector_size(64)));
typedef float f32x16 __attribute__((vector_size(64)));

static inline u32x16 mix16(u32x16 h) {
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

/* Elements [i0, i1) of one block of at most 2^32, i0 a multiple of 64, with drop_byte's bytes: 16 lanes
 * hash once for 64 elements, and each pass over 16 elements reads one byte per lane. A quarter of the
 * hashing of one hash per element (the kernel: 47 -> 27 us at 155K elements on one core). In GCC
 * vector types, as the loops over bytes written out in plain C did not vectorise. */
static void apply_range(uint32_t seed_lo, uint32_t seed_hi, uint32_t c, float scale, uint32_t i0, uint32_t i1,
                        const float *restrict x, const float *restrict residual, float *restrict out) {
    const u32x16 lane = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    uint32_t sbits;
    memcpy(&sbits, &scale, 4);
    uint32_t i = i0;
    for (; i + 64 <= i1; i += 64) {
        u32x16 h = mix16(mix16(((i >> 2) + lane) * 0x9e3779b9u + seed_lo) ^ seed_hi);
        for (uint32_t j = 0; j < 4; j++) {
            u32x16 keep = (u32x16)(((h >> (8 * j)) & 255u) >= c) & sbits;
            f32x16 xv, kv, ov;
            memcpy(&xv, x + i + 16 * j, 64);
            memcpy(&kv, &keep, 64);
            ov = xv * kv;
            if (residual) {
                f32x16 rv;
                memcpy(&rv, residual + i + 16 * j, 64);
                ov += rv;
            }
            memcpy(out + i + 16 * j, &ov, 64);
        }
    }
    for (; i < i1; i++)  /* the last, partial run */
        out[i] = (residual ? residual[i] : 0.0f) + x[i] * (drop_byte(seed_lo, seed_hi, i) >= c ? scale : 0.0f);
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
