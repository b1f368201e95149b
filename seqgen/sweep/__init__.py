"""`seqgen sweep`: many runs of the same code as `seqgen train`, on Dask distributed."""
