# Cython/OpenMP batch-norm kernels; the loops over contiguous runs are in batchnorm_loops.h.
#
# x is viewed as (N, C, S), S = H*W (1 for (N, D) inputs). Each direction makes two passes:
#   forward:  sums of (x - k) and (x - k)^2, k = x[0, c, 0] (shifted sums keep float32 exact), then
#             y = (x - mean) * gamma * invstd + beta            (relu'd for batch_norm_relu)
#   backward: sums of dz and dz * (x - k), k = mean rounded to x's dtype (corrected to x - mean in
#             double; dz = dy, zeroed where y <= 0 after a relu), then
#             dx = dz * p + (x - mean) * q + r                  (p, q, r per channel)
# The elementwise pass runs in x's dtype, about the mean rounded to it (x - k is exact near the mean).
# Wide planes (S >= PLANE_MIN) are reduced per (sample chunk, channel) along the plane; narrower
# inputs as an (N, C*S) matrix by column blocks, in x's dtype over runs of rows. Per-task partial
# sums, merged serially.
#
# Signatures follow the contract (fastnn/_ops.Plan): inputs, outputs, training[, momentum, eps],
# n_threads (exactly that many threads run, fewer only with fewer tasks); the fused `def` functions
# dispatch on the dtype and run under `with nogil:`.
from cython.parallel cimport prange
from libc.math cimport isfinite
from libc.stdlib cimport calloc, free, malloc

import numpy as np

from _common cimport real


cdef extern from "batchnorm_loops.h" nogil:
    void fnn_bn_sums_run_f(const float* a, float ac, const float* x, float xc, const float* y, int masked,
                           Py_ssize_t n, double* s1, double* s2)
    void fnn_bn_sums_run_d(const double* a, double ac, const double* x, double xc, const double* y, int masked,
                           Py_ssize_t n, double* s1, double* s2)
    void fnn_bn_sums_cols_f(const float* a, const float* ac, const float* x, const float* xc, const float* y,
                            int masked, Py_ssize_t rows, Py_ssize_t stride, Py_ssize_t n, float* t1, float* t2,
                            double* s1, double* s2)
    void fnn_bn_sums_cols_d(const double* a, const double* ac, const double* x, const double* xc, const double* y,
                            int masked, Py_ssize_t rows, Py_ssize_t stride, Py_ssize_t n, double* t1, double* t2,
                            double* s1, double* s2)
    void fnn_bn_apply_run_f(const float* a, const float* x, const float* y, int masked, float p, float k, float q,
                            float r, int relu, Py_ssize_t n, float* out)
    void fnn_bn_apply_run_d(const double* a, const double* x, const double* y, int masked, double p, double k,
                            double q, double r, int relu, Py_ssize_t n, double* out)
    void fnn_bn_apply_cols_f(const float* a, const float* x, const float* y, int masked, const float* p,
                             const float* k, const float* q, const float* r, int relu, Py_ssize_t n, float* out)
    void fnn_bn_apply_cols_d(const double* a, const double* x, const double* y, int masked, const double* p,
                             const double* k, const double* q, const double* r, int relu, Py_ssize_t n,
                             double* out)
    void fnn_bn_moments(Py_ssize_t channels, double count, const double* center, const double* s1,
                        const double* s2, double* mean, double* var)
    void fnn_bn_merge(Py_ssize_t channels, Py_ssize_t size, Py_ssize_t chunks, const double* partial, double* s1,
                      double* s2)
    void fnn_bn_repeat_f(const double* v, Py_ssize_t channels, Py_ssize_t size, float* out)
    void fnn_bn_repeat_d(const double* v, Py_ssize_t channels, Py_ssize_t size, double* out)
    void fnn_bn_invstd_f(Py_ssize_t channels, const double* mean, const double* var, const double* weight, double eps,
                         double* invstd, double* scale, float* save_mean, float* save_invstd)
    void fnn_bn_invstd_d(Py_ssize_t channels, const double* mean, const double* var, const double* weight, double eps,
                         double* invstd, double* scale, double* save_mean, double* save_invstd)
    void fnn_bn_running_f(Py_ssize_t channels, double momentum, double unbiased, const double* mean, const double* var,
                          float* running_mean, float* running_var)
    void fnn_bn_running_d(Py_ssize_t channels, double momentum, double unbiased, const double* mean, const double* var,
                          double* running_mean, double* running_var)
    void fnn_bn_grad_coefficients_f(Py_ssize_t channels, double count, int training, double* weight,
                                    const double* invstd, const double* s1, const double* s2, double* q, double* r,
                                    float* dweight, float* dbias)
    void fnn_bn_grad_coefficients_d(Py_ssize_t channels, double count, int training, double* weight,
                                    const double* invstd, const double* s1, const double* s2, double* q, double* r,
                                    double* dweight, double* dbias)
    void fnn_bn_apply_rows_f(Py_ssize_t channels, Py_ssize_t size, const double* p, const double* k, const double* q,
                             const double* r, float* rows)
    void fnn_bn_apply_rows_d(Py_ssize_t channels, Py_ssize_t size, const double* p, const double* k, const double* q,
                             const double* r, double* rows)


