"""Scores of a finished run, as one dict: what `seqgen sweep` tabulates for every run.

Sequence runs are generated free-running over their whole sequence (generate.csv and
generated.png are written in the run folder) and scored by MSE and max abs error; text
runs report their test split's loss and perplexity or bits per character; every run
reports its final training loss and last test loss from run.json.
"""
from ..runs.record import RunRecord
from .generate_run import generate_from_run


def evaluate_run(folder, log=print):
    """{"final_loss", "test_loss", ...kind-specific scores} of the run in `folder`."""
    record = RunRecord.read(folder)
    scores = {"final_loss": record.get("final_loss"),
              "test_loss": record.get("final_test_loss"),
              "iterations": record.get("iterations"),
              "train_seconds": record.get("train_seconds")}
    scores.update(EVALUATORS.get(record.data_kind, _none)(folder, record, log))
    return scores


def _sequence(folder, record, log):
    result = generate_from_run(weights=record.result_weights(), out=folder, log=log)
    return {"mse": result.get("mse"), "max_abs_error": result.get("max_abs_error")}


def _text(folder, record, log):
    """The test split's scores training recorded (loss, perplexity or bits per char)."""
    return dict(record.get("scores") or {})


def _none(folder, record, log):
    return {}


#: run.json's data_kind -> how runs of that kind are scored
EVALUATORS = {"sequence": _sequence, "text": _text}
