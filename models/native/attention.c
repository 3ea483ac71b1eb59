/* Multi-head self-attention with key padding and dropout on the attention weights, forward and
 * backward, for float32 on the CPU: softmax(Q K^T / sqrt(dh), keys masked) dropped, times V, per
 * (sequence, head). Torch computes it as ~10 ops whose head split and merge copy the whole [B, T, 3d]
 * projection several times over with strided reads and writes (a third of a layer's step); here each
 * (sequence, head) reads its Q, K, V straight out of the in-projection's output and writes its
 * result (and, backward, its gradients) straight into place, one OpenMP thread per slice of the
 * B x H problems, each with single-threaded sgemms (BLAS, passed in by the caller; MKL's batched
 * sgemm was slower here). Layouts (row-major, contiguous):
 *   qkv [B, T, 3d]  (q | k | v, head h at columns h dh .. (h + 1) dh of each third)
 *   pad [B, T]      1 where the key is padding
 *   p   [B, H, T, T] saved softmax weights before dropout; out [B, T, d]
 * The dropout mask is mask.h's hash of the weight's flat index in [B, H, T, T] (as dropout.c draws it
 * for a tensor of that shape), recomputed in the backward pass.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "mask.h"

typedef void (*sgemm_fn)(const char *ta, const char *tb, const int *m, const int *n, const int *k,
                         const float *alpha, const float *a, const int *lda, const float *b, const int *ldb,
                         const float *beta, float *c, const int *ldc);

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
    for (int r = 0; r < s->t * s->t; r++)
        w[r] = top_byte(lo, hi, at + (uint32_t)r) >= c ? p[r] * s->drop_scale : 0.0f;
}

/* softmax over the unmasked keys of each row of problem i's scores, in place */
static void softmax(const Shape *s, int i, const uint8_t *restrict kp, float *restrict p) {
    const int t = s->t;
    for (int r = 0; r < t; r++) {
        float *restrict row = p + (size_t)r * t, top = -FLT_MAX, sum = 0.0f;  /* no infinities under -ffast-math */
        for (int j = 0; j < t; j++)
            if (!kp[j] && row[j] > top) top = row[j];
        for (int j = 0; j < t; j++) {
            row[j] = kp[j] ? 0.0f : expf(row[j] - top);
            sum += row[j];
        }
        float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
        for (int j = 0; j < t; j++) row[j] *= inv;
    }
}

/* d(weights) -> d(scores) of problem i, in place: through the dropout, then dS = P (dP - rowsum(dP P)) */
static void softmax_backward(const Shape *s, int i, const float *restrict p, float *restrict g) {
    const int t = s->t;
    const uint64_t base = (uint64_t)i * t * t;
    const uint32_t lo = (uint32_t)s->seed, hi = (uint32_t)(s->seed >> 32) ^ (uint32_t)(base >> 32);
    const uint32_t c = (uint32_t)s->cut;
    for (int r = 0; r < t; r++) {
        const float *restrict pr = p + (size_t)r * t;
        float *restrict gr = g + (size_t)r * t, dot = 0.0f;
        const uint32_t at = (uint32_t)base + (uint32_t)(r * t);
        for (int j = 0; j < t; j++) {
            gr[j] = top_byte(lo, hi, at + (uint32_t)j) >= c ? gr[j] * s->drop_scale : 0.0f;
            dot += gr[j] * pr[j];
        }
        for (int j = 0; j < t; j++) gr[j] = pr[j] * (gr[j] - dot);
    }
}

static void forward_one(sgemm_fn sgemm, const Shape *s, int i, const float *qkv, const uint8_t *pad, float *p,
                        float *out, float *w) {
    const int t = s->t, dh = s->dh, d = s->heads * dh, d3 = 3 * d, seq = i / s->heads, h = i % s->heads;
    const float zero = 0.0f, one = 1.0f;
    const float *q = qkv + (size_t)seq * t * d3 + h * dh, *k = q + d, *v = q + 2 * d;
    float *pi = p + (size_t)i * t * t;
    /* scores S = scale Q K^T, row-major [T, T] (column-major: S^T = K Q^T) */
    sgemm("T", "N", &t, &t, &dh, &s->scale, k, &d3, q, &d3, &zero, pi, &t);
    softmax(s, i, pad + (size_t)seq * t, pi);
    dropped(s, i, pi, w);
    /* out [T, dh] at row stride d = W V (column-major: O^T = V^T W^T) */
    sgemm("N", "N", &dh, &t, &t, &one, v, &d3, w, &t, &zero, out + (size_t)seq * t * d + h * dh, &d);
}

static void backward_one(sgemm_fn sgemm, const Shape *s, int i, const float *qkv, const float *p,
                         const float *d_out, float *d_qkv, float *w, float *dw) {
    const int t = s->t, dh = s->dh, d = s->heads * dh, d3 = 3 * d, seq = i / s->heads, h = i % s->heads;
    const float zero = 0.0f, one = 1.0f;
    const size_t at = (size_t)seq * t * d3 + h * dh;
    const float *q = qkv + at, *k = q + d, *v = q + 2 * d, *pi = p + (size_t)i * t * t;
    const float *go = d_out + (size_t)seq * t * d + h * dh;
    float *dq = d_qkv + at, *dk = dq + d, *dv = dq + 2 * d;
    dropped(s, i, pi, w);
    /* dV = W^T dO (column-major: dV^T = dO^T W);  dW = dO V^T (column-major: dW^T = V dO^T) */
    sgemm("N", "T", &dh, &t, &t, &one, go, &d, w, &t, &zero, dv, &d3);
    sgemm("T", "N", &t, &t, &dh, &one, v, &d3, go, &d, &zero, dw, &t);
    softmax_backward(s, i, pi, dw);
    /* dQ = scale dS K (column-major: dQ^T = K^T dS^T);  dK = scale dS^T Q (column-major: dK^T = Q^T dS) */
    sgemm("N", "N", &dh, &t, &t, &s->scale, k, &d3, dw, &t, &zero, dq, &d3);
    sgemm("N", "T", &dh, &t, &t, &s->scale, q, &d3, dw, &t, &zero, dk, &d3);
}

void attention_forward(sgemm_fn sgemm, int threads, int b, int t, int heads, int dh, int cut, float drop_scale,
                       uint64_t seed, const float *qkv, const uint8_t *pad, float *p, float *out) {
    const Shape s = {b, t, heads, dh, cut, 1.0f / sqrtf((float)dh), drop_scale, seed};
#pragma omp parallel num_threads(threads)
    {
        float *w = malloc(sizeof(float) * (size_t)t * t);
#pragma omp for schedule(static)
        for (int i = 0; i < b * heads; i++) forward_one(sgemm, &s, i, qkv, pad, p, out, w);
        free(w);
    }
}

void attention_backward(sgemm_fn sgemm, int threads, int b, int t, int heads, int dh, int cut, float drop_scale,
                        uint64_t seed, const float *qkv, const float *p, const float *d_out, float *d_qkv) {
    const Shape s = {b, t, heads, dh, cut, 1.0f / sqrtf((float)dh), drop_scale, seed};
#pragma omp parallel num_threads(threads)
    {
        float *w = malloc(sizeof(float) * (size_t)t * t * 2);
#pragma omp for schedule(static)
        for (int i = 0; i < b * heads; i++) backward_one(sgemm, &s, i, qkv, p, d_out, d_qkv, w, w + (size_t)t * t);
        free(w);
    }
}
