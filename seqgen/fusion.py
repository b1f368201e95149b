"""Graph rewrites the Net applies at setup: pairs of layers computed together for less work.

A rewrite matches a pattern of layer types and blob uses (never layer names), as the
registry matches types, and links the layers it fuses: they stay in the net under their
names, with their parameters, blobs and backward plan, and ask the link how to compute
the part they share. `seqgen info` lists what was fused. The Net option "fusion"
(`Net(..., options={"fusion": False})`) or the environment's SEQGEN_FUSION=off turns every
rewrite off; the results are the unfused net's to rounding (tests/test_fusion.py).

The one rewrite so far, "embed-lstm": an Embed whose top only a BVLC LSTM reads, as its x.
The LSTM's input projection of a token k is then row k of P = X W_xᵀ (V × 4H, X the table
plus the Embed's bias), computed once a forward instead of a (T·N × E) by (E × 4H) product;
backward, the gate gradients are added up by token into dP (V × 4H), and dW_x += dPᵀ X,
dW_e += dP W_x, db_e += (Σ_k dP_k) W_x replace the two T·N-row products (dx, dW_x) and the
scatter of dx. It runs when it saves work, V < T·N (tokens a forward) on the LSTM's GEMM
path; otherwise the pair computes as unfused. The Embed's top still holds the embedded rows
(a copy, cheap beside the product); its diff, the gate gradients times W_x, is formed only
when something reads it (Blob.defer_diff: the backward keeps the LSTM's gate-gradient
buffer and a copy of W_x), so a script that reads it gets what the unfused net writes, and
training never pays for it.
"""
import os
from dataclasses import dataclass

import numpy as np

from .errors import SeqgenError
from .kernels.embed import embed_backward, embed_forward

#: the Net option that turns the rewrites off (`options={"fusion": False}`)
OPTION = "fusion"
#: the environment variable that does the same for every net of a process (off / on)
ENV = "SEQGEN_FUSION"
_WORDS = {"off": False, "0": False, "false": False, "no": False,
          "on": True, "1": True, "true": True, "yes": True, "": True}


def enabled(options):
    """Whether a net built with `options` applies the rewrites: the option if given, else
    $SEQGEN_FUSION (default on)."""
    if options.get(OPTION) is not None:
        return bool(options[OPTION])
    value = os.environ.get(ENV, "")
    if value.strip().lower() not in _WORDS:
        raise SeqgenError(f"{ENV}={value!r}: expected off or on")
    return _WORDS[value.strip().lower()]


@dataclass
class Applied:
    """One rewrite tried where its pattern matched: its name, the layers, whether it was
    applied, and the line `seqgen info` shows (why not, when it was not)."""
    rewrite: str
    layers: tuple
    applied: bool
    text: str
    link: object = None  # what the fused layers share (None when refused)


#: the rewrites, in the order they are tried: name -> function(net) yielding Applied
REWRITES = {}


def rewrite(name):
    """Register a rewrite function under `name`."""
    def register(fn):
        REWRITES[name] = fn
        return fn
    return register


def apply(net):
    """Apply every registered rewrite to a built net (after its backward plan); returns
    an Applied record per match, applied or refused (none when the option or the
    environment turns fusion off)."""
    if not enabled(net.options):
        return []
    return [done for fn in REWRITES.values() for done in fn(net)]


def hold(fusions, held):
    """Make the fused layers compute unfused (held True) or fused again: a forward that
    starts or ends between them (pycaffe's start/end) sees the blobs as an unfused net."""
    for applied in fusions:
        applied.link.held = held


def _readers(net):
    """blob name -> [(layer index, bottom index)] of every layer reading it."""
    readers = {}
    for i, layer in enumerate(net.layers):
        for j, b in enumerate(layer.param.bottom):
            readers.setdefault(b, []).append((i, j))
    return readers


def _fitting(buffer, shape, dtype):
    """`buffer` when it has this shape and dtype, else a new (uninitialised) one."""
    if buffer is None or buffer.shape != tuple(shape) or buffer.dtype != dtype:
        return np.empty(shape, dtype)
    return buffer


