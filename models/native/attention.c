/* Multi-head self-attention with key padding and dropout on the attention weights, forward and
 * backward, for float32 on the CPU: softmax(Q K^T / sqrt(dh), keys masked) dropped, times V, per
 * (sequence, head). Torch computes it as ~10 ops whose head split and merge copy the whole [B, T, 3d]
 * projection several times over with strided reads and writes (~2.8 of the 7.7 ms one layer's
 * attention took forward and backward at [64, 36, 128]); here each
 * (sequence, head) reads its Q, K, V straight out of the in-projection's output and writes its
 * result (and, backward, its gradients) straight into place, one OpenMP thread per slice of the
 * B x H problems. Their matmuls are small (T x T x dh, e.g. 36 x 36 x 32), so they are loops here,
 * LANES result columns by ROWS result rows at a time in registers: at [64, 36, 128], 4 heads, the
 * forward takes 754 us and the backward 784 us, against 1,007 and 1,553 us with one sgemm call per
 * product (MKL's batched sgemm was slower still). Layouts (row-major, contiguous):
 *   qkv [B, T, 3d]  (q | k | v, head h at columns h dh .. (h + 1) dh of each third)
 *   pad [B, T]      1 where the key is padding
 *   p   [B, H, T, T] saved softmax weights before dropout; out [B, T, d]
 * The dropout mask is mask.h's hash of the weight's flat index in [B, H, T, T] (as dropout.c draws it
 * for a tensor of that shape), recomputed in the backward pass.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "mask.h"

typedef struct {
    int b, t, heads, dh, cut;
    float scale, drop_scale;
    uint64_t seed;
} Shape;

/* w = p * keep * drop_scale over problem i's T x T weights (flat index i T^2 + r) */
static void dropped(const Shape *s, int i, const float *restrict p, float *restrict w) {
    const uint64_t base = (uint64_t)i * s->t * s->t;
    const uint32_t lo = (uint32_t)s->seed, hi = (uint32_t)(s->seed >> 32) ^ (uint32_t)(base >> 32);
    const uint32_t at = (uint32_t)base, c = (uint32_t)s->cut;
    const float scale = s->drop_scale;  /* a local: w cannot alias it, so the loop vectorises */
    for (int r = 0, n = s->t * s->t; r < n; r++)
        w[r] = drop_byte(lo, hi, at + (uint32_t)r) >= c ? p[r] * scale : 0.0f;
}

/* softmax of each row of problem i's scores in place; masked keys hold -1e30 (mask_bias) and get 0.
 * (A row with every key masked, which padding on the right never makes, would get uniform weights.) */
static void softmax(const Shape *s, float *restrict p) {
    const int t = s->t;
    for (int r = 0; r < t; r++) {
        float *restrict row = p + (size_t)r * t, top = row[0], sum = 0.0f;
        for (int j = 1; j < t; j++) top = row[j] > top ? row[j] : top;
        for (int j = 0; j < t; j++) {
            row[j] = expf(row[j] - top);
            sum += row[j];
        }
        const float inv = 1.0f / sum;
        for (int j = 0; j < t; j++) row[j] *= inv;
    }
}

/* d(dropped weights) -> d(scores) in place: through the dropout (w = p * keep * scale, so keep is
 * w != 0 wherever p is not 0, and where p is 0 the result is 0 either way), then through the softmax,
 * dS = P (dP - rowsum(dP P)) */
static void softmax_backward(const Shape *s, const float *restrict p, const float *restrict w, float *restrict g) {
    const int t = s->t;
    const float scale = s->drop_scale;
    for (int r = 0; r < t; r++) {
        const float *restrict pr = p + (size_t)r * t, *restrict wr = w + (size_t)r * t;
        float *restrict gr = g + (size_t)r * t, dot = 0.0f;
        for (int j = 0; j < t; j++) {
            gr[j] = wr[j] != 0.0f ? gr[j] * scale : 0.0f;
            dot += gr[j] * pr[j];
        }
        for (int j = 0; j < t; j++) gr[j] = pr[j] * (gr[j] - dot);
    }
}

