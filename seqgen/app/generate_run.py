"""What `seqgen generate` does: run a trained sequence net free-running, compare it with the
true sequence, and write generated.csv and generated.png."""
import os

from ..data.sources import resolve_source
from ..errors import SeqgenError
from ..generation.generate import GenerationDiverged, generate
from ..io.outputs import check_output, check_output_folder
from ..limits import MEMORY_LIMIT, check_memory
from ..net import TEST, Net
from ..runs.pick import pick_run, shown
from .generation_record import write_generation_figure
from .text_samples import RECORD_FILE, TEXT_FILE


def _run_and_weights(run, weights, log):
    """(run folder or None, its RunRecord or None, weights path) of RUN / --weights."""
    picked = pick_run(run, weights, say=log)
    return picked.folder, picked.record, picked.need_weights()


def _check_sequence_run(run, folder, data):
    if run is not None and run.data_kind != "sequence" and not data:
        trained_on = run.data or "its own data layers"
        raise SeqgenError(
            f"{folder}: this run was trained on {trained_on}, not on a sequence; seqgen "
            "generate only runs sequence nets fed the fork's way (sinusoid, .csv, .txt, .npy). "
            "Use its weights from Python instead: net = seqgen.Net(NET, WEIGHTS, seqgen.TEST), "
            "then net.forward(...)")
    if data is not None and str(data).lower().endswith(".npz"):
        raise SeqgenError(f"--data {data}: seqgen generate compares with a sequence (sinusoid, "
                          ".csv, .txt, .npy), not with an .npz of input arrays; to run a net on "
                          "those, use seqgen.Net(NET, WEIGHTS, seqgen.TEST).forward(**arrays)")


#: what one generated step holds per value until written: the prediction (4 bytes), its
#: true value, the CSV text of both (about 16 bytes each) and the figure's copies in float64
#: (8 each): about 64 bytes
BYTES_PER_VALUE = 64


def check_sequence_size(steps, true):
    """Refuse --steps beyond what seqgen holds in memory for one request."""
    width = (true.shape[1] if true is not None and true.ndim == 2 else 1) + 1  # + the step
    fits = MEMORY_LIMIT // (BYTES_PER_VALUE * width)
    check_memory(f"--steps {steps}", steps * width * BYTES_PER_VALUE,
                 f"give --steps {fits} or fewer")


def generate_from_run(weights=None, net=None, steps=None, prime=0, out=None, mode=None,
                      data=None, log=print, run=None):
    """Generate `steps` free-running steps (default: the run's sequence length); writes
    generated.csv, generated.json and generated.png. Returns write_generation_figure's
    {csv, json, png, generated, steps, mse_steps, mse, max_abs_error} (the scores when
    there are true values)."""
    folder, run, weights = _run_and_weights(run, weights, log)
    if net is None:
        if run is None:
            raise SeqgenError(f"{weights}: not inside a seqgen run folder; say which net it "
                              "belongs to with --net NET.prototxt")
        net = run.net
    _check_sequence_run(run, folder, data)
    mode = mode or (run.get("input") if run else None) or "previous"
    spec = data or (run.get("data_abs", run.data) if run else None) or _default_spec(net)
    check_generated(out or folder or ".", GENERATED, folder, (weights, net, spec))
    _, true = resolve_source(spec)
    steps = steps or len(true)
    check_sequence_size(steps, true)
    if prime >= steps:
        log(f"Warning: --prime {prime} is not below --steps {steps}: every step is fed a true "
            "value, nothing runs free")
    test = Net(net, weights, TEST, options={"fork_compat": bool(run and run.fork_compat)})
    try:
        generated = generate(test, steps, mode, true, prime)
    except GenerationDiverged as e:
        target = out or folder or "."
        raise GenerationDiverged(
            f"{e} ({weights}, input mode '{mode}'"
            f"{f', primed with {prime} steps' if prime else ''});"
            f" nothing was written (no generated.csv or generated.png in {target}); try the "
            "weights of an earlier snapshot", e.step, e.values) from None
    out = out or folder or "."
    os.makedirs(out, exist_ok=True)
    name = os.path.splitext(os.path.basename(net))[0]
    result = write_generation_figure(out, name, generated, true, prime, mode, steps,
                                     weights=weights)
    log(f"Wrote {shown(result['csv'])} and {shown(result['png'])}")
    return result


