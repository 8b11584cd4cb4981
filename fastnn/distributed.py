"""Data-parallel training over MPI (mpi4py): `DataParallel` and synchronized batch norm.

One process per rank (``mpiexec -n 4 python train.py``), each holding a full copy of the model
and working on its slice of every global batch, as PyTorch's DistributedDataParallel does:

- the wrapped model's parameters and buffers are broadcast from rank 0 when it is wrapped;
- ``backward`` weights each rank's gradient by its share of the global batch (slices may be
  uneven, even empty) and sums the weighted gradients with non-blocking allreduces over flat
  buckets, each started as soon as the layers it holds have their gradients, so the reduction
  of the late layers overlaps the backward of the early ones;
- BatchNorm layers become `SyncBatchNorm1d` / `SyncBatchNorm2d`: statistics of the global batch
  (one allgather of per-rank count, mean and sum of squared deviations in the forward, one
  allreduce of the gradient sums in the backward), so training does not depend on the number of
  ranks: every rank ends with the parameters one process gets on the same global batches, up to
  the rounding of the reduction order.

`fastnn.train.Solver(..., comm=comm)` trains this way. mpi4py is imported only when a function
here needs it (``pip install "fastnn[distributed]"`` brings mpi4py and an MPI library).
"""
import os
import threading
import time

import numpy as np

from . import _threads
from . import nn
from .batchnorm import batch_norm, batch_norm_backward
from ._validation import check_ndim

__all__ = ["DataParallel", "SyncBatchNorm1d", "SyncBatchNorm2d", "convert_sync_batchnorm", "local_slice",
           "share_of_cores"]


def _mpi():
    """mpi4py's MPI module, or an ImportError that says how to install it."""
    try:
        from mpi4py import MPI
    except ImportError as error:
        raise ImportError("fastnn.distributed needs mpi4py and an MPI library: "
                          "pip install 'fastnn[distributed]' (the `distributed` extra)") from error
    return MPI


def local_slice(n, rank, size):
    """The ``(start, stop)`` of rank `rank`'s share of `n` samples split over `size` ranks.

    Parameters
    ----------
    n : int
        Samples in the global batch.
    rank, size : int
        This rank and the number of ranks.

    Returns
    -------
    tuple of int
        Contiguous, as `numpy.array_split`: the first ``n % size`` ranks get one sample more;
        a rank gets an empty slice when ``n < size``.
    """
    base, extra = divmod(int(n), int(size))
    start = rank * base + min(rank, extra)
    return start, start + base + (rank < extra)


