"""Files: text nets and solvers (prototxt), .caffemodel weights, .solverstate and its
resume sidecar, and atomic writing of everything seqgen saves."""