# Planes at least this long are reduced along the plane; below, as columns of the (N, C*S) matrix
# (a 7x7 plane would waste most of each vector).
cdef Py_ssize_t PLANE_MIN = 64
# Columns per task of the matrix path: the statistics' accumulator rows stay in L1, as do the
# elementwise pass's coefficient rows.
cdef Py_ssize_t COLUMN_BLOCK = 1024
cdef Py_ssize_t APPLY_BLOCK = 1024


cdef inline void _sums_run(const real* a, real ac, const real* x, real xc, const real* y, bint masked,
                           Py_ssize_t n, double* s1, double* s2) noexcept nogil:
    if real is float:
        fnn_bn_sums_run_f(a, ac, x, xc, y, masked, n, s1, s2)
    else:
        fnn_bn_sums_run_d(a, ac, x, xc, y, masked, n, s1, s2)


cdef inline void _sums_cols(const real* a, const real* ac, const real* x, const real* xc, const real* y,
                            bint masked, Py_ssize_t rows, Py_ssize_t stride, Py_ssize_t n, real* t1, real* t2,
                            double* s1, double* s2) noexcept nogil:
    if real is float:
        fnn_bn_sums_cols_f(a, ac, x, xc, y, masked, rows, stride, n, t1, t2, s1, s2)
    else:
        fnn_bn_sums_cols_d(a, ac, x, xc, y, masked, rows, stride, n, t1, t2, s1, s2)


cdef inline void _apply_run(const real* a, const real* x, const real* y, bint masked, real p, real k, real q,
                            real r, bint relu, Py_ssize_t n, real* out) noexcept nogil:
    if real is float:
        fnn_bn_apply_run_f(a, x, y, masked, p, k, q, r, relu, n, out)
    else:
        fnn_bn_apply_run_d(a, x, y, masked, p, k, q, r, relu, n, out)


cdef inline void _apply_cols(const real* a, const real* x, const real* y, bint masked, const real* p,
                             const real* k, const real* q, const real* r, bint relu, Py_ssize_t n,
                             real* out) noexcept nogil:
    if real is float:
        fnn_bn_apply_cols_f(a, x, y, masked, p, k, q, r, relu, n, out)
    else:
        fnn_bn_apply_cols_d(a, x, y, masked, p, k, q, r, relu, n, out)


