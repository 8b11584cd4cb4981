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
# sums, merged serially. Where the planes need no sample chunks (_by_channel), a task makes both
# passes over its channel, the second from L2.
#
# Signatures follow the contract (fastnn/_ops.Plan): inputs, outputs, training[, momentum, eps],
# n_threads (exactly that many threads run, fewer only with fewer tasks); the entries pick the dtype's
# functions by x's item size, take the arrays' data pointers and run under `with nogil:`.
from cython.parallel cimport prange
from libc.math cimport isfinite
from libc.stdlib cimport calloc, free, malloc

cimport numpy as cnp

from _common cimport real

cnp.import_array()


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
                             const float* k, const float* q, const float* r, int relu, Py_ssize_t rows,
                             Py_ssize_t stride, Py_ssize_t n, float* out)
    void fnn_bn_apply_cols_d(const double* a, const double* x, const double* y, int masked, const double* p,
                             const double* k, const double* q, const double* r, int relu, Py_ssize_t rows,
                             Py_ssize_t stride, Py_ssize_t n, double* out)
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
                             const real* k, const real* q, const real* r, bint relu, Py_ssize_t rows,
                             Py_ssize_t stride, Py_ssize_t n, real* out) noexcept nogil:
    if real is float:
        fnn_bn_apply_cols_f(a, x, y, masked, p, k, q, r, relu, rows, stride, n, out)
    else:
        fnn_bn_apply_cols_d(a, x, y, masked, p, k, q, r, relu, rows, stride, n, out)


cdef inline void _apply_rows(Py_ssize_t channels, Py_ssize_t size, const double* p, const double* k, const double* q,
                             const double* r, real* rows) noexcept nogil:
    if real is float:
        fnn_bn_apply_rows_f(channels, size, p, k, q, r, rows)
    else:
        fnn_bn_apply_rows_d(channels, size, p, k, q, r, rows)


cdef inline void _invstd(Py_ssize_t channels, const double* mean, const double* var, const double* weight, double eps,
                         double* invstd, double* scale, real* save_mean, real* save_invstd) noexcept nogil:
    if real is float:
        fnn_bn_invstd_f(channels, mean, var, weight, eps, invstd, scale, save_mean, save_invstd)
    else:
        fnn_bn_invstd_d(channels, mean, var, weight, eps, invstd, scale, save_mean, save_invstd)


cdef inline void _running(Py_ssize_t channels, double momentum, double count, const double* mean, const double* var,
                          real* running_mean, real* running_var) noexcept nogil:
    """The running statistics from a batch of `count` values per channel (the unbiased variance)."""
    cdef double unbiased = count / (count - 1.0) if count > 1 else 1.0
    if real is float:
        fnn_bn_running_f(channels, momentum, unbiased, mean, var, running_mean, running_var)
    else:
        fnn_bn_running_d(channels, momentum, unbiased, mean, var, running_mean, running_var)


