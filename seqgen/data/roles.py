"""Which of a net's Input blobs holds what (token ids, cont markers, labels), found from the
layers that read them (their `bottom_roles`), through automatically inserted Splits."""
from ..errors import SeqgenError


def inputs_by_role(net):
    """{role: input blob name} for the roles the net's layers give its inputs."""
    source = {name: name for name in net.inputs}  # blob -> the input it carries
    roles = {}
    for layer in net.layers:
        bottoms = list(layer.param.bottom)
        if layer.passes_through:
            for top in layer.param.top:
                if bottoms and bottoms[0] in source:
                    source[top] = source[bottoms[0]]
            continue
        for i, blob in enumerate(bottoms):
            role = layer.bottom_roles.get(i)
            if role and blob in source:
                roles.setdefault(role, source[blob])
    return roles


def require_roles(net, roles, needed, what):
    """Refuse a net that lacks an input for one of the `needed` roles."""
    missing = [r for r in needed if r not in roles]
    if missing:
        raise SeqgenError(
            f"{net.source}: {what} needs Input blobs for the net's "
            + ", ".join(missing) + " (an Input read by an Embed layer for the token ids, by "
            "the recurrent layers as cont, by the loss as labels); the net has inputs "
            + (", ".join(net.inputs) or "none"))
