"""What seqgen trains on: data plans (one per kind of data, registered in `plans.PLANS` when
the registry is first read), the sources they read, the feeders that write the net's inputs,
the feedback schedule and held-out testing.

The names below come from `plans` on first use (PEP 562), so that importing a module of this
package, as `seqgen generate` imports `sources`, does not import the plans, and through
them the solver."""
import importlib

_PLAN_NAMES = ("DataPlan", "Option", "PlanOptions", "check_spec", "on_off", "plan_class",
               "plan_options", "resume_order")


def __getattr__(name):
    if name not in _PLAN_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(".plans", __name__), name)
    globals()[name] = value  # (found directly from now on)
    return value


def __dir__():
    return sorted(set(globals()) | set(_PLAN_NAMES))


__all__ = list(_PLAN_NAMES)
