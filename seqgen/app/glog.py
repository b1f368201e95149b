"""glog's line format, the one Caffe's logs are written in, so that Caffe's log tools
(tools/extra/parse_log.py, plot_training_log.py) read seqgen's logs.

glog writes `Lmmdd hh:mm:ss.uuuuuu threadid file:line] msg`: L the severity (I, W, E, F),
local time to the microsecond, the thread id right-aligned in 5 columns, and the source
file and line of the message. A log file starts with glog's three header lines.
"""
import datetime
import os
import socket
import threading

SEVERITIES = ("I", "W", "E", "F")
HEADER = ("Log file created at: {created}\n"
          "Running on machine: {host}\n"
          "Log line format: [IWEF]mmdd hh:mm:ss.uuuuuu threadid file:line] msg\n")


def glog_line(severity, tag, message, now, thread_id):
    """One glog line (with its newline); `tag` is `file:line`. A message of several lines
    gets the prefix on its first only, as glog does."""
    return (f"{severity}{now:%m%d %H:%M:%S}.{now.microsecond:06d} {thread_id:5d} "
            f"{tag}] {message}\n")


def cnum(value):
    """A number as C++'s ostream prints a float by default (printf's %g: 6 significant
    digits), which is how Caffe's messages show every value."""
    return format(float(value), "g")


class Glog:
    """Writes glog lines to streams (a log file, stderr), flushing each line so that a
    killed run keeps its log up to its last line."""

    def __init__(self, *streams, clock=datetime.datetime.now):
        self.streams = [s for s in streams if s is not None]
        self.clock = clock

    def log(self, severity, tag, message):
        line = glog_line(severity, tag, message, self.clock(), threading.get_native_id())
        for stream in list(self.streams):
            try:
                stream.write(line)
                stream.flush()
            except (BrokenPipeError, ValueError):  # a reader that went away, a closed file
                self.streams.remove(stream)

    def info(self, tag, message):
        self.log("I", tag, message)

    def warning(self, tag, message):
        self.log("W", tag, message)

    def error(self, tag, message):
        self.log("E", tag, message)


def open_log_file(path, clock=datetime.datetime.now):
    """Open a log file for appending (a resumed run continues its log), line-buffered;
    a new file gets glog's header first."""
    new = not os.path.exists(path) or os.path.getsize(path) == 0
    f = open(path, "a", buffering=1, encoding="utf-8")
    if new:
        f.write(HEADER.format(created=f"{clock():%Y/%m/%d %H:%M:%S}",
                              host=socket.gethostname()))
        f.flush()
    return f
