"""The optional parts of seqgen (pyproject's extras) and how to install one.

The packages are read from the installed distribution's metadata, so pyproject.toml stays
the one place they are declared. The hint names them directly: seqgen is installed from a
clone, and `pip install 'seqgen[onnx]'` would fetch an unrelated package of that name."""
import shlex
from importlib import metadata

DISTRIBUTION = "seqgen-caffe"


def extra_packages(extra):
    """The requirements pyproject.toml lists for `extra` ([] when not installed as a
    distribution, e.g. run from a source tree on PYTHONPATH)."""
    try:
        requirements = metadata.requires(DISTRIBUTION) or []
    except metadata.PackageNotFoundError:
        return []
    marker = f'extra == "{extra}"'
    return [r.split(";")[0].strip() for r in requirements if marker in r.replace("'", '"')]


def install_hint(extra):
    """`pip install PACKAGES (or, in seqgen's source folder, pip install '.[EXTRA]')`."""
    packages = " ".join(shlex.quote(p) for p in extra_packages(extra))
    from_clone = f"pip install '.[{extra}]'"
    if not packages:
        return f"{from_clone} in seqgen's source folder"
    return f"pip install {packages} (or, in seqgen's source folder, {from_clone})"
