"""The report of a sweep: a figure grid (generations and loss curves of every seed, per
configuration) and a self-contained DIR/index.html."""


def write_report(out, specs, results):
    return []