#define LANES 16  /* floats in one vf: a product's accumulator for LANES columns stays in one register */
typedef float vf __attribute__((vector_size(4 * LANES), aligned(4)));  /* GCC vectors; unaligned loads */

/* xt [dh, tp] = the dh columns of x's T rows (row stride ld), columns t .. tp - 1 zero, so that
 * products over dh run LANES columns of the result at a time */
static void transpose(int t, int tp, int dh, const float *restrict x, int ld, float *restrict xt) {
    for (int c = 0; c < dh; c++)
        for (int j = 0; j < tp; j++) xt[(size_t)c * tp + j] = j < t ? x[(size_t)j * ld + c] : 0.0f;
}

#define ROWS 4  /* rows of the result per pass: independent accumulators hide the FMA latency */

/* out [T, T] = scale * x [T, dh] (row stride ldx) . y^T + bias (per column), from yt [dh, tp] */
static void dots(int t, int tp, int dh, float scale, const float *restrict x, int ldx, const float *restrict yt,
                 const float *restrict bias, float *restrict out) {
    for (int r0 = 0; r0 < t; r0 += ROWS) {
        const float *xr[ROWS];
        for (int k = 0; k < ROWS; k++) xr[k] = x + (size_t)(r0 + k < t ? r0 + k : t - 1) * ldx;  /* past T: a repeat */
        for (int j0 = 0; j0 < t; j0 += LANES) {
            vf acc[ROWS] = {{0}};
            for (int c = 0; c < dh; c++) {
                const vf y = *(const vf *)(yt + (size_t)c * tp + j0);
                for (int k = 0; k < ROWS; k++) acc[k] += xr[k][c] * y;
            }
            for (int k = 0; k < ROWS && r0 + k < t; k++)
                for (int l = 0; l < LANES && j0 + l < t; l++)
                    out[(size_t)(r0 + k) * t + j0 + l] = scale * acc[k][l] + bias[j0 + l];
        }
    }
}

/* out [T, n] (row stride ldo) = scale * A . x [T, n] (row stride ldx), where A[r][j] = a[r sr + j sj]:
 * (sr, sj) = (T, 1) multiplies by a, (1, T) by its transpose */
static void times(int t, int n, float scale, const float *restrict a, int sr, int sj, const float *restrict x,
                  int ldx, float *restrict out, int ldo) {
    for (int r0 = 0; r0 < t; r0 += ROWS) {
        const float *ar[ROWS];
        for (int k = 0; k < ROWS; k++) ar[k] = a + (size_t)(r0 + k < t ? r0 + k : t - 1) * sr;  /* past T: a repeat */
        int c0 = 0;
        for (; c0 + LANES <= n; c0 += LANES) {
            vf acc[ROWS] = {{0}};
            for (int j = 0; j < t; j++) {
                const vf xv = *(const vf *)(x + (size_t)j * ldx + c0);
                for (int k = 0; k < ROWS; k++) acc[k] += ar[k][(size_t)j * sj] * xv;
            }
            for (int k = 0; k < ROWS && r0 + k < t; k++) *(vf *)(out + (size_t)(r0 + k) * ldo + c0) = scale * acc[k];
        }
        for (int k = 0; k < ROWS && r0 + k < t; k++)
            for (int c = c0; c < n; c++) {  /* a head width that is not a multiple of LANES */
                float acc = 0.0f;
                for (int j = 0; j < t; j++) acc += ar[k][(size_t)j * sj] * x[(size_t)j * ldx + c];
                out[(size_t)(r0 + k) * ldo + c] = scale * acc;
            }
    }
}

