"""The recurrent state of an exported layer: graph inputs `<layer>.h`, `<layer>.c` (N, H)
and outputs `<layer>.h_out`, `<layer>.c_out`; for a BVLC layer with expose_hidden, the
net's own h_0/c_0 bottoms and h_T/c_T tops instead (shape (1, N, H))."""
from . import net_view


def initial_states(ctx, layer, N, H, shape):
    """The initial state values, reshaped to `shape`, in net_view.state_keys order."""
    keys = net_view.state_keys(layer)
    if net_view.exposed(layer):
        first = 3 if layer.static else 2
        sources = [ctx.value(layer.param.bottom[first + k]) for k in range(len(keys))]
    else:
        sources = [ctx.state(layer, key, (N, H)) for key in keys]
    return [ctx.reshape(v, shape, f"{layer.name}.{key}0") for v, key in zip(sources, keys)]


def final_states(ctx, layer, values, N, H):
    """Bind the final state values (any shape holding N x H numbers)."""
    for k, (key, value) in enumerate(zip(net_view.state_keys(layer), values)):
        if net_view.exposed(layer):
            top = layer.param.top[1 + k]
            ctx.define(top, ctx.reshape(value, ctx.shape(top), f"{layer.name}/{top}"))
        else:
            ctx.state_out(layer, key, ctx.reshape(value, (N, H), f"{layer.name}.{key}_T"))
