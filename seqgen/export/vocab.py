"""The vocabulary a text net's export carries: a text run's vocab.txt, written beside the
exported file (same format) and into the model's metadata (ONNX metadata_props, the
safetensors header): "vocab", the tokens in id order as a JSON list, and "tokens",
chars or words. Without it the exported net's ids mean nothing."""
import json
import os
from dataclasses import dataclass

from ..data.tokens import VOCAB_FILE, Vocabulary, is_text_spec, parse_spec
from ..io.atomic import atomic_write_text
from ..io.outputs import check_output
from ..runs.record import RUN_FILE, RunRecord


@dataclass
class ExportedVocabulary:
    vocab: Vocabulary
    kind: str | None  # chars or words (None when no run.json says)

    def metadata(self):
        """{key: text} for the model's metadata."""
        out = {"vocab": json.dumps(self.vocab.tokens, ensure_ascii=False)}
        if self.kind:
            out["tokens"] = self.kind
        return out

    def beside(self, out):
        return os.path.join(os.path.dirname(os.path.abspath(out)), VOCAB_FILE)

    def check(self, out, force, inputs):
        """Refuse (before anything is written) a vocab.txt beside `out` holding another
        text, unless --force."""
        check_output(self.beside(out), flag=f"--out {out}: beside it,", inputs=inputs,
                     force=force, content=self.vocab.file_text().encode("utf-8"))

    def write(self, out):
        path = self.beside(out)
        atomic_write_text(path, self.vocab.file_text())
        return (f"Wrote {path} ({len(self.vocab)} tokens, id order"
                + (f", {self.kind}" if self.kind else "") + "; also in the model's metadata "
                "as \"vocab\")")


def run_vocabulary(source):
    """The ExportedVocabulary of the run folder `source` names (a run folder, or a
    .caffemodel in one), or None when there is no vocab.txt there."""
    folder = source if os.path.isdir(source) else os.path.dirname(os.path.abspath(source))
    if not os.path.exists(os.path.join(folder, VOCAB_FILE)):
        return None
    kind = None
    if os.path.exists(os.path.join(folder, RUN_FILE)):
        data = RunRecord.read(folder).data
        kind = parse_spec(data)[0] if is_text_spec(data) else None
    return ExportedVocabulary(Vocabulary.read(folder), kind)
