"""The application: the `seqgen` command line, what its commands do, plots and progress."""