def share_of_cores(comm):
    """The thread count that gives each rank on a machine its share of the cores.

    Ranks of `comm` on the same machine (``Split_type(COMM_TYPE_SHARED)``) whose CPU affinity
    sets overlap split those cores evenly; a rank bound to its own cores (``mpiexec -bind-to
    core``) keeps them all.

    Parameters
    ----------
    comm : mpi4py.MPI.Comm
        The communicator of the job (collective: every rank must call).

    Returns
    -------
    int
        At least 1.
    """
    MPI = _mpi()
    mine = frozenset(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        frozenset(range(os.cpu_count() or 1))
    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    try:
        sets = node.allgather(mine)
    finally:
        node.Free()
    sharing = sum(1 for s in sets if s & mine)
    return max(1, len(mine) // max(1, sharing))


def _use_share_of_cores(comm):
    """fastnn's threads per rank: the rank's share of its machine's cores, unless the user chose a
    count (fastnn.set_num_threads or OMP_NUM_THREADS). Collective."""
    share = share_of_cores(comm)  # every rank takes part, whatever it decides
    if _threads._explicit is None and "OMP_NUM_THREADS" not in os.environ:
        _threads.set_num_threads(min(share, _threads._MAX_THREADS))


# --- synchronized batch norm ------------------------------------------------------------------------

class _SyncBatchNorm:
    """Batch norm over the global batch: mixed into BatchNorm1d / BatchNorm2d.

    In training the forward normalizes with the mean and biased variance of all ranks' samples
    (gathered as count, mean and sum of squared deviations per channel and combined in rank order
    with Chan et al.'s pairwise formula, so every rank computes the same bits), and updates the
    running statistics with them (unbiased variance over the global count). The backward sums
    ``dy`` and ``dy * xhat`` over all ranks for the input gradient; ``.grads`` hold this rank's
    own contributions (DataParallel sums them with the other gradients).
    """

    comm = None

    def _axes(self, x):
        return (0,) + tuple(range(2, x.ndim))  # every axis but the channels

    def _channel(self, v, x):
        return v.reshape((1, -1) + (1,) * (x.ndim - 2))

    def _gather_statistics(self, x):
        """(global count, mean, biased var) per channel, float64; x None: this rank has no samples."""
        channels = self.num_features
        local = np.zeros(1 + 2 * channels)
        if x is not None and x.size:
            # two passes in float64 (as the reference): a sum of squares would cancel when |mean| >> std
            mean = x.mean(axis=self._axes(x), dtype=np.float64)
            deviation = x - self._channel(mean, x)
            local[0] = x.size // channels
            local[1:1 + channels] = mean
            d = deviation.reshape(deviation.shape[0], channels, -1)  # (N, C, L) whatever x's rank
            local[1 + channels:] = np.einsum("ncl,ncl->c", d, d)
        rows = np.empty((self.comm.Get_size(), local.size))
        self.comm.Allgather(local, rows)
        count, mean, m2 = 0.0, np.zeros(channels), np.zeros(channels)
        for row in rows:  # rank order on every rank: the same bits everywhere
            n = row[0]
            if n == 0:
                continue
            total = count + n
            delta = row[1:1 + channels] - mean
            mean = mean + delta * (n / total)
            m2 = m2 + row[1 + channels:] + delta * delta * (count * n / total)
            count = total
        if count == 0:
            raise ValueError(f"{type(self).__name__}: training needs at least one value per channel; "
                             "no rank has a sample")
        return count, mean, m2 / count

    def _update_running(self, count, mean, var):
        unbiased = var * count / (count - 1) if count > 1 else var  # as fastnn.batch_norm
        m = self._factor()  # counts the batch (num_batches_tracked); momentum None: 1 / that count
        self.running_mean[...] = (1 - m) * self.running_mean + m * mean
        self.running_var[...] = (1 - m) * self.running_var + m * unbiased

    def forward(self, x):
        """Normalize x; in training, with the mean and variance of the global batch (collective).

        Parameters
        ----------
        x : ndarray
            This rank's samples, (N, C) or (N, C, H, W) as the layer's kind.

        Returns
        -------
        ndarray
        """
        if not self.training or self.comm is None:
            return super().forward(x)
        x = np.asarray(x)
        check_ndim(type(self).__name__, "x", x, self.ndim)
        count, mean, var = self._gather_statistics(x)
        self._update_running(count, mean, var)
        self._x, self._mode, self._count = x, True, count
        key = (x.shape, x.dtype)
        # the kernel's eval path is the affine map of the given statistics: y = (x - mean) * invstd * w + b
        y, self._mean, self._invstd = batch_norm(
            x, self.params["weight"], self.params["bias"], mean.astype(x.dtype), var.astype(x.dtype),
            training=False, eps=self.eps, out=self._out("y", key))
        return self._keep("y", key, y)

    def _join_forward(self):
        """This rank's part of a training forward when it has no samples (DataParallel calls it)."""
        self._update_running(*self._gather_statistics(None))
        self._mode, self._x = True, None

    def backward(self, dy, input_grad=True):
        """Gradients through the global-batch statistics (collective); this rank's ``grads`` parts.

        Parameters
        ----------
        dy : ndarray
            Gradient of the global-batch loss with respect to this rank's output.
        input_grad : bool, default True
            Whether to return dx.

        Returns
        -------
        ndarray or None
            dx.
        """
        if not self._mode or self.comm is None:
            return super().backward(dy, input_grad)
        x = self._x
        gamma = self.params["weight"]
        # eval-mode backward: dy * gamma * invstd, and this rank's sums of dy * xhat and dy
        dx, dgamma, dbeta = batch_norm_backward(dy, x, gamma, self._mean, self._invstd, training=False)
        self.grads["weight"], self.grads["bias"] = dgamma, dbeta
        sums = np.concatenate([dbeta, dgamma]).astype(np.float64)
        self.comm.Allreduce(_mpi().IN_PLACE, sums)  # every rank, every time: an empty rank joins the same calls
        if not input_grad:
            return None
        # dx = gamma * invstd * (dy - sum(dy) / N - xhat * sum(dy * xhat) / N), the sums over all ranks
        f = self.num_features
        invstd = self._invstd.astype(np.float64)
        a = gamma * invstd * invstd * sums[f:] / self._count
        b = gamma * invstd * sums[:f] / self._count
        dx -= self._channel(a.astype(x.dtype), x) * (x - self._channel(self._mean, x))
        dx -= self._channel(b.astype(x.dtype), x)
        return dx

    def _join_backward(self):
        """This rank's part of a training backward when it has no samples."""
        for name, p in self.params.items():
            self.grads[name] = np.zeros_like(p)
        self.comm.Allreduce(_mpi().IN_PLACE, np.zeros(2 * self.num_features))

    @classmethod
    def from_batchnorm(cls, layer, comm):
        """A synchronized copy of `layer` that shares its parameters, gradients and running statistics.

        Parameters
        ----------
        layer : fastnn.nn.BatchNorm1d or fastnn.nn.BatchNorm2d
            Of the matching dimension.
        comm : mpi4py.MPI.Comm
            The ranks whose samples form the batch.

        Returns
        -------
        SyncBatchNorm1d or SyncBatchNorm2d
        """
        sync = cls.__new__(cls)
        sync.__dict__.update(layer.__dict__)  # the same arrays and dicts: training one trains the other
        sync._workspace = {}
        sync.comm = comm
        return sync

    def __repr__(self):
        ranks = self.comm.Get_size() if self.comm is not None else None
        return f"{type(self).__name__}({self.num_features}, eps={self.eps}, momentum={self.momentum}, ranks={ranks})"


class SyncBatchNorm1d(_SyncBatchNorm, nn.BatchNorm1d):
    """BatchNorm1d with the statistics of the global batch across the ranks of `comm`.

    Parameters
    ----------
    num_features, eps, momentum, dtype
        As `fastnn.nn.BatchNorm1d`.
    comm : mpi4py.MPI.Comm, optional
        The ranks that share the batch; None (until DataParallel sets it) behaves as BatchNorm1d.

    Notes
    -----
    In training, ``backward(dy)`` expects `dy` to be the gradient of the global-batch loss (a
    rank's local-mean loss gradient times ``n_local / N``, as DataParallel passes it); ``.grads``
    are this rank's contributions, to be summed over the ranks. Every rank must call forward and
    backward the same number of times (collectives), also with an empty slice.
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, *, comm=None, dtype=np.float32):
        super().__init__(num_features, eps, momentum, dtype=dtype)
        self.comm = comm


class SyncBatchNorm2d(_SyncBatchNorm, nn.BatchNorm2d):
    """BatchNorm2d with the statistics of the global batch across the ranks of `comm`.

    Parameters
    ----------
    num_features, eps, momentum, dtype
        As `fastnn.nn.BatchNorm2d`.
    comm : mpi4py.MPI.Comm, optional
        The ranks that share the batch; None (until DataParallel sets it) behaves as BatchNorm2d.

    Notes
    -----
    As `SyncBatchNorm1d`: `dy` is the gradient of the global-batch loss, ``.grads`` are this
    rank's contributions.
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, *, comm=None, dtype=np.float32):
        super().__init__(num_features, eps, momentum, dtype=dtype)
        self.comm = comm


def convert_sync_batchnorm(module, comm):
    """`module` with every BatchNorm1d/2d (inside Sequentials too) swapped for its synchronized twin.

    Parameters
    ----------
    module : fastnn.nn.Module
        A layer or a Sequential (nested ones are converted too; other containers are kept as they are).
    comm : mpi4py.MPI.Comm
        The ranks that share each batch.

    Returns
    -------
    fastnn.nn.Module
        A new Sequential (or layer) sharing every parameter, gradient and buffer array with
        `module`, so training it trains `module`; `module` itself is not changed. Layers that are
        not batch norms are the same objects.
    """
    if isinstance(module, nn.Sequential):
        converted = nn.Sequential(*(convert_sync_batchnorm(layer, comm) for layer in module.layers))
        converted.training = module.training
        return converted
    if isinstance(module, _SyncBatchNorm):
        return module if module.comm is not None else type(module).from_batchnorm(module, comm)
    if isinstance(module, nn.BatchNorm2d):
        return SyncBatchNorm2d.from_batchnorm(module, comm)
    if isinstance(module, nn.BatchNorm1d):
        return SyncBatchNorm1d.from_batchnorm(module, comm)
    return module


def _sync_layers(module):
    """The synchronized batch norms of `module` in forward order (Sequentials searched)."""
    if isinstance(module, nn.Sequential):
        return [s for layer in module.layers for s in _sync_layers(layer)]
    return [module] if isinstance(module, _SyncBatchNorm) and module.comm is not None else []


def _leaves(module):
    """(layer, parameter name) of every parameter, in the order of `module.params`."""
    if isinstance(module, nn.Sequential):
        return [leaf for layer in module.layers for leaf in _leaves(layer)]
    return [(module, name) for name in module.params]


# --- gradient buckets -------------------------------------------------------------------------------

class _Bucket:
    """Flat buffer of some parameters' gradients (one dtype), reduced by one Iallreduce."""

    def __init__(self, slots, dtype, ready_after):
        self.slots = slots  # (layer, name, offset, size, shape)
        self.buffer = np.empty(sum(s[3] for s in slots), dtype)
        self.ready_after = ready_after  # the unit (top-level layer) whose backward completes it

    def pack(self):
        for layer, name, offset, size, shape in self.slots:
            grad = layer.grads.get(name)
            target = self.buffer[offset:offset + size]
            if grad is None:
                target[...] = 0
            else:
                target[...] = np.asarray(grad).reshape(-1)

    def unpack(self):
        """Hand the reduced gradients back: views into the buffer (valid until the next backward)."""
        for layer, name, offset, size, shape in self.slots:
            view = self.buffer[offset:offset + size].reshape(shape)
            if "grads" in vars(layer):
                layer.grads[name] = view
            else:  # a container whose .grads is computed: write into its arrays
                np.copyto(layer.grads[name], view)


def _buckets(units, cap_bytes):
    """Buckets in the order the backward fills them: parameters of the last layers first (as DDP)."""
    slots = [(i, layer, name) for i, unit in enumerate(units) for layer, name in _leaves(unit)]
    buckets, current, size, dtype = [], [], 0, None

    def close():
        if current:
            offsets = np.cumsum([0] + [s[3] for s in current])
            laid = [(layer, name, int(o), n, shape) for (layer, name, _, n, shape), o in zip(current, offsets)]
            buckets.append(_Bucket(laid, dtype, min(s[2] for s in current)))

    for i, layer, name in reversed(slots):
        p = layer.params[name]
        nbytes = p.size * p.dtype.itemsize
        if current and (p.dtype != dtype or size + nbytes > cap_bytes):
            close()
            current, size = [], 0
        current.append((layer, name, i, p.size, p.shape))
        size, dtype = size + nbytes, p.dtype
    close()
    return buckets


class _ProgressThread:
    """Turns MPI's progress engine from a helper thread while the backward computes.

    MPICH moves a non-blocking collective's data only inside MPI calls, and a layer's backward
    makes none for milliseconds; so between `start` and `stop` this thread calls Iprobe (on a
    communicator nothing is ever sent on) every `interval` seconds. It sleeps in between, and the
    kernels release the GIL, so it costs the compute a wake-up per interval.
    """

    def __init__(self, comm, interval):
        self.comm = comm.Dup()
        self.interval = interval
        self._run_event, self._idle = threading.Event(), threading.Event()
        self._idle.set()
        self._thread = None

    def _loop(self):
        while True:
            self._run_event.wait()
            while self._run_event.is_set():
                self.comm.Iprobe()
                time.sleep(self.interval)
            self._idle.set()

    def start(self):
        if self._thread is None:  # daemon: it never holds the interpreter open, and sleeps outside MPI
            self._thread = threading.Thread(target=self._loop, name="fastnn-mpi-progress", daemon=True)
            self._thread.start()
        self._idle.clear()
        self._run_event.set()

    def stop(self):
        if not self._run_event.is_set():
            return
        self._run_event.clear()
        self._idle.wait()


class DataParallel:
    """A fastnn.nn model trained data-parallel over the ranks of an MPI communicator.

    Each rank calls ``forward`` on its slice of the global batch (`local_slice` splits one),
    computes its loss with a mean over its own samples, and calls ``backward`` with that loss's
    gradient: ``.grads`` then hold the gradient of the mean loss over the global batch, the same
    on every rank, and ``opt.step(dp.params, dp.grads)`` keeps the replicas identical.

    Parameters
    ----------
    model : fastnn.nn.Module
        Usually a Sequential. Its BatchNorm layers are synchronized (`convert_sync_batchnorm`:
        the model object keeps its layers; the wrapper shares all their arrays).
    comm : mpi4py.MPI.Comm
        The ranks; duplicated, so the wrapper's collectives never match the caller's.
    bucket_cap_mb : float, optional
        Gradient bucket size in MiB (a larger parameter gets a bucket of its own).
    overlap : bool, optional
        Start each bucket's allreduce as soon as its layers' gradients are ready (True), or all
        of them after the backward (False: for measuring what the overlap hides).
    progress : {"poll", "thread"}, optional
        How the started allreduces advance while later layers compute (MPICH moves their data
        only inside MPI calls): a test between layers ("poll"), or also a helper thread that
        polls MPI every ~0.1 ms ("thread"; needs MPI initialized with THREAD_MULTIPLE, mpi4py's
        default). On one machine the reduction is memory copies on the cores that compute, so
        the thread hides more of the wait but slowed the step (bench/probes/data_parallel.py:
        ThreeLayerConvNet on 2 ranks x 1 thread, 1-4 ms per ~30 ms step); it pays off where
        cores are spare or the data crosses a network.
    broadcast : bool, optional
        Copy rank 0's parameters and buffers to every rank now.

    Attributes
    ----------
    module : fastnn.nn.Module
        The model with synchronized batch norms (shares every array with `model`).
    loss : float or None
        The global-batch mean of the `loss` given to the last ``backward``.
    timings : dict
        Seconds summed over backward calls: ``"backward"`` (the whole call), ``"wait"`` (waiting
        for allreduces after the last layer: the communication the overlap did not hide), and
        ``"steps"``; `reset_timings` zeroes them.

    Notes
    -----
    Collective: every rank must make the same calls in the same order (forward and backward in
    training, broadcast_state), also a rank whose slice is empty (``forward`` returns None for it
    and ``backward`` takes None). The default thread count becomes this rank's share of the
    machine's cores (`share_of_cores`) unless ``fastnn.set_num_threads`` was called or
    OMP_NUM_THREADS is set.
    """

    def __init__(self, model, comm, *, bucket_cap_mb=1.0, overlap=True, progress="poll", broadcast=True):
        MPI = _mpi()
        if not isinstance(model, nn.Module):
            raise TypeError(f"DataParallel: model must be a fastnn.nn.Module, got {type(model).__name__}")
        if not bucket_cap_mb > 0:
            raise ValueError(f"DataParallel: bucket_cap_mb must be > 0, got {bucket_cap_mb}")
        if progress not in ("poll", "thread"):
            raise ValueError(f"DataParallel: progress must be 'poll' or 'thread', got {progress!r}")
        self.comm = comm.Dup()
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.module = convert_sync_batchnorm(model, self.comm)
        self._check_same_model()
        _use_share_of_cores(self.comm)
        self._units = list(self.module.layers) if isinstance(self.module, nn.Sequential) else [self.module]
        self._buckets = _buckets(self._units, bucket_cap_mb * 2 ** 20)
        self.overlap = bool(overlap)
        # a helper thread may call MPI only when the library was initialized for threads (mpi4py's default)
        threaded = progress == "thread" and MPI.Query_thread() == MPI.THREAD_MULTIPLE
        self._progress = _ProgressThread(self.comm, 1e-4) if self.overlap and threaded else None
        self._marks = (0.0, 0.0)  # perf_counter at the end of the last backward's compute, and of its wait
        self._sum = MPI.SUM
        self._count_send, self._count_recv = np.zeros(1, np.int64), np.zeros(1, np.int64)
        self._count_request = None
        self._local = None
        self.loss = None
        self.reset_timings()
        if broadcast:
            self.broadcast_state()

    def _check_same_model(self):
        layout = [(k, v.shape, v.dtype.str) for k, v in {**self.module.params, **self.module.buffers}.items()]
        layouts = self.comm.allgather(layout)
        for rank, other in enumerate(layouts):
            if other != layouts[0]:
                raise ValueError(f"DataParallel: rank {rank}'s model differs from rank 0's "
                                 f"(parameters and buffers {other} vs {layouts[0]})")

    def broadcast_state(self, root=0):
        """Copy `root`'s parameters and buffers into every rank's (one broadcast per dtype). Collective.

        Parameters
        ----------
        root : int, optional
            The rank whose arrays win.
        """
        arrays = list(self.module.params.values()) + list(self.module.buffers.values())
        for dtype in sorted({a.dtype.str for a in arrays}):
            group = [a for a in arrays if a.dtype.str == dtype]
            flat = np.concatenate([a.reshape(-1) for a in group]) if group else np.empty(0, dtype)
            self.comm.Bcast(flat, root=root)
            offset = 0
            for a in group:
                a[...] = flat[offset:offset + a.size].reshape(a.shape)
                offset += a.size

    # the model's interface -----------------------------------------------------------------------

    @property
    def params(self):
        """The model's parameters (the same arrays)."""
        return self.module.params

    @property
    def grads(self):
        """The gradients of the global-batch mean loss, after ``backward``."""
        return self.module.grads

    @property
    def buffers(self):
        """The model's buffers (BatchNorm running statistics, kept identical across ranks)."""
        return self.module.buffers

    @property
    def training(self):
        """Whether the model is in training mode."""
        return self.module.training

    def train(self):
        """Training mode (global-batch statistics, collective forward and backward); returns self."""
        self.module.train()
        return self

    def eval(self):
        """Evaluation mode: the forward is local (running statistics, no communication); returns self."""
        self.module.eval()
        return self

    def __call__(self, x):
        return self.forward(x)

    def forward(self, x):
        """The model's output on this rank's samples `x` (an empty slice: None, after joining the
        collectives of the other ranks' forward)."""
        x = np.asarray(x)
        n = int(x.shape[0]) if x.ndim else 1
        if not self.training:
            return self.module.forward(x) if n else None
        self._wait_count()  # a forward without backward before: finish its count
        self._local = n
        self._count_send[0] = n
        self._count_request = self.comm.Iallreduce(self._count_send, self._count_recv, self._sum)
        if n == 0:
            for layer in _sync_layers(self.module):
                layer._join_forward()
            return None
        return self.module.forward(x)

    def _wait_count(self):
        if self._count_request is not None:
            self._count_request.Wait()
            self._count_request = None
        return int(self._count_recv[0])

    def backward(self, dy, input_grad=True, loss=None):
        """Backward of this rank's samples, then the gradients summed over ranks.

        Parameters
        ----------
        dy : numpy.ndarray or None
            Gradient of this rank's mean loss (a mean over its own samples, as
            `fastnn.softmax_cross_entropy` returns) with respect to the model's output; None on a
            rank whose slice is empty. It is weighted by ``n_local / N`` here.
        input_grad : bool, optional
            Return the input gradient (False skips it in the first layer).
        loss : float, optional
            This rank's mean loss: its global-batch mean is reduced alongside and left in `loss`.

        Returns
        -------
        numpy.ndarray or None
            The gradient of the global-batch mean loss with respect to this rank's inputs.
        """
        if self._local is None:
            raise RuntimeError("DataParallel.backward: call forward (in training mode) first")
        start = time.perf_counter()
        total = self._wait_count()
        weight = self._local / total
        requests = []
        if loss is not None:
            self._loss = np.array([weight * float(loss) if self._local else 0.0])
            requests.append(self.comm.Iallreduce(_mpi().IN_PLACE, self._loss, self._sum))
        if dy is not None and self._local:
            dy = np.asarray(dy)
            dy = dy * dy.dtype.type(weight)  # a new array: the caller's dy is left as it was
        pending = list(self._buckets)  # in the order the backward completes them
        for i in range(len(self._units) - 1, -1, -1):
            unit = self._units[i]
            if self._local:
                dy = unit.backward(dy, input_grad=input_grad or i > 0)
            else:
                self._join_backward(unit)
            if self.overlap:
                while pending and pending[0].ready_after >= i:
                    requests.append(self._start(pending.pop(0)))
                    if self._progress is not None:
                        self._progress.start()
                if requests:
                    _mpi().Request.Testall(requests)  # MPI progresses only inside MPI calls: poke it
        dx = dy if self._local and input_grad else None
        waiting = time.perf_counter()
        if self._progress is not None:
            self._progress.stop()
        for bucket in pending:
            requests.append(self._start(bucket))
        _mpi().Request.Waitall(requests)
        for bucket in self._buckets:
            bucket.unpack()
        if loss is not None:
            self.loss = float(self._loss[0])
        self._local = None
        end = time.perf_counter()
        self._marks = (waiting, end)
        self.timings["wait"] += end - waiting
        self.timings["backward"] += end - start
        self.timings["steps"] += 1
        return dx

    def _start(self, bucket):
        bucket.pack()
        return self.comm.Iallreduce(_mpi().IN_PLACE, bucket.buffer, self._sum)

    def _join_backward(self, unit):
        """An empty rank's part of one unit's backward: zero gradients, the batch norms' allreduces."""
        layers = _sync_layers(unit)
        for layer in reversed(layers):
            layer._join_backward()
        for layer, name in _leaves(unit):
            if layer not in layers:
                layer.grads[name] = np.zeros_like(layer.params[name])

    def reset_timings(self):
        """Zero `timings`."""
        self.timings = {"backward": 0.0, "wait": 0.0, "steps": 0}

    def __repr__(self):
        return f"DataParallel(rank {self.rank} of {self.size}, {len(self._buckets)} gradient buckets,\n{self.module!r})"