/* scratch per thread: dh tp + 2 T^2 + tp floats */
static void forward_one(const Shape *s, int i, const float *qkv, const uint8_t *pad, float *p, float *out,
                        float *scratch) {
    const int t = s->t, tp = (t + LANES - 1) / LANES * LANES, dh = s->dh, d = s->heads * dh, d3 = 3 * d;
    const int seq = i / s->heads, h = i % s->heads;
    const float *q = qkv + (size_t)seq * t * d3 + h * dh, *k = q + d, *v = q + 2 * d;
    float *pi = p + (size_t)i * t * t, *kt = scratch, *w = scratch + (size_t)dh * tp, *bias = w + (size_t)t * t;
    for (int j = 0; j < tp; j++) bias[j] = j < t && pad[(size_t)seq * t + j] ? -1e30f : 0.0f;  /* no inf: -ffast-math */
    transpose(t, tp, dh, k, d3, kt);
    dots(t, tp, dh, s->scale, q, d3, kt, bias, pi);  /* scores = scale Q K^T, masked keys -1e30 */
    softmax(s, pi);
    dropped(s, i, pi, w);
    times(t, dh, 1.0f, w, t, 1, v, d3, out + (size_t)seq * t * d + h * dh, d);  /* out = W V */
}

static void backward_one(const Shape *s, int i, const float *qkv, const float *p, const float *d_out, float *d_qkv,
                         float *scratch) {
    const int t = s->t, tp = (t + LANES - 1) / LANES * LANES, dh = s->dh, d = s->heads * dh, d3 = 3 * d;
    const int seq = i / s->heads, h = i % s->heads;
    const size_t at = (size_t)seq * t * d3 + h * dh;
    const float *q = qkv + at, *k = q + d, *v = q + 2 * d, *pi = p + (size_t)i * t * t;
    const float *go = d_out + (size_t)seq * t * d + h * dh;
    float *dq = d_qkv + at, *dk = dq + d, *dv = dq + 2 * d;
    float *vt = scratch, *w = scratch + (size_t)dh * tp, *dw = w + (size_t)t * t, *zeros = dw + (size_t)t * t;
    for (int j = 0; j < tp; j++) zeros[j] = 0.0f;
    dropped(s, i, pi, w);
    times(t, dh, 1.0f, w, 1, t, go, d, dv, d3);  /* dV = W^T dO */
    transpose(t, tp, dh, v, d3, vt);
    dots(t, tp, dh, 1.0f, go, d, vt, zeros, dw);  /* dW = dO V^T */
    softmax_backward(s, pi, w, dw);  /* dw becomes dS */
    times(t, dh, s->scale, dw, t, 1, k, d3, dq, d3);  /* dQ = scale dS K */
    times(t, dh, s->scale, dw, 1, t, q, d3, dk, d3);  /* dK = scale dS^T Q */
}

void attention_forward(int threads, int b, int t, int heads, int dh, int cut, float drop_scale, uint64_t seed,
                       const float *qkv, const uint8_t *pad, float *p, float *out) {
    const Shape s = {b, t, heads, dh, cut, 1.0f / sqrtf((float)dh), drop_scale, seed};
#pragma omp parallel num_threads(threads)
    {
        float *scratch = malloc(sizeof(float) * ((size_t)(dh + 1) * (t + LANES) + 2 * (size_t)t * t));
#pragma omp for schedule(static)
        for (int i = 0; i < b * heads; i++) forward_one(&s, i, qkv, pad, p, out, scratch);
        free(scratch);
    }
}

void attention_backward(int threads, int b, int t, int heads, int dh, int cut, float drop_scale, uint64_t seed,
                        const float *qkv, const float *p, const float *d_out, float *d_qkv) {
    const Shape s = {b, t, heads, dh, cut, 1.0f / sqrtf((float)dh), drop_scale, seed};
#pragma omp parallel num_threads(threads)
    {
        float *scratch = malloc(sizeof(float) * ((size_t)(dh + 1) * (t + LANES) + 2 * (size_t)t * t));
#pragma omp for schedule(static)
        for (int i = 0; i < b * heads; i++) backward_one(&s, i, qkv, p, d_out, d_qkv, scratch);
        free(scratch);
    }
}
