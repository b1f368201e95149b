"""The PyTorch module that a `seqgen export --format torch` state dict loads into.

seqgen copies this file beside the .safetensors as model.py (seqgen itself never imports
it: it needs torch). Use:

    from model import load
    net = load("net.safetensors")          # SeqgenNet, weights loaded (strict)
    y, state = net(x)                      # x: (T, N, input_size), time-major
    y, state = net(x_next, state)          # carry the state on

The net is [nn.Embedding] -> nn.LSTM (num_layers = the Caffe stack) or one nn.RNN per
Caffe RNN layer, each followed by BVLC's output layer o = tanh(W_ho h + b_o) (rnn_out)
-> [nn.Linear] -> [softmax]. bias_ih holds Caffe's bias and bias_hh is 0. The fork's
(T*N, I) blobs are x.reshape(T, N, I); a state of zeros (state=None) is Caffe's cont = 0 at
the first step, and there are no restarts inside x.
"""
import json

import torch
from torch import nn


class SeqgenNet(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        sizes = config["hidden_sizes"]
        embed = config.get("embed")
        if embed:
            self.embed = nn.Embedding(embed["num"], embed["dim"])
            if embed["bias"]:
                self.embed_bias = nn.Parameter(torch.zeros(embed["dim"]))
        if config["kind"] == "lstm":
            self.rnn = nn.LSTM(config["input_size"], sizes[0], num_layers=len(sizes))
        else:
            inputs = [config["input_size"]] + sizes[:-1]
            self.rnn = nn.ModuleList(nn.RNN(i, h) for i, h in zip(inputs, sizes))
            self.rnn_out = nn.ModuleList(nn.Linear(h, h) for h in sizes)
        if config.get("output_size"):
            self.out = nn.Linear(sizes[-1], config["output_size"], bias=config["out_bias"])

    def forward(self, x, state=None):
        """x (T, N, input_size), or (T, N) indices with an embedding. state: what the last
        call returned, or None for zeros. Returns (y (T, N, ...), state)."""
        if self.config.get("embed"):
            x = self.embed(x.long())
            if self.config["embed"]["bias"]:
                x = x + self.embed_bias
        if self.config["kind"] == "lstm":
            y, state = self.rnn(x, state)
        else:
            state = list(state) if state is not None else [None] * len(self.rnn)
            y = x
            for k, (rnn, out) in enumerate(zip(self.rnn, self.rnn_out)):
                h, state[k] = rnn(y, state[k])
                y = torch.tanh(out(h))
        if self.config.get("output_size"):
            y = self.out(y)
        if self.config.get("softmax"):
            y = torch.softmax(y, dim=-1)
        return y, state


def load(path):
    """A SeqgenNet with the weights of a seqgen .safetensors file."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(path, "pt") as f:
        config = json.loads(f.metadata()["seqgen"])
    net = SeqgenNet(config)
    net.load_state_dict(load_file(path), strict=True)
    return net
