"""What seqgen trains on and does with a trained net: data plans (one per kind of data),
feeders, held-out testing, the feedback schedule, free-running generation and run folders."""
