"""Reading a user's file whole, with one-line errors that name it."""
import os
import stat

from ..errors import SeqgenError


def read_bytes(path, limit=None, what="the file"):
    """The file's bytes; SeqgenError for a missing file, a folder, an unreadable file, and
    anything but a regular file (a device such as /dev/zero or a pipe may never end, and
    reading it whole would fill the memory). With `limit`, a file of more bytes is refused
    too, naming `what` it is read as."""
    name = os.fspath(path)
    try:
        info = os.stat(name)  # before opening: opening a pipe waits for a writer
        if not stat.S_ISREG(info.st_mode) and not stat.S_ISDIR(info.st_mode):
            raise SeqgenError(f"{name}: not a regular file (a device, pipe or socket may "
                              "never end); give a file")
        with open(name, "rb") as fh:
            info = os.fstat(fh.fileno())
            if limit is not None and info.st_size > limit:
                raise SeqgenError(f"{name}: {info.st_size} bytes, more than seqgen reads as "
                                  f"{what} ({limit} bytes at most)")
            return fh.read()
    except FileNotFoundError:
        raise SeqgenError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise SeqgenError(f"{name}: is a directory, not a file") from None
    except OSError as exc:
        raise SeqgenError(f"{name}: cannot read file ({exc.strerror or exc})") from None