cdef Py_ssize_t _row_chunks(Py_ssize_t n_rows, Py_ssize_t n_tasks, int threads) noexcept nogil:
    """Split the rows too when the other tasks cannot keep the threads busy (4 tasks per thread)."""
    cdef Py_ssize_t wanted = 4 * threads
    if n_tasks >= wanted or n_tasks == 0:
        return 1
    return max(1, min(n_rows, (wanted + n_tasks - 1) // n_tasks))


cdef struct ColumnTasks:
    Py_ssize_t width, blocks, chunks, rows  # columns per block, blocks, row chunks, rows per chunk


cdef ColumnTasks _column_tasks(Py_ssize_t n_rows, Py_ssize_t cols, int threads, Py_ssize_t line,
                               Py_ssize_t cap) noexcept nogil:
    """The matrix path's tasks (row chunk, block of columns): blocks of at most cap columns, whole
    cache lines of `line` elements, narrow enough that each thread has one before rows are split
    (split rows leave partial sums to merge serially: 128 x 1000 float32 ran 8 row chunks of one
    block, its merge ~8% of the call)."""
    cdef ColumnTasks t
    t.width = (cols + threads - 1) // threads
    t.width = max(line, min(cap, (t.width + line - 1) // line * line))
    t.blocks = (cols + t.width - 1) // t.width
    t.chunks = 1 if t.blocks >= threads else _row_chunks(n_rows, t.blocks, threads)
    t.rows = (n_rows + t.chunks - 1) // t.chunks
    return t


cdef real* _repeat(const double* v, Py_ssize_t channels, Py_ssize_t size, real* dtype) noexcept nogil:
    """v[c] rounded to real, repeated size times per channel (dtype: NULL, only picks real); NULL if out
    of memory."""
    cdef real* out = <real*>malloc((channels * size + 1) * sizeof(real))
    if out != NULL:
        if real is float:
            fnn_bn_repeat_f(v, channels, size, out)
        else:
            fnn_bn_repeat_d(v, channels, size, out)
    return out


cdef inline void _plane_sums_task(const real* a, const real* ac, const real* x, const real* xc, const real* y,
                                  bint masked, Py_ssize_t n, Py_ssize_t channels, Py_ssize_t size, Py_ssize_t chunks,
                                  Py_ssize_t rows, Py_ssize_t task, double* partial) noexcept nogil:
    cdef Py_ssize_t chunk = task // channels, c = task % channels, i, off
    for i in range(chunk * rows, min(n, chunk * rows + rows)):
        off = (i * channels + c) * size
        _sums_run(a + off, ac[c], x + off, xc[c], y + off, masked, size, &partial[task],
                  &partial[chunks * channels + task])


cdef int _plane_sums(const real* a, const real* ac, const real* x, const real* xc, const real* y, bint masked,
                     Py_ssize_t n, Py_ssize_t channels, Py_ssize_t size, double* s1, double* s2,
                     int threads) noexcept nogil:
    """_channel_sums along planes of size >= PLANE_MIN: tasks (row chunk, channel), partials merged
    serially; -1 if out of memory."""
    cdef Py_ssize_t chunks = _row_chunks(n, channels, threads), rows, task
    cdef double* partial = <double*>calloc(2 * chunks * channels + 1, sizeof(double))
    if partial == NULL:
        return -1
    rows = (n + chunks - 1) // chunks
    if threads == 1:
        for task in range(chunks * channels):
            _plane_sums_task(a, ac, x, xc, y, masked, n, channels, size, chunks, rows, task, partial)
    else:
        for task in prange(chunks * channels, schedule="static", num_threads=threads):
            _plane_sums_task(a, ac, x, xc, y, masked, n, channels, size, chunks, rows, task, partial)
    fnn_bn_merge(channels, 1, chunks, partial, s1, s2)
    free(partial)
    return 0


cdef inline void _column_sums_task(const real* a, const real* ac, const real* x, const real* xc, const real* y,
                                   bint masked, Py_ssize_t n, Py_ssize_t cols, const ColumnTasks* tasks,
                                   Py_ssize_t task, real* scratch, double* partial) noexcept nogil:
    cdef Py_ssize_t chunk = task // tasks.blocks, width = tasks.width, i = chunk * tasks.rows
    cdef Py_ssize_t j0 = (task % tasks.blocks) * width, off = i * cols + j0
    _sums_cols(a + off, ac + j0, x + off, xc + j0, y + off, masked, max(0, min(n, i + tasks.rows) - i), cols,
               min(cols, j0 + width) - j0, scratch + 2 * task * width, scratch + (2 * task + 1) * width,
               partial + chunk * cols + j0, partial + (tasks.chunks + chunk) * cols + j0)


cdef int _column_sums(const real* a, const real* ac, const real* x, const real* xc, const real* y, bint masked,
                      Py_ssize_t n, Py_ssize_t channels, Py_ssize_t size, double* s1, double* s2,
                      int threads) noexcept nogil:
    """_channel_sums of the (N, C*S) matrix: tasks (row chunk, block of columns: _column_tasks),
    per-column partials merged serially; -1 if out of memory."""
    cdef Py_ssize_t cols = channels * size, task
    cdef ColumnTasks tasks = _column_tasks(n, cols, threads, 64 // sizeof(real), COLUMN_BLOCK)
    cdef double* partial = <double*>calloc(2 * tasks.chunks * cols + 1, sizeof(double))
    cdef real* scratch = <real*>malloc((2 * tasks.chunks * tasks.blocks * tasks.width + 1) * sizeof(real))
    if partial == NULL or scratch == NULL:
        free(partial)
        free(scratch)
        return -1
    if threads == 1:
        for task in range(tasks.chunks * tasks.blocks):
            _column_sums_task(a, ac, x, xc, y, masked, n, cols, &tasks, task, scratch, partial)
    else:
        for task in prange(tasks.chunks * tasks.blocks, schedule="static", num_threads=threads):
            _column_sums_task(a, ac, x, xc, y, masked, n, cols, &tasks, task, scratch, partial)
    fnn_bn_merge(channels, size, tasks.chunks, partial, s1, s2)
    free(partial)
    free(scratch)
    return 0


cdef int _channel_sums(const real* a, const double* a_center, const real* x, const double* x_center,
                       const real* y, bint masked, Py_ssize_t n, Py_ssize_t channels, Py_ssize_t size,
                       double* s1, double* s2, int threads) noexcept nogil:
    """s1[c] = sum of u, s2[c] = sum of u * (x - x_center[c]); -1 if out of memory.

    The sums run in real about the centers rounded to real (a_center must be exact in real), then
    s2 is corrected for the rounding of x_center."""
    cdef Py_ssize_t c, per_channel = 1 if size >= PLANE_MIN else size
    cdef real* ac = _repeat(a_center, channels, per_channel, <real*>NULL)
    # the same centers as one array: the loops see the forward's statistics (a is x) by pointers
    cdef real* xc = ac if x_center == a_center else _repeat(x_center, channels, per_channel, <real*>NULL)
    cdef int status = -1
    if ac != NULL and xc != NULL:
        if size >= PLANE_MIN:
            status = _plane_sums(a, ac, x, xc, y, masked, n, channels, size, s1, s2, threads)
        else:
            status = _column_sums(a, ac, x, xc, y, masked, n, channels, size, s1, s2, threads)
    if status == 0:
        for c in range(channels):  # u * (x - x_center) = u * (x - xc) - u * (x_center - xc)
            s2[c] -= (x_center[c] - <double>xc[c * per_channel]) * s1[c]
    if xc != ac:
        free(xc)
    free(ac)
    return status


cdef inline void _apply_task(const real* a, const real* x, const real* y, bint masked, const real* coefficients,
                             bint relu, bint with_x, Py_ssize_t n, Py_ssize_t channels, Py_ssize_t size,
                             const ColumnTasks* tasks, Py_ssize_t task, real* out) noexcept nogil:
    """One task of _channel_apply: (row chunk, channel) along planes, (row chunk, block of columns) in
    the matrix."""
    cdef Py_ssize_t chunk = task // tasks.blocks, block = task % tasks.blocks, cols = channels * size, i, off
    cdef Py_ssize_t j0 = block * tasks.width
    cdef const real* a_run = NULL
    cdef const real* x_run = NULL
    for i in range(chunk * tasks.rows, min(n, chunk * tasks.rows + tasks.rows)):
        if size >= PLANE_MIN:
            off = (i * channels + block) * size
        else:
            off = i * cols + j0
        if a != NULL:
            a_run = a + off
        if with_x:
            x_run = x + off
        if size >= PLANE_MIN:
            _apply_run(a_run, x_run, y + off, masked, coefficients[block], coefficients[channels + block],
                       coefficients[2 * channels + block], coefficients[3 * channels + block], relu, size, out + off)
        else:
            _apply_cols(a_run, x_run, y + off, masked, coefficients + j0, coefficients + cols + j0,
                        coefficients + 2 * cols + j0, coefficients + 3 * cols + j0, relu,
                        min(cols, j0 + tasks.width) - j0, out + off)


cdef int _channel_apply(const real* a, const real* x, const real* y, bint masked, const double* p,
                        const double* k, const double* q, const double* r, bint relu, bint with_x, Py_ssize_t n,
                        Py_ssize_t channels, Py_ssize_t size, real* out, int threads) noexcept nogil:
    """out = u * p + (x - k) * q + r per channel (no u term when a is NULL; no x term unless with_x:
    eval's backward is dz * p whatever x is, inf included), relu'd if asked; -1 if out of memory.

    The elementwise arithmetic is in x's dtype, about k rounded to it (x - k stays exact near the
    mean), the rounding of k folded into r."""
    cdef Py_ssize_t chunks, rows, task
    cdef ColumnTasks tasks
    # rows p, k, q, r: per channel along planes, per column (each channel's repeated) in the matrix
    cdef Py_ssize_t per_channel = 1 if size >= PLANE_MIN else size
    cdef real* coefficients = <real*>malloc((4 * channels * per_channel + 1) * sizeof(real))
    if coefficients == NULL:
        return -1
    if real is float:
        fnn_bn_apply_rows_f(channels, per_channel, p, k, q, r, coefficients)
    else:
        fnn_bn_apply_rows_d(channels, per_channel, p, k, q, r, coefficients)
    if size >= PLANE_MIN:  # tasks (row chunk, channel)
        tasks.blocks = channels
        tasks.chunks = _row_chunks(n, channels, threads)
        tasks.rows = (n + tasks.chunks - 1) // tasks.chunks
    else:
        tasks = _column_tasks(n, channels * size, threads, 64 // sizeof(real), APPLY_BLOCK)
    if threads == 1:
        for task in range(tasks.chunks * tasks.blocks):
            _apply_task(a, x, y, masked, coefficients, relu, with_x, n, channels, size, &tasks, task, out)
    else:
        for task in prange(tasks.chunks * tasks.blocks, schedule="static", num_threads=threads):
            _apply_task(a, x, y, masked, coefficients, relu, with_x, n, channels, size, &tasks, task, out)
    free(coefficients)
    return 0


cdef int _batch_norm(const real[::1] x, Py_ssize_t n, Py_ssize_t channels, Py_ssize_t size,
                     double[:, ::1] work, bint training, real[::1] running_mean, real[::1] running_var,
                     double momentum, double eps, bint relu, real[::1] out, real[::1] save_mean,
                     real[::1] save_invstd, int threads) noexcept:
    """work rows: weight, bias, mean, var (inputs in eval; filled in training), then scratch."""
    cdef double* weight = &work[0, 0]
    cdef double* bias = &work[1, 0]
    cdef double* mean = &work[2, 0]
    cdef double* var = &work[3, 0]
    cdef double* center = &work[4, 0]
    cdef double* s1 = &work[5, 0]
    cdef double* s2 = &work[6, 0]
    cdef double* scale = &work[7, 0]
    cdef Py_ssize_t c, count = n * size
    cdef double unbiased
    with nogil:
        if training:
            for c in range(channels):  # a non-finite first value would make every x - center NaN
                center[c] = x[c * size] if isfinite(x[c * size]) else 0
            if _channel_sums(&x[0], center, &x[0], center, &x[0], False, n, channels, size, s1, s2, threads):
                return -1
            fnn_bn_moments(channels, count, center, s1, s2, mean, var)
            if running_mean.shape[0]:
                unbiased = count / (count - 1.0) if count > 1 else 1.0
                if real is float:
                    fnn_bn_running_f(channels, momentum, unbiased, mean, var, &running_mean[0], &running_var[0])
                else:
                    fnn_bn_running_d(channels, momentum, unbiased, mean, var, &running_mean[0], &running_var[0])
        if real is float:  # s1: invstd
            fnn_bn_invstd_f(channels, mean, var, weight, eps, s1, scale, &save_mean[0], &save_invstd[0])
        else:
            fnn_bn_invstd_d(channels, mean, var, weight, eps, s1, scale, &save_mean[0], &save_invstd[0])
        for c in range(channels):
            s2[c] = 0
        return _channel_apply(NULL, &x[0], &x[0], False, s2, mean, scale, bias, relu, True, n, channels, size,
                              &out[0], threads)


cdef int _batch_norm_backward(const real[::1] dy, const real[::1] x, const real[::1] y, bint masked,
                              Py_ssize_t n, Py_ssize_t channels, Py_ssize_t size, double[:, ::1] work,
                              bint training, real[::1] dx, real[::1] dweight, real[::1] dbias,
                              int threads) noexcept:
    """work rows: weight, mean, invstd (inputs), then scratch."""
    cdef double* weight = &work[0, 0]
    cdef double* mean = &work[1, 0]
    cdef double* invstd = &work[2, 0]
    cdef double* zeros = &work[3, 0]
    cdef double* s1 = &work[4, 0]
    cdef double* s2 = &work[5, 0]
    cdef double* q = &work[6, 0]
    cdef double* r = &work[7, 0]
    cdef Py_ssize_t c, count = n * size
    with nogil:
        for c in range(channels):
            zeros[c] = 0
        if _channel_sums(&dy[0], zeros, &x[0], mean, &y[0], masked, n, channels, size, s1, s2, threads):
            return -1
        if real is float:  # weight becomes the dz coefficient
            fnn_bn_grad_coefficients_f(channels, count, training, weight, invstd, s1, s2, q, r, &dweight[0], &dbias[0])
        else:
            fnn_bn_grad_coefficients_d(channels, count, training, weight, invstd, s1, s2, q, r, &dweight[0], &dbias[0])
        return _channel_apply(&dy[0], &x[0], &y[0], masked, weight, mean, q, r, False, training, n, channels, size,
                              &dx[0], threads)


def _geometry(x):
    """(N, C, S) with S = H*W (1 for (N, D))."""
    return x.shape[0], x.shape[1], (x.shape[2] * x.shape[3] if x.ndim == 4 else 1)


def _with_spare(a):
    """A flat view of a, or a one-element stand-in when a is empty (its address is taken, never read)."""
    return a.reshape(-1) if a.size else np.zeros(1, a.dtype)


def _forward_real(const real[::1] x, Py_ssize_t n, Py_ssize_t channels, Py_ssize_t size, double[:, ::1] work,
                  bint training, real[::1] running_mean, real[::1] running_var, double momentum, double eps,
                  bint relu, real[::1] y, real[::1] save_mean, real[::1] save_invstd, int n_threads):
    if _batch_norm(x, n, channels, size, work, training, running_mean, running_var, momentum, eps, relu, y,
                   save_mean, save_invstd, n_threads):
        raise MemoryError("batch_norm: out of memory for the partial sums")


def _backward_real(const real[::1] dy, const real[::1] x, const real[::1] y, bint masked, Py_ssize_t n,
                   Py_ssize_t channels, Py_ssize_t size, double[:, ::1] work, bint training, real[::1] dx,
                   real[::1] dgamma, real[::1] dbeta, int n_threads):
    if _batch_norm_backward(dy, x, y, masked, n, channels, size, work, training, dx, dgamma, dbeta, n_threads):
        raise MemoryError("batch_norm_backward: out of memory for the partial sums")


def _forward(x, gamma, beta, running_mean, running_var, y, save_mean, save_invstd, training, momentum, eps, relu,
             n_threads):
    n, channels, size = _geometry(x)
    work = np.empty((8, channels + 1))  # one spare column: &work[i, 0] exists when channels == 0
    work[0, :channels] = 1.0 if gamma is None else gamma
    work[1, :channels] = 0.0 if beta is None else beta
    if not training:
        work[2, :channels] = running_mean
        work[3, :channels] = running_var
    if not training or running_mean is None:
        running_mean = running_var = np.empty(0, x.dtype)
    # one spare element: &x[0] exists for empty inputs
    _forward_real(_with_spare(x), n, channels, size, work, training, running_mean, running_var, momentum, eps,
                  relu, _with_spare(y), _with_spare(save_mean), _with_spare(save_invstd), n_threads)


def _backward(dy, y, x, gamma, save_mean, save_invstd, dx, dgamma, dbeta, training, n_threads):
    n, channels, size = _geometry(x)
    work = np.empty((8, channels + 1))
    work[0, :channels] = 1.0 if gamma is None else gamma
    work[1, :channels] = save_mean
    work[2, :channels] = save_invstd
    masked = y is not None
    flat_x = _with_spare(x)
    _backward_real(_with_spare(dy), flat_x, _with_spare(y) if masked else flat_x, masked, n, channels, size, work,
                   training, _with_spare(dx), _with_spare(dgamma), _with_spare(dbeta), n_threads)


def batch_norm(x, gamma, beta, running_mean, running_var, y, save_mean, save_invstd, training, momentum, eps,
               n_threads):
    _forward(x, gamma, beta, running_mean, running_var, y, save_mean, save_invstd, training, momentum, eps, False,
             n_threads)


def batch_norm_backward(dy, x, gamma, save_mean, save_invstd, dx, dgamma, dbeta, training, n_threads):
    _backward(dy, None, x, gamma, save_mean, save_invstd, dx, dgamma, dbeta, training, n_threads)


def batch_norm_relu(x, gamma, beta, running_mean, running_var, y, save_mean, save_invstd, training, momentum, eps,
                    n_threads):
    _forward(x, gamma, beta, running_mean, running_var, y, save_mean, save_invstd, training, momentum, eps, True,
             n_threads)


def batch_norm_relu_backward(dy, y, x, gamma, save_mean, save_invstd, dx, dgamma, dbeta, training, n_threads):
    _backward(dy, y, x, gamma, save_mean, save_invstd, dx, dgamma, dbeta, training, n_threads)
