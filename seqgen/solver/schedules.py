"""Learning-rate policies (SGDSolver::GetLearningRate); `it` = completed updates.

Caffe computes the rate from float32 parameters (base_lr, gamma, power) and the integer
iteration, and returns it as a float32 (Dtype). Where its C++ expression is float
arithmetic (`gamma * iter` in inv, `1 - iter/max_iter` in poly, the sigmoid's argument)
that is done in float32 here too; `pow`/`exp` are evaluated in double and the rate is
rounded to float32 once, as `Dtype rate = base_lr * pow(...)` does.
"""
import numpy as np

from ..errors import SeqgenError

POLICIES = ("fixed", "step", "exp", "inv", "multistep", "poly", "sigmoid")

f32 = np.float32


def check_policy(p, where="solver"):
    """Caffe's CHECKs for the lr policy, made before training starts (Caffe makes them at
    the first update, or never: a multistep without stepvalue silently keeps base_lr)."""
    policy = p.lr_policy
    if not policy:
        raise SeqgenError(f"{where}: lr_policy is not set (known: {', '.join(POLICIES)})")
    if policy not in POLICIES:
        raise SeqgenError(f"{where}: unknown lr_policy '{policy}' (known: {', '.join(POLICIES)})")
    if policy in ("step", "exp", "inv", "multistep", "sigmoid") and p.gamma < 0:
        raise SeqgenError(f"{where}: lr_policy '{policy}' needs gamma >= 0 (got {p.gamma:g})")
    if policy in ("step", "sigmoid") and p.stepsize <= 0:
        raise SeqgenError(f"{where}: lr_policy '{policy}' needs stepsize > 0 "
                          f"(got {p.stepsize})")
    if policy == "multistep":
        # (repeated or decreasing stepvalues are accepted, as by Caffe: one step is taken
        # per iteration while the next stepvalue has been reached)
        if not len(p.stepvalue):
            raise SeqgenError(f"{where}: lr_policy 'multistep' needs at least one stepvalue")
    if policy == "poly" and p.max_iter <= 0:
        raise SeqgenError(f"{where}: lr_policy 'poly' needs max_iter > 0 (got {p.max_iter})")


def _pow(x, y):
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        return np.power(np.float64(x), np.float64(y))


def learning_rate(p, it, current_step=0):
    """(rate as float32, current_step after this iteration) for iteration `it`.

    `current_step` is the solver's multistep position (stored in the .solverstate); it
    advances at most once per call, as in Caffe. 'step' recomputes it from `it`.
    """
    base, policy = f32(p.base_lr), p.lr_policy
    gamma, power = f32(p.gamma), f32(p.power)
    if policy == "fixed":
        return base, current_step
    if policy == "step":
        current_step = it // p.stepsize
        return f32(np.float64(base) * _pow(gamma, current_step)), current_step
    if policy == "exp":
        return f32(np.float64(base) * _pow(gamma, it)), current_step
    if policy == "inv":
        x = f32(1) + gamma * f32(it)
        return f32(np.float64(base) * _pow(x, -np.float64(power))), current_step
    if policy == "multistep":
        if current_step < len(p.stepvalue) and it >= p.stepvalue[current_step]:
            current_step += 1
        return f32(np.float64(base) * _pow(gamma, current_step)), current_step
    if policy == "poly":
        x = f32(1) - f32(it) / f32(p.max_iter)
        return f32(np.float64(base) * _pow(x, power)), current_step
    if policy == "sigmoid":
        arg = -gamma * (f32(it) - f32(p.stepsize))
        with np.errstate(over="ignore"):
            e = np.exp(np.float64(arg))
        return f32(np.float64(base) * (1.0 / (1.0 + e))), current_step
    check_policy(p)  # raises
    raise AssertionError(policy)
