"""Argument checks shared by every public op: the errors ../shared/API.md promises, in one place."""
import math
import operator

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_FLOAT32, _FLOAT64 = FLOAT_DTYPES  # native-order dtypes are singletons: `is` first

# The largest integer parameter (stride, padding, dilation, kernel_size, groups, pieces, ...), padded
# image plane ((H + 2 * padding) * (W + 2 * padding) elements) and dilated kernel extent: the
# compiled kernels keep convolution geometry in C ints (kernels/cython/conv.pyx), which would
# overflow beyond it (an OverflowError at the call, or wrapped sizes).
INDEX_MAX = 2 ** 31 - 1


def _short(value):
    """repr(value), cut short (a huge int or a long list)."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}... ({type(value).__name__})"


def _as_array(op, name, value, kind="a float32 or float64 array"):
    """np.asarray(value), with a TypeError naming the argument for None and for what NumPy refuses
    (ragged nested sequences)."""
    if value is None:
        raise TypeError(f"{op}: {name} must be {kind}, got None")
    try:
        return np.asarray(value)
    except (TypeError, ValueError, OverflowError) as error:
        raise TypeError(f"{op}: {name} must be {kind}, got {_short(value)} ({error})") from None


def float_arrays(op, contiguous=True, optional=(), **arrays):
    """Convert each named array-like to a float32/float64 ndarray sharing one dtype.

    None passes through for the names in `optional` (optional inputs) and is a TypeError for the
    others. With `contiguous`, arrays come back C-contiguous (a copy only when needed; the
    caller's array is never modified).
    """
    converted = []
    first = None
    for name, value in arrays.items():
        if type(value) is np.ndarray:  # the usual case, ~0.1 us less per array than np.asarray's path
            a = value
        elif value is None and name in optional:
            converted.append(None)
            continue
        else:
            a = _as_array(op, name, value)
        dtype = a.dtype
        if first is None:
            if dtype is not _FLOAT32 and dtype is not _FLOAT64 and dtype not in FLOAT_DTYPES:
                raise TypeError(f"{op}: {name} must be float32 or float64, got {dtype}")
            first = (name, dtype)
        elif dtype is not first[1] and dtype != first[1]:
            if dtype not in FLOAT_DTYPES:
                raise TypeError(f"{op}: {name} must be float32 or float64, got {dtype}")
            raise TypeError(
                f"{op}: {name} is {dtype} but {first[0]} is {first[1]}; float inputs must share one dtype"
            )
        # np.asarray(a, order="C") keeps 0-d arrays 0-d; skipped when a is already contiguous (~0.3 us)
        converted.append(np.asarray(a, order="C") if contiguous and not a.flags.c_contiguous else a)
    return converted[0] if len(converted) == 1 else tuple(converted)


def check_out(op, out, shape, dtype):
    """Validate a user `out=` buffer: TypeError for a wrong dtype, ValueError for a wrong shape."""
    if out is None:
        return None
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{op}: out must be a numpy.ndarray, got {type(out).__name__}")
    if out.dtype != dtype:
        raise TypeError(f"{op}: out has dtype {out.dtype}, expected {np.dtype(dtype)}")
    if out.shape != tuple(shape):
        raise ValueError(f"{op}: out has shape {out.shape}, expected {tuple(shape)}")
    if not out.flags.writeable:
        raise ValueError(f"{op}: out is read-only")
    return out


def check_same_shape(op, name, a, ref_name, ref):
    if a.shape != ref.shape:
        raise ValueError(f"{op}: {name} has shape {a.shape}, expected {ref.shape} (the shape of {ref_name})")


def check_ndim(op, name, a, ndims):
    ndims = (ndims,) if isinstance(ndims, int) else ndims
    if a.ndim not in ndims:
        expected = " or ".join(f"{d}-d" for d in ndims)
        raise ValueError(f"{op}: {name} must be {expected}, got shape {a.shape}")


def integer(op, name, value, minimum=None, maximum=INDEX_MAX):
    """An int parameter (bools, floats and arrays refused) in [minimum, maximum]."""
    if isinstance(value, (bool, np.bool_)) or not hasattr(value, "__index__"):
        raise TypeError(f"{op}: {name} must be an integer, got {_short(value)}")
    try:
        value = operator.index(value)
    except TypeError:  # e.g. an integer array of one or more dimensions
        raise TypeError(f"{op}: {name} must be an integer, got {_short(value)}") from None
    if minimum is not None and value < minimum:
        raise ValueError(f"{op}: {name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{op}: {name} must be <= {maximum}, got {value}")
    return value


def pair(op, name, value, minimum=None):
    """An int or an (h, w) pair of ints, as a tuple of two ints each in [minimum, INDEX_MAX]."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{op}: {name} must be an int or an (h, w) pair, got {_short(value)}")
        return tuple(integer(op, name, v, minimum) for v in value)
    v = integer(op, name, value, minimum)
    return (v, v)


