/* One GRU layer's recurrence, forward and backward through time, for float32 on the CPU: the loops
 * of models.layers._GRUSteps without one PyTorch op dispatch per gate per step. Each step is one
 * matmul (BLAS sgemm, passed in by the caller: the one PyTorch itself links) and one pass over the
 * step's gates. The sequences of a batch are independent, so `threads` OpenMP threads (PyTorch's own
 * pool: the same libgomp) each run the whole recurrence of a slice of the batch, with no
 * synchronisation between steps; each thread's sgemm is single-threaded inside the parallel region.
 * Layouts (row-major, contiguous):
 *   gi  [steps, b, 3d]  input gates x W_ih^T + b_ih, in torch's gate order r | z | n
 *   w   [3d, d]         W_hh;  bias [3d]: b_hh
 *   g   [steps, b, 3d]  saved: r | z | W_hn h_{t-1} + b_hn
 *   n   [steps, b, d]   saved: the candidate state
 *   hs  [steps + 1, b, d]  hs[0] = 0 (zeroed by the caller), hs[t + 1] = h_t
 */
#include <math.h>
#include <stddef.h>
#include <string.h>

typedef void (*sgemm_fn)(const char *ta, const char *tb, const int *m, const int *n, const int *k,
                         const float *alpha, const float *a, const int *lda, const float *b, const int *ldb,
                         const float *beta, float *c, const int *ldc);

/* for x < -88, expf(-x) overflows to inf and the division gives 0, as IEEE arithmetic does under
 * -ffast-math too (nothing here tests for infinities); a NaN propagates */
static inline float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

/* Rows [i0, i0 + rows) of the batch (the slice of one thread). */
static void forward_rows(sgemm_fn sgemm, int steps, int b, int d, int i0, int rows, const float *restrict gi,
                         const float *restrict w, const float *restrict bias, float *restrict g, float *restrict n,
                         float *restrict hs) {
    const int d3 = 3 * d;
    const float one = 1.0f, zero = 0.0f;
    for (int t = 0; t < steps; t++) {
        const float *h = hs + (size_t)t * b * d;
        float *gt = g + (size_t)t * b * d3;
        if (t)  /* gt = h_{t-1} W_hh^T: column-major, gt^T [3d, rows] = W_hh [3d, d] . h^T [d, rows] */
            sgemm("T", "N", &d3, &rows, &d, &one, w, &d, h + (size_t)i0 * d, &d, &zero, gt + (size_t)i0 * d3, &d3);
        else
            memset(gt + (size_t)i0 * d3, 0, sizeof(float) * (size_t)rows * d3);
        for (int i = i0; i < i0 + rows; i++) {
            float *restrict row = gt + (size_t)i * d3;
            const float *restrict x = gi + ((size_t)t * b + i) * d3;
            const float *restrict hp = h + (size_t)i * d;
            float *restrict nt = n + ((size_t)t * b + i) * d;
            float *restrict ht = hs + ((size_t)(t + 1) * b + i) * d;
            for (int j = 0; j < 2 * d; j++)
                row[j] = sigmoid(x[j] + row[j] + bias[j]);
            for (int j = 0; j < d; j++) {
                float ghn = row[2 * d + j] + bias[2 * d + j];
                float c = tanhf(x[2 * d + j] + row[j] * ghn);
                row[2 * d + j] = ghn;
                nt[j] = c;
                ht[j] = c + row[d + j] * (hp[j] - c);
            }
        }
    }
}

void gru_forward(sgemm_fn sgemm, int threads, int steps, int b, int d, const float *gi, const float *w,
                 const float *bias, float *g, float *n, float *hs) {
    if (threads == 1) {  /* outside a parallel region, so that sgemm may use torch's threads itself */
        forward_rows(sgemm, steps, b, d, 0, b, gi, w, bias, g, n, hs);
        return;
    }
#pragma omp parallel for num_threads(threads) schedule(static, 1)
    for (int k = 0; k < threads; k++)
        forward_rows(sgemm, steps, b, d, b * k / threads, b * (k + 1) / threads - b * k / threads, gi, w, bias, g, n, hs);
}

/* d_out [steps, b, d] = dL/dh_t from above; dh [b, d] is scratch (dL/dh carried down the steps).
 * Writes d_gi [steps, b, 3d] (dL/d gi) and d_gh [steps, b, 3d] (dL/d(h_{t-1} W_hh^T + b_hh)); the
 * caller gets dL/dW_hh and dL/db_hh from d_gh with one matmul and one sum over all steps. */
static void backward_rows(sgemm_fn sgemm, int steps, int b, int d, int i0, int rows, const float *restrict w,
                          const float *restrict g, const float *restrict n, const float *restrict hs,
                          const float *restrict d_out, float *restrict dh, float *restrict d_gi, float *restrict d_gh) {
    const int d3 = 3 * d;
    const float one = 1.0f;
    memset(dh + (size_t)i0 * d, 0, sizeof(float) * (size_t)rows * d);
    for (int t = steps - 1; t >= 0; t--) {
        for (int i = i0; i < i0 + rows; i++) {
            const size_t at = (size_t)t * b + i;
            const float *restrict row = g + at * d3;
            const float *restrict nt = n + at * d;
            const float *restrict hp = hs + at * d;  /* hs[t] = h_{t-1} */
            const float *restrict up = d_out + at * d;
            float *restrict carry = dh + (size_t)i * d;
            float *restrict dgi = d_gi + at * d3;
            float *restrict dgh = d_gh + at * d3;
            for (int j = 0; j < d; j++) {
                float r = row[j], z = row[d + j], ghn = row[2 * d + j], c = nt[j];
                float dht = carry[j] + up[j];
                float dn = dht * (1.0f - z) * (1.0f - c * c);
                float dz = dht * (hp[j] - c) * z * (1.0f - z);
                float dr = dn * ghn * r * (1.0f - r);
                dgi[j] = dgh[j] = dr;
                dgi[d + j] = dgh[d + j] = dz;
                dgi[2 * d + j] = dn;
                dgh[2 * d + j] = dn * r;
                carry[j] = dht * z;
            }
        }
        if (t)  /* dh += d_gh[t] W_hh: column-major, dh^T [d, rows] += W_hh^T [d, 3d] . d_gh[t]^T [3d, rows] */
            sgemm("N", "N", &d, &rows, &d3, &one, w, &d, d_gh + ((size_t)t * b + i0) * d3, &d3, &one,
                  dh + (size_t)i0 * d, &d);
    }
}

void gru_backward(sgemm_fn sgemm, int threads, int steps, int b, int d, const float *w, const float *g,
                  const float *n, const float *hs, const float *d_out, float *dh, float *d_gi, float *d_gh) {
    if (threads == 1) {
        backward_rows(sgemm, steps, b, d, 0, b, w, g, n, hs, d_out, dh, d_gi, d_gh);
        return;
    }
#pragma omp parallel for num_threads(threads) schedule(static, 1)
    for (int k = 0; k < threads; k++)
        backward_rows(sgemm, steps, b, d, b * k / threads, b * (k + 1) / threads - b * k / threads, w, g, n, hs,
                      d_out, dh, d_gi, d_gh);
}
