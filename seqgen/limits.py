"""The numbers a flag or environment variable may hold, and the one-line refusals.

Each whole number a user gives ends somewhere with a limit of its own: --iters in the
solver's max_iter (int32 in caffe.proto), --seed in random_seed (int64) and numpy's
generators (0 <= seed < 2**64), --steps and --samples in arrays held in memory, the thread
budget in numba's pool. Beyond that limit protobuf, numpy or the allocator would fail with
a traceback, or the work would go on for hours without a word; so each value is checked
where it is read, against the limit of where it ends, and refused in one line naming the
flag. The command line's argparse types come from `whole`; the rest of seqgen calls
`check_whole` and `threads_from_env`. No numpy or numba here: `seqgen/__init__.py` reads
SEQGEN_THREADS through this module.
"""
import decimal
import os

from .errors import SeqgenError

INT32_MAX = 2 ** 31 - 1  # caffe.proto's int32 fields: max_iter, test_iter, ...
INT64_MAX = 2 ** 63 - 1  # caffe.proto's int64 random_seed
SEED_END = 2 ** 64  # numpy's Generator takes seeds 0 <= seed < 2**64

#: what one request may hold in memory: generate's ids, texts and values, a sweep's plan of
#: runs. A bound rather than the free memory of the moment, so that a command that works
#: today works tomorrow; 2 GiB fits the 4-8 GB machines seqgen is run on beside the net.
MEMORY_LIMIT = 2 * 1024 ** 3


def parse_whole(text):
    """The whole number a flag's text writes (`1000`, `1e9`, `2.0`), or None if it is not
    one. Scientific notation is read exactly (decimal), never through a float."""
    try:
        return int(text)
    except (TypeError, ValueError):
        pass
    try:
        value = decimal.Decimal(str(text).strip())
    except decimal.InvalidOperation:
        return None
    if not value.is_finite() or value != value.to_integral_value():
        return None
    return int(value)


def check_whole(name, value, low, high, why=""):
    """value if it is a whole number in [low, high]; else SeqgenError naming `name` (the flag
    or variable) and `why` (where the limit comes from)."""
    number = parse_whole(value) if not isinstance(value, int) or isinstance(value, bool) \
        else value
    if number is None:
        raise SeqgenError(f"{name} {value}: expected a whole number")
    because = f" ({why})" if why else ""
    if number < low:
        raise SeqgenError(f"{name} {number}: must be at least {low}{because}")
    if number > high:
        raise SeqgenError(f"{name} {number}: must be at most {high}{because}")
    return number


def whole(name, low, high, why=""):
    """An argparse `type` for a whole-number flag in [low, high]. It raises SeqgenError
    (not argparse's error) so the message is the one line of every other input error."""
    def convert(text):
        return check_whole(name, text, low, high, why)
    convert.__name__ = name.lstrip("-").replace("-", "_")  # argparse names it by this
    return convert


def check_memory(subject, need, fix):
    """Refuse a request that would hold `need` bytes beyond MEMORY_LIMIT: one line with
    `subject` (the flag and value), how much it would take, and `fix` (what fits)."""
    if need > MEMORY_LIMIT:
        raise SeqgenError(f"{subject} would take about {_size(need)} of memory, beyond "
                          f"seqgen's {_size(MEMORY_LIMIT)} per request; {fix}")


def _size(n):
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return None


#: the largest thread budget taken: beyond any machine seqgen runs on (numba caps it at
#: its pool's size anyway), and small enough for every library it is passed to
THREADS_MAX = 1024


def threads_from_env(environ=None):
    """SEQGEN_THREADS as a thread budget (1 when unset or empty); SeqgenError naming the
    variable for anything but a whole number in [1, THREADS_MAX]."""
    text = (os.environ if environ is None else environ).get("SEQGEN_THREADS", "")
    if not text.strip():
        return 1
    number = parse_whole(text)
    if number is None or not 1 <= number <= THREADS_MAX:
        raise SeqgenError(f"SEQGEN_THREADS={text!r}: expected a whole number of threads "
                          f"from 1 to {THREADS_MAX}")
    return number
