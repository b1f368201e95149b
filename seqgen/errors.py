"""One exception type for every mistake a user can make (bad files, bad options).

The CLI turns a SeqgenError into a one-line message and exit code 2 (usage/input) or
1 (runtime failure); anything else escaping is a bug and keeps its traceback.

SeqgenError derives from RuntimeError because that is what pycaffe raises (boost turns
Caffe's std::runtime_error into it) and what pycaffe scripts catch: `except RuntimeError`
keeps working unchanged, whether the script reaches seqgen as `seqgen` or as `caffe`.
"""


class SeqgenError(RuntimeError):
    """A user-facing error: the message names the file, line, layer or blob at fault."""

    exit_code = 2


class SeqgenRuntimeError(SeqgenError):
    """A failure while running (e.g. training diverged); exit code 1."""

    exit_code = 1