class EmbedProjection:
    """The link of a fused Embed → LSTM pair: the LSTM's input projection from P = X W_xᵀ."""

    def __init__(self, embed, lstm, top):
        self.embed, self.lstm, self.top = embed, lstm, top  # top: the Embed's top Blob
        self._kept = None  # W_x as the last backward saw it, for the top's deferred diff
        self.active = False  # whether the last forward ran fused (backward follows it)
        self.held = False  # a partial forward (pycaffe's start/end) computes unfused
        self._dP = None
        self._P = None
        self._no_bias = None
        self._held = None  # the LSTM's gate gradients the deferred top diff is formed from

    def worth_it(self, tokens, path):
        """Fused when the table has fewer rows than a forward has tokens (V·E·4H < T·N·E·4H
        forward, the same backward), on the GEMM path (the loop kernels project in their
        own loop)."""
        return path == "gemm" and self.embed.K < tokens

    def _rows(self):
        """X = the Embed's table plus its bias (each token's embedded row)."""
        table, b = self.embed.embed_weights()
        return table + b if self.embed.bias_term else table

    def project(self, gates, path):
        """Forward: gates (T·N, 4H) = row token of P when worth it (returns True); else
        False and the LSTM multiplies its x as unfused."""
        self.active = not self.held and self.worth_it(gates.shape[0], path)
        if not self.active:
            return False
        W_x = self.lstm.blobs[0].data
        rows = self._rows()
        # (kept: a new one each forward page-faulted)
        self._P = _fitting(self._P, (len(rows), len(W_x)), gates.dtype)
        P = np.matmul(rows, W_x.T, out=self._P)
        self._no_bias = _fitting(self._no_bias, (0,), gates.dtype)
        # padding ids (-1) get zero rows, as the Embed's own top has them
        embed_forward(self.embed.token_ids(), P, self._no_bias, gates)
        return True

    def input_gradients(self, dpre, dW_x, to_input=True):
        """LSTM backward: dP = the gate gradients dpre (T·N, 4H) added up by token, and
        dW_x += dPᵀ X; the Embed top's diff when the LSTM propagates to its input."""
        V, G = self.embed.K, dpre.shape[1]
        self._dP = _fitting(self._dP, (V, G), dpre.dtype)
        self._dP.fill(0)
        embed_backward(self.embed.token_ids(), dpre, self._dP)
        dW_x += self._dP.T @ self._rows()
        if to_input:
            self._defer_top_diff(dpre)

    def _defer_top_diff(self, dpre):
        """The Embed top's diff (dpre W_x, what the unfused LSTM writes), formed when read:
        from the LSTM's gate-gradient buffer itself, which it hands over (the LSTM takes the
        buffer of the previous deferral, whose fill this one replaces, for its next
        backward), and a copy of W_x as it is now (the solver's update changes W_x)."""
        W_x = self.lstm.blobs[0].data
        kept_W = self._kept = _fitting(self._kept, W_x.shape, W_x.dtype)
        np.copyto(kept_W, W_x)
        rows = len(dpre)
        self.top.defer_diff(  # replaces the fill that read self._held, which goes back
            lambda diff, held=dpre: np.matmul(held, kept_W, out=diff.reshape(rows, -1)))
        self._held = self.lstm.exchange_gate_gradients(self._held)

    def embed_gradients(self):
        """Embed backward: dW_e += dP W_x and db_e += (Σ_k dP_k) W_x."""
        W_x = self.lstm.blobs[0].data
        self.embed.blobs[0].diff += self._dP @ W_x
        if self.embed.bias_term:
            self.embed.blobs[1].diff += self._dP.sum(axis=0) @ W_x


def _embed_lstm_refusal(net, i, readers):
    """Why Embed layer i cannot be fused with the LSTM reading its top, or the LSTM's index
    (an int) when it can."""
    top = net.layers[i].param.top[0]
    uses = readers.get(top, [])
    if len(uses) != 1 or net.layers[uses[0][0]].type != "LSTM" or uses[0][1] != 0:
        return None  # not the pattern: nothing to say
    k = uses[0][0]
    if top in net.outputs or net.blob_loss_weights.get(top):
        return f"its top '{top}' is an output of the net"
    if any(top in layer.param.top for layer in net.layers[i + 1:]):
        return f"a later layer writes its top '{top}' in place"
    lstm_grad = net.layer_needs_backward(net.layer_names[k]) and net._propagate[k][0]
    if net.layer_needs_backward(net.layer_names[i]) != lstm_grad:
        # (force_backward or propagate_down set one side only: the fused backward needs
        # the LSTM's gate gradients whenever the Embed learns)
        return "the backward plan (propagate_down / force_backward) differs between the two"
    if net.layers[i].blobs[0].data.dtype != net.layers[k].dtype:
        return "their parameters have different dtypes"
    return k


@rewrite("embed-lstm")
def embed_into_lstm(net):
    """Embed → LSTM (as its x, the only reader of the Embed's top): see the module docstring."""
    readers = _readers(net)
    for i, embed in enumerate(net.layers):
        if embed.type != "Embed":
            continue
        k = _embed_lstm_refusal(net, i, readers)
        if isinstance(k, int):
            lstm = net.layers[k]
            link = embed.fusion = lstm.fusion = EmbedProjection(
                embed, lstm, net.blobs[embed.param.top[0]])
            names = (net.layer_names[i], net.layer_names[k])
            tokens = net.blobs[embed.param.bottom[0]].count
            now = "on" if link.worth_it(tokens, lstm.path) else "off"
            yield Applied("embed-lstm", names, True, (
                f"Fused {names[0]} -> {names[1]} (embed-lstm): {names[1]}'s input projection "
                f"from a {embed.K} x {4 * lstm.H} table ({names[0]}'s rows times W_xc) while "
                f"input_dim {embed.K} < T*N tokens ({tokens} now: {now}); blob "
                f"'{embed.param.top[0]}' keeps its data, its diff is formed when read"), link)
        elif k is not None:
            yield Applied("embed-lstm", (net.layer_names[i],), False,
                          f"Not fused: {net.layer_names[i]} (Embed): {k}")