cdef inline void _grad_coefficients(Py_ssize_t channels, double count, bint training, double* weight,
                                    const double* invstd, const double* s1, const double* s2, double* q, double* r,
                                    real* dweight, real* dbias) noexcept nogil:
    if real is float:
        fnn_bn_grad_coefficients_f(channels, count, training, weight, invstd, s1, s2, q, r, dweight, dbias)
    else:
        fnn_bn_grad_coefficients_d(channels, count, training, weight, invstd, s1, s2, q, r, dweight, dbias)


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
    cache lines of `line` elements, as many as a multiple of the threads (478 x 2977 float32 ran 3
    blocks of 1024 on 2 threads, one thread doing two: 0.89x torch), narrow enough that each thread
    has one before rows are split (split rows leave partial sums to merge serially: 128 x 1000
    float32 ran 8 row chunks of one block, its merge ~8% of the call)."""
    cdef ColumnTasks t
    t.blocks = max(1, (cols + cap - 1) // cap)  # no columns: no blocks, after the division
    t.blocks = (t.blocks + threads - 1) // threads * threads
    t.width = (cols + t.blocks - 1) // t.blocks
    t.width = max(line, (t.width + line - 1) // line * line)
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
    cdef Py_ssize_t j0 = block * tasks.width, first = chunk * tasks.rows
    cdef Py_ssize_t last = min(n, first + tasks.rows)
    if size < PLANE_MIN:
        if first < last:
            off = first * cols + j0
            _apply_cols(a + off if a != NULL else NULL, x + off if with_x else NULL, y + off, masked,
                        coefficients + j0, coefficients + cols + j0, coefficients + 2 * cols + j0,
                        coefficients + 3 * cols + j0, relu, last - first, cols, min(cols, j0 + tasks.width) - j0,
                        out + off)
        return
    for i in range(first, last):
        off = (i * channels + block) * size
        _apply_run(a + off if a != NULL else NULL, x + off if with_x else NULL, y + off, masked,
                   coefficients[block], coefficients[channels + block], coefficients[2 * channels + block],
                   coefficients[3 * channels + block], relu, size, out + off)


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
    _apply_rows(channels, per_channel, p, k, q, r, coefficients)
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


cdef bint _by_channel(Py_ssize_t n, Py_ssize_t channels, Py_ssize_t size, int threads) noexcept nogil:
    """Wide planes and enough channels that the rows are not split: each task then makes both passes
    over one channel, the second while its planes are still in L2 (32x64x32x32 float32: 256 KiB for
    the backward's dy and x), not after the whole tensor has gone through the cache, with the same
    arithmetic as the two sweeps (one row chunk: the same sums in the same order)."""
    return size >= PLANE_MIN and _row_chunks(n, channels, threads) == 1


cdef inline void _forward_channel(const real* x, const real* gamma, const real* beta, real* running_mean,
                                  real* running_var, bint training, double momentum, double eps, bint relu,
                                  Py_ssize_t n, Py_ssize_t channels, Py_ssize_t size, real* out, real* save_mean,
                                  real* save_invstd, Py_ssize_t c) noexcept nogil:
    """_batch_norm for channel c alone (_by_channel)."""
    cdef double weight = 1.0 if gamma == NULL else gamma[c]
    cdef double bias = 0.0 if beta == NULL else beta[c]
    cdef double center, s1 = 0, s2 = 0, mean, var, invstd, scale, zero = 0
    cdef Py_ssize_t i, off
    cdef real coefficients[4]  # p, k, q, r: _channel_apply's
    if training:
        center = x[c * size] if isfinite(x[c * size]) else 0  # as _batch_norm's
        for i in range(n):
            off = (i * channels + c) * size
            _sums_run(x + off, <real>center, x + off, <real>center, x + off, False, size, &s1, &s2)
        fnn_bn_moments(1, n * size, &center, &s1, &s2, &mean, &var)
        if running_mean != NULL:
            _running(1, momentum, n * size, &mean, &var, running_mean + c, running_var + c)
    else:
        mean = 0.0 if running_mean == NULL else running_mean[c]
        var = 1.0 if running_var == NULL else running_var[c]
    _invstd(1, &mean, &var, &weight, eps, &invstd, &scale, save_mean + c, save_invstd + c)
    _apply_rows(1, 1, &zero, &mean, &scale, &bias, coefficients)
    for i in range(n):
        off = (i * channels + c) * size
        _apply_run(NULL, x + off, x + off, False, coefficients[0], coefficients[1], coefficients[2], coefficients[3],
                   relu, size, out + off)


cdef inline void _backward_channel(const real* dy, const real* x, const real* y, bint masked, const real* gamma,
                                   const real* save_mean, const real* save_invstd, bint training, Py_ssize_t n,
                                   Py_ssize_t channels, Py_ssize_t size, real* dx, real* dweight, real* dbias,
                                   Py_ssize_t c) noexcept nogil:
    """_batch_norm_backward for channel c alone (_by_channel)."""
    cdef double p = 1.0 if gamma == NULL else gamma[c]
    cdef double mean = save_mean[c], invstd = save_invstd[c], s1 = 0, s2 = 0, q, r
    cdef Py_ssize_t i, off
    cdef real coefficients[4]
    for i in range(n):
        off = (i * channels + c) * size
        _sums_run(dy + off, 0, x + off, save_mean[c], y + off, masked, size, &s1, &s2)  # the saved mean: exact
    _grad_coefficients(1, n * size, training, &p, &invstd, &s1, &s2, &q, &r, dweight + c, dbias + c)  # p: dz's
    _apply_rows(1, 1, &p, &mean, &q, &r, coefficients)
    for i in range(n):
        off = (i * channels + c) * size
        _apply_run(dy + off, x + off if training else NULL, y + off, masked, coefficients[0], coefficients[1],
                   coefficients[2], coefficients[3], False, size, dx + off)


cdef inline void _load(double* row, const real* v, Py_ssize_t channels, double missing) noexcept nogil:
    """row[c] = v[c] in double, or `missing` where v is NULL (no affine parameter)."""
    cdef Py_ssize_t c
    for c in range(channels):
        row[c] = missing if v == NULL else v[c]


cdef int _batch_norm(const real* x, const real* gamma, const real* beta, real* running_mean, real* running_var,
                     bint training, double momentum, double eps, bint relu, Py_ssize_t n, Py_ssize_t channels,
                     Py_ssize_t size, real* out, real* save_mean, real* save_invstd, int threads) noexcept nogil:
    """The forward; running_mean/running_var NULL when not given (in training). -1 if out of memory."""
    cdef Py_ssize_t c
    if _by_channel(n, channels, size, threads):
        if threads == 1:
            for c in range(channels):
                _forward_channel(x, gamma, beta, running_mean, running_var, training, momentum, eps, relu, n,
                                 channels, size, out, save_mean, save_invstd, c)
        else:
            for c in prange(channels, schedule="static", num_threads=threads):
                _forward_channel(x, gamma, beta, running_mean, running_var, training, momentum, eps, relu, n,
                                 channels, size, out, save_mean, save_invstd, c)
        return 0
    cdef double* work = <double*>malloc((8 * channels + 1) * sizeof(double))
    if work == NULL:
        return -1
    cdef double* weight = work
    cdef double* bias = work + channels
    cdef double* mean = work + 2 * channels
    cdef double* var = work + 3 * channels
    cdef double* center = work + 4 * channels
    cdef double* s1 = work + 5 * channels
    cdef double* s2 = work + 6 * channels
    cdef double* scale = work + 7 * channels
    cdef Py_ssize_t count = n * size
    cdef int status = 0
    _load(weight, gamma, channels, 1.0)
    _load(bias, beta, channels, 0.0)
    if training:
        for c in range(channels):  # a non-finite first value would make every x - center NaN
            center[c] = x[c * size] if isfinite(x[c * size]) else 0
        status = _channel_sums(x, center, x, center, x, False, n, channels, size, s1, s2, threads)
        if status == 0:
            fnn_bn_moments(channels, count, center, s1, s2, mean, var)
            if running_mean != NULL:
                _running(channels, momentum, count, mean, var, running_mean, running_var)
    else:
        _load(mean, running_mean, channels, 0.0)
        _load(var, running_var, channels, 1.0)
    if status == 0:
        _invstd(channels, mean, var, weight, eps, s1, scale, save_mean, save_invstd)  # s1: invstd
        for c in range(channels):
            s2[c] = 0
        status = _channel_apply(NULL, x, x, False, s2, mean, scale, bias, relu, True, n, channels, size, out, threads)
    free(work)
    return status


cdef int _batch_norm_backward(const real* dy, const real* x, const real* y, bint masked, const real* gamma,
                              const real* save_mean, const real* save_invstd, bint training, Py_ssize_t n,
                              Py_ssize_t channels, Py_ssize_t size, real* dx, real* dweight, real* dbias,
                              int threads) noexcept nogil:
    """The backward; y is x when not masked. -1 if out of memory."""
    cdef Py_ssize_t c
    if _by_channel(n, channels, size, threads):
        if threads == 1:
            for c in range(channels):
                _backward_channel(dy, x, y, masked, gamma, save_mean, save_invstd, training, n, channels, size, dx,
                                  dweight, dbias, c)
        else:
            for c in prange(channels, schedule="static", num_threads=threads):
                _backward_channel(dy, x, y, masked, gamma, save_mean, save_invstd, training, n, channels, size, dx,
                                  dweight, dbias, c)
        return 0
    cdef double* work = <double*>malloc((8 * channels + 1) * sizeof(double))
    if work == NULL:
        return -1
    cdef double* weight = work
    cdef double* mean = work + channels
    cdef double* invstd = work + 2 * channels
    cdef double* zeros = work + 3 * channels
    cdef double* s1 = work + 4 * channels
    cdef double* s2 = work + 5 * channels
    cdef double* q = work + 6 * channels
    cdef double* r = work + 7 * channels
    cdef Py_ssize_t count = n * size
    cdef int status
    _load(weight, gamma, channels, 1.0)
    _load(mean, save_mean, channels, 0.0)
    _load(invstd, save_invstd, channels, 0.0)
    _load(zeros, <real*>NULL, channels, 0.0)
    status = _channel_sums(dy, zeros, x, mean, y, masked, n, channels, size, s1, s2, threads)
    if status == 0:
        _grad_coefficients(channels, count, training, weight, invstd, s1, s2, q, r, dweight, dbias)  # weight: dz's
        status = _channel_apply(dy, x, y, masked, weight, mean, q, r, False, training, n, channels, size, dx, threads)
    free(work)
    return status


# The entries take the dispatcher's arrays (C-contiguous, x's dtype: fastnn/_ops.py's contract) by their
# data pointers: typed memoryviews of seven flattened views cost ~2 us a call, a third of a 64x37
# forward.
cdef inline real* _data(object a, real* dtype):
    """a's data pointer (dtype: NULL, only picks real), NULL for None."""
    return NULL if a is None else <real*>cnp.PyArray_DATA(<cnp.ndarray>a)


cdef _forward_typed(x, gamma, beta, running_mean, running_var, y, save_mean, save_invstd, bint training,
                    double momentum, double eps, bint relu, int n_threads, real* dtype):
    cdef Py_ssize_t n = x.shape[0], channels = x.shape[1], size = x.shape[2] * x.shape[3] if x.ndim == 4 else 1
    cdef const real* xp = _data(x, dtype)
    cdef const real* gp = _data(gamma, dtype)
    cdef const real* bp = _data(beta, dtype)
    cdef real* rm = _data(running_mean, dtype)
    cdef real* rv = _data(running_var, dtype)
    cdef real* yp = _data(y, dtype)
    cdef real* mp = _data(save_mean, dtype)
    cdef real* sp = _data(save_invstd, dtype)
    cdef int status
    with nogil:
        status = _batch_norm(xp, gp, bp, rm, rv, training, momentum, eps, relu, n, channels, size, yp, mp, sp,
                             n_threads)
    if status:
        raise MemoryError("batch_norm: out of memory for the partial sums")


cdef _backward_typed(dy, y, x, gamma, save_mean, save_invstd, dx, dgamma, dbeta, bint training, int n_threads,
                     real* dtype):
    cdef Py_ssize_t n = x.shape[0], channels = x.shape[1], size = x.shape[2] * x.shape[3] if x.ndim == 4 else 1
    cdef bint masked = y is not None
    cdef const real* dyp = _data(dy, dtype)
    cdef const real* xp = _data(x, dtype)
    cdef const real* yp = xp
    cdef const real* gp = _data(gamma, dtype)
    cdef const real* mp = _data(save_mean, dtype)
    cdef const real* sp = _data(save_invstd, dtype)
    cdef real* dxp = _data(dx, dtype)
    cdef real* dgp = _data(dgamma, dtype)
    cdef real* dbp = _data(dbeta, dtype)
    cdef int status
    if masked:
        yp = _data(y, dtype)
    with nogil:
        status = _batch_norm_backward(dyp, xp, yp, masked, gp, mp, sp, training, n, channels, size, dxp, dgp, dbp,
                                      n_threads)
    if status:
        raise MemoryError("batch_norm_backward: out of memory for the partial sums")


def _forward(x, gamma, beta, running_mean, running_var, y, save_mean, save_invstd, bint training, double momentum,
             double eps, bint relu, int n_threads):
    if x.dtype.itemsize == 4:
        _forward_typed(x, gamma, beta, running_mean, running_var, y, save_mean, save_invstd, training, momentum,
                       eps, relu, n_threads, <float*>NULL)
    else:
        _forward_typed(x, gamma, beta, running_mean, running_var, y, save_mean, save_invstd, training, momentum,
                       eps, relu, n_threads, <double*>NULL)


def _backward(dy, y, x, gamma, save_mean, save_invstd, dx, dgamma, dbeta, bint training, int n_threads):
    if x.dtype.itemsize == 4:
        _backward_typed(dy, y, x, gamma, save_mean, save_invstd, dx, dgamma, dbeta, training, n_threads,
                        <float*>NULL)
    else:
        _backward_typed(dy, y, x, gamma, save_mean, save_invstd, dx, dgamma, dbeta, training, n_threads,
                        <double*>NULL)


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