def flag(op, name, value):
    """A boolean option: anything with a truth value but an array of one or more dimensions (whose
    truth value is an error or a deprecation warning)."""
    if isinstance(value, np.ndarray) and value.ndim:
        raise TypeError(f"{op}: {name} must be a bool, got an array of shape {value.shape}")
    try:
        return bool(value)
    except (TypeError, ValueError):
        raise TypeError(f"{op}: {name} must be a bool, got {_short(value)}") from None


def _real_value(op, name, value):
    """float(value) for `real`: bools, strings, complex and arrays refused."""
    if isinstance(value, (np.ndarray, np.generic)):
        refused = value.ndim != 0 or value.dtype.kind not in "iuf"
    else:
        refused = isinstance(value, (bool, str, bytes, complex))
    if refused:
        raise TypeError(f"{op}: {name} must be a real number, got {_short(value)}")
    try:
        v = float(value)
    except OverflowError:  # an int beyond the float range
        raise ValueError(f"{op}: {name} must be finite, got {_short(value)}") from None
    except (TypeError, ValueError):
        raise TypeError(f"{op}: {name} must be a real number, got {_short(value)}") from None
    return v


def real(op, name, value, minimum=None, maximum=None, strict_minimum=False):
    """A finite real scalar parameter within bounds (bools, strings, complex and arrays refused)."""
    if type(value) is float:  # the usual case: no type to refuse, no conversion
        v = value
    else:
        v = _real_value(op, name, value)
    if not math.isfinite(v):  # not np.isfinite: a ufunc call per scalar costs ~0.5 us
        raise ValueError(f"{op}: {name} must be finite, got {v}")
    if minimum is not None and (v <= minimum if strict_minimum else v < minimum):
        raise ValueError(f"{op}: {name} must be {'>' if strict_minimum else '>='} {minimum}, got {v}")
    if maximum is not None and v > maximum:
        raise ValueError(f"{op}: {name} must be <= {maximum}, got {v}")
    return v


_FLOAT_MAX = {np.dtype(t): float(np.finfo(t).max) for t in (np.float32, np.float64)}  # np.finfo: ~0.5 us a call


def within_dtype(op, dtype, **values):
    """Real parameters the kernels round to the arrays' dtype: beyond its range they would turn into
    infinities (with NumPy's "overflow encountered in cast" printed), so they are refused."""
    limit = _FLOAT_MAX.get(dtype) or float(np.finfo(dtype).max)
    for name, v in values.items():
        if abs(v) > limit:
            raise ValueError(f"{op}: {name} must be at most {limit:.8g} in magnitude for {np.dtype(dtype).name} "
                             f"arrays, got {v}")
    checked = tuple(values.values())
    return checked[0] if len(checked) == 1 else checked


def labels(op, name, value, n, num_classes, scores="scores"):
    """Integer class labels of shape (n,), each in [0, num_classes): n and num_classes the shape of
    the argument named `scores`."""
    y = _as_array(op, name, value, kind="an integer array")
    if y.dtype.kind not in "iu":
        raise TypeError(f"{op}: {name} must be integers, got {y.dtype}")
    if y.shape != (n,):
        raise ValueError(f"{op}: {name} has shape {y.shape}, expected ({n},) ({scores}.shape[0])")
    if n and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"{op}: {name} must be in [0, {num_classes}), got values in [{y.min()}, {y.max()}] "
                         f"({num_classes} classes: {scores}.shape[1])")
    return np.asarray(y, dtype=np.intp, order="C")


def output_size_2d(op, hw, kernel, stride, padding, dilation=(1, 1), kernel_from_w=True):
    """PyTorch's output (height, width) of a sliding window over x's planes of size hw; kernel,
    stride, padding and dilation are (h, w) pairs, the kernel w's (conv) or kernel_size (pool).
    ValueError naming the argument to blame for an output size < 1, a dilated kernel or a padded
    plane beyond INDEX_MAX (only padding makes a plane larger than its input)."""
    (h, w), (ph, pw) = hw, padding
    if (h + 2 * ph) * (w + 2 * pw) > INDEX_MAX:
        culprit = f"padding {padding}" if ph or pw else "x"
        raise ValueError(f"{op}: {culprit} too large: the padded planes would be {h + 2 * ph} x {w + 2 * pw} "
                         f"(> {INDEX_MAX} elements) for x planes {h} x {w}")
    sizes = []
    for axis, size, k, s, p, d in zip((2, 3), hw, kernel, stride, padding, dilation):
        what = f"x {'height' if axis == 2 else 'width'} size {size}, " + (
            f"kernel {k} (w.shape[{axis}])" if kernel_from_w else f"kernel_size {k}")
        if d * (k - 1) + 1 > INDEX_MAX:
            raise ValueError(f"{op}: dilation {d} too large: the dilated kernel would span {d * (k - 1) + 1} "
                             f"(> {INDEX_MAX}) pixels for {what}")
        out = (size + 2 * p - d * (k - 1) - 1) // s + 1
        if out < 1:
            raise ValueError(f"{op}: output size would be {out} (< 1) for {what}, stride {s}, padding {p}, "
                             f"dilation {d}")
        sizes.append(out)
    return tuple(sizes)