GENERATED = ("generated.csv", "generated.json", "generated.png")


def _default_spec(net):
    """The sinusoid the net's prototxt names (or the fork's), for --net without --data."""
    from ..data.sequence import default_data_spec  # lazy: the sequence plan imports the solver

    return default_data_spec(net)


def check_generated(target, names, folder, inputs):
    """generate rewrites its own generated.* wherever it writes, but never the command's
    inputs nor another run's files (io.outputs' rules, without --force)."""
    if not os.path.isdir(target):
        return  # a new folder: nothing in it to lose
    inputs = [*inputs, *(i.split(":", 1)[-1] for i in inputs if i)]
    for name in names:
        check_output(os.path.join(target, name), inputs=inputs, own_run=folder, force=True)


TEXT_ONLY = ("temperature", "top_k", "seed", "samples", "argmax", "top_p", "beam",
             "beam_alpha", "stop", "prime_file", "static")


def generate_command(weights=None, net=None, steps=None, prime=None, out=None, mode=None,
                     data=None, temperature=None, top_k=None, seed=None, samples=None,
                     argmax=False, log=print, run=None, top_p=None, beam=None,
                     beam_alpha=None, stop=None, prime_file=None, static=None):
    """`seqgen generate [RUN]`: sample text from a text run, or run a sequence net
    free-running; returns the lines to print (`log` gets the notes)."""
    if out is not None:
        check_output_folder(out)
    folder, run, weights = _run_and_weights(run, weights, log)
    given = {"temperature": temperature, "top_k": top_k, "seed": seed, "samples": samples,
             "argmax": argmax or None, "top_p": top_p, "beam": beam, "beam_alpha": beam_alpha,
             "stop": stop or None, "prime_file": prime_file, "static": static}
    if run is not None and run.data_kind == "text":
        from .text_run import read_prime_file, sample_from_run  # lazy: text runs only

        if mode is not None:
            raise SeqgenError(f"--input {mode} is for sequence runs; {folder} is a text run "
                              "(it reads its own predictions back as tokens)")
        check_generated(out or folder, (TEXT_FILE, RECORD_FILE), folder, (weights, net, data))
        if prime_file is not None and prime is not None:
            raise SeqgenError("--prime and --prime-file: give one of them")
        prime = read_prime_file(prime_file) if prime_file is not None else prime
        text, path = sample_from_run(
            folder, run, prime if prime is not None else "\n", steps,
            1.0 if temperature is None else temperature, top_k or 0, seed, samples or 1,
            argmax, weights, net, out, log, 1.0 if top_p is None else top_p, beam or 0,
            1.0 if beam_alpha is None else beam_alpha, stop or (), static,
            prime_file=prime_file)
        log(f"Wrote {shown(path)} and its record {RECORD_FILE}")
        return [text.removesuffix("\n")]
    flags = [f"--{k.replace('_', '-')}" for k in TEXT_ONLY if given[k] is not None]
    if flags:
        raise SeqgenError(f"{' '.join(flags)}: for text runs (sampling tokens); this run "
                          "generates a sequence")
    try:
        steps_primed = int(prime) if prime is not None else 0
    except ValueError:
        raise SeqgenError(f"--prime {prime!r}: {folder or weights} is a sequence run, whose "
                          "--prime is a number of true steps to feed first (text runs take a "
                          "text); name a text run: seqgen generate RUN --prime TEXT") from None
    if steps_primed < 0:
        raise SeqgenError(f"--prime must be >= 0, got {steps_primed}")
    result = generate_from_run(weights=weights, net=net, steps=steps, prime=steps_primed,
                               out=out, mode=mode, data=data, log=log, run=folder)
    return sequence_lines(result)


def sequence_lines(result):
    steps = result["steps"]
    if "mse" not in result:
        lines = [f"Generated {steps} steps (no true sequence to compare with)"]
    else:
        over = "" if result["mse_steps"] == steps else \
            f" over the first {result['mse_steps']} steps (the true sequence's length)"
        lines = [f"Generated {steps} steps: MSE {result['mse']:.6g}, "
                 f"max abs error {result['max_abs_error']:.4g}{over}"]
    return lines  # (the files written: generate_from_run says which)

