"""What a sequence net's inputs are and what is fed to them: shared by training (the data
plans' feeders) and free-running generation, which the feedback schedule runs while
training, so it lives here, below the data plans."""
from ..errors import SeqgenError

#: what a sequence net's data input holds at step t: the previous value, or always 0 (the
#: fork's driver)
MODES = ("previous", "zero")
CLIP_NAMES = ("clip", "cont")


def input_roles(net):
    """(data, clip, label) input blob names of a sequence net; label is None for a TEST net."""
    names = list(net.inputs)
    clip = next((n for n in names if n in CLIP_NAMES), None)
    label = "label" if "label" in names else None
    rest = [n for n in names if n not in (clip, label)]
    if clip is None:
        raise SeqgenError(f"{net.source}: the net has no 'clip' (or 'cont') input; sequence "
                          f"training needs one (inputs: {', '.join(names) or 'none'})")
    if len(rest) != 1:
        raise SeqgenError(f"{net.source}: expected exactly one data input besides "
                          f"'{clip}'{' and label' if label else ''}, found: "
                          f"{', '.join(rest) or 'none'}")
    return rest[0], clip, label
