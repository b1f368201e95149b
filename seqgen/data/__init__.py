"""What seqgen trains on: data plans (one per kind of data, registered in `plans.PLANS` by
importing their modules here), the sources they read, the feeders that write the net's
inputs, the feedback schedule and held-out testing. Import `plan_class` from here so that
the registry is complete."""
from . import arrays, own, sequence, text  # noqa: F401  (they register)
from .plans import (  # noqa: F401
    DataPlan,
    Option,
    PlanOptions,
    check_spec,
    on_off,
    plan_class,
    plan_options,
    resume_order,
)
