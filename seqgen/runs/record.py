"""The run record: what a training run is and where it got to, as one type.

`run.json` in the run folder is its JSON form (`to_json` / `read`); a snapshot's sidecar
keeps the settings a resume needs (`RunSettings`, also readable from run.json), and
`seqgen generate` / `seqgen plot` read the record to work without repeating options. The
JSON keys are the ones seqgen 0.1.0 wrote, so every run folder it left still reads.
A record read from a folder that has moved since (a project tree copied elsewhere) finds
its files again: paths that no longer exist are tried relative to the folder's new place.
"""
import dataclasses
import json
import os
from dataclasses import dataclass, field

from ..errors import SeqgenError
from ..io.atomic import atomic_write_text

RUN_FILE = "run.json"

#: the value of a key that is not written at all (the keys from data_abs on are written only
#: once they are set; a None is written as null)
_UNSET = object()


@dataclass
class RunRecord:
    """run.json. Paths are absolute; `data` is the spec as given, `data_abs` the spec with
    its file's absolute path when it names a file (`chars:/abs/corpus.txt`), so that the run
    is found from any working directory."""

    net: str = None
    name: str = None
    data: str | None = None
    data_kind: str = "sequence"
    input: str | None = None
    fork_compat: bool = False
    solver: str = None
    max_iter: int = None
    random_seed: int = None
    feedback: bool = True
    data_abs: object = _UNSET
    holdout_steps: object = _UNSET
    feedback_schedule: object = _UNSET  # {share, ramp, refresh} while feedback is on
    restart_flat: object = _UNSET  # sequence runs started again when flat (a fraction)
    restart_limit: object = _UNSET  # ... above this share of the sequence's variance
    keep_best: object = _UNSET  # sequence runs checked every F: the best is the result
    resumed_from: object = _UNSET
    iterations: object = _UNSET
    weights: object = _UNSET
    solverstate: object = _UNSET
    fingerprint: dict = field(default_factory=dict)
    train_seconds: object = _UNSET
    final_loss: object = _UNSET
    final_test_loss: object = _UNSET
    diverged: object = _UNSET
    text: object = _UNSET  # text runs: {split, val, test, early_stop, vocabulary, ...}
    scores: object = _UNSET  # what final_scores gave (a text run's test split)
    best: object = _UNSET  # --keep-best: {iteration, mse, weights} of the best checked snapshot
    extra: dict = field(default_factory=dict)  # keys of later seqgen versions, kept as read

    # -- JSON --------------------------------------------------------------------------
    def to_json(self):
        out = {}
        for f in dataclasses.fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if value is not _UNSET:
                out[f.name] = value
        out.update(self.extra)
        return out

    @classmethod
    def from_json(cls, data):
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        record = cls(**{k: v for k, v in data.items() if k in known})
        record.extra = {k: v for k, v in data.items() if k not in known}
        return record

    def get(self, key, default=None):
        """A field's value, or `default` when it is unset or None."""
        value = getattr(self, key, _UNSET)
        return default if value is _UNSET or value is None else value

    def result_weights(self):
        """The snapshot that stands for the run: its best checked one (--keep-best) while
        that file is there, else its last."""
        best = self.get("best")
        if isinstance(best, dict) and isinstance(best.get("weights"), str) \
                and os.path.isfile(best["weights"]):
            return best["weights"]
        return self.get("weights")

    def unset(self, *keys):
        for key in keys:
            setattr(self, key, _UNSET)

    def write(self, folder):
        atomic_write_text(os.path.join(folder, RUN_FILE),
                          json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def read(cls, folder):
        """The record of a run folder, its paths relocated if the folder has moved."""
        path = os.path.join(folder, RUN_FILE)
        try:
            with open(path) as f:
                data = json.load(f)
        except FileNotFoundError:
            raise SeqgenError(f"{folder}: not a seqgen run folder (no {RUN_FILE})") from None
        except (OSError, ValueError) as e:
            raise SeqgenError(f"{path}: cannot read run record ({e})") from None
        if not isinstance(data, dict):
            raise SeqgenError(f"{path}: cannot read run record (not a JSON object)")
        record = cls.from_json(data)
        record.relocate(folder)
        record.find_relative_data(folder)
        return record

    # -- a moved folder ----------------------------------------------------------------
    def recorded_folder(self):
        """The folder the run was in when the record was written (from its snapshot paths)."""
        for key in ("weights", "solverstate"):
            value = self.get(key)
            if isinstance(value, str):
                return os.path.dirname(value)
        return None

    def relocate(self, folder):
        """Paths that no longer exist: the folder's own files are looked for in `folder`,
        other files at the same place relative to it as before."""
        old = self.recorded_folder()
        here = os.path.abspath(folder)
        if old is None or os.path.normpath(old) == os.path.normpath(here):
            return
        for key in ("weights", "solverstate", "resumed_from"):
            value = self.get(key)
            if isinstance(value, str) and not os.path.exists(value):
                moved = os.path.join(here, os.path.basename(value))
                if os.path.exists(moved):
                    setattr(self, key, moved)
        best = self.get("best")
        if isinstance(best, dict) and isinstance(best.get("weights"), str):
            moved = os.path.join(here, os.path.basename(best["weights"]))
            if not os.path.exists(best["weights"]) and os.path.exists(moved):
                self.best = {**best, "weights": moved}
        for key in ("net", "solver", "data_abs"):
            value = self.get(key)
            prefix, path = data_file(value) if isinstance(value, str) else ("", None)
            if path and os.path.isabs(path) and not os.path.exists(path):
                moved = os.path.normpath(os.path.join(here, os.path.relpath(path, old)))
                if os.path.exists(moved):
                    setattr(self, key, prefix + moved)


    def find_relative_data(self, folder):
        """Records written before data_abs covered KIND:FILE specs keep the file relative to
        where training ran, which they do not say: when it is not found from here, look
        beside the run folder and one level up (`--out DIR` and `runs/NAME` run there)."""
        if self.get("data_abs") is not None or not isinstance(self.data, str):
            return
        prefix, path = data_file(self.data)
        if os.path.isabs(path) or os.path.isfile(path):
            return
        parent = os.path.dirname(os.path.abspath(folder))
        for base in (parent, os.path.dirname(parent)):
            if os.path.isfile(os.path.join(base, path)):
                self.data_abs = prefix + os.path.normpath(os.path.join(base, path))
                return


def data_file(spec):
    """(prefix, file) of a data spec naming a file: ("", PATH) or ("chars:", PATH) for
    KIND:PATH (not a length such as sinusoid:320); the file part is what is made absolute
    and relocated."""
    kind, sep, rest = spec.partition(":")
    if sep and kind.isalpha() and len(kind) > 1 and rest and not rest.isdigit():
        return kind + ":", rest
    return "", spec


def absolute_data(spec):
    """The spec with its file made absolute, when it names an existing file; else None."""
    if spec is None:
        return None
    prefix, path = data_file(str(spec))
    return prefix + os.path.abspath(path) if os.path.isfile(path) else None


@dataclass
class RunSettings:
    """The options a run was trained with, as a resume takes them back (None: not
    recorded). A sidecar keeps them under meta["extra"]["run"]."""

    max_iter: int | None = None
    data: str | None = None
    input: str | None = None
    holdout: int | None = None
    feedback: bool | None = None
    fork_compat: bool | None = None
    fingerprint: dict | None = None
    text: dict | None = None
    feedback_schedule: dict | None = None
    restart_flat: float | None = None
    restart_limit: float | None = None
    keep_best: float | None = None

    def to_sidecar(self):
        out = {"max_iter": self.max_iter, "data": self.data, "input": self.input,
               "holdout": self.holdout, "feedback": self.feedback,
               "fork_compat": self.fork_compat}
        # (only where they apply)
        for key in ("text", "feedback_schedule", "restart_flat", "restart_limit",
                    "keep_best"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out

    @classmethod
    def from_sidecar(cls, meta):
        run = (meta.get("extra") or {}).get("run") or {}
        known = {f.name for f in dataclasses.fields(cls)}
        settings = cls(**{k: v for k, v in run.items() if k in known})
        settings.fingerprint = meta.get("fingerprint")
        return settings

    @classmethod
    def from_record(cls, record):
        return cls(max_iter=record.get("max_iter"), data=record.get("data_abs",
                                                                     record.get("data")),
                   input=record.get("input"), holdout=record.get("holdout_steps"),
                   feedback=record.get("feedback"), fork_compat=record.get("fork_compat"),
                   fingerprint=record.get("fingerprint"), text=record.get("text"),
                   feedback_schedule=record.get("feedback_schedule"),
                   restart_flat=record.get("restart_flat"),
                   restart_limit=record.get("restart_limit"),
                   keep_best=record.get("keep_best"))
