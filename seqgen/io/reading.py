"""Reading a user's file whole, with one-line errors that name it."""
import os

from ..errors import SeqgenError


def read_bytes(path):
    """The file's bytes; SeqgenError for a missing file, a folder or an unreadable file."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        raise SeqgenError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise SeqgenError(f"{name}: is a directory, not a file") from None
    except OSError as exc:
        raise SeqgenError(f"{name}: cannot read file ({exc.strerror or exc})") from None
