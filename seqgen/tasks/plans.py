"""Every data plan seqgen has, registered in `plan.PLANS` by importing its module; import
`plan_class` from here so that the registry is complete."""
from . import arrays_plan, own_data_plan, sequence_plan, text_plan  # noqa: F401  (they register)
from .plan import DataPlan, PlanOptions, plan_class  # noqa: F401
