"""Learning-rate policies (SGDSolver::GetLearningRate); `it` = completed updates."""
import math

from .errors import SeqgenError


def learning_rate(p, it, state):
    """The rate for iteration `it`. `state.current_step` carries multistep's position."""
    base, policy = p.base_lr, p.lr_policy
    if policy == "fixed":
        return base
    if policy == "step":
        if p.stepsize <= 0:
            raise SeqgenError("lr_policy 'step' needs stepsize > 0")
        state.current_step = it // p.stepsize
        return base * p.gamma ** state.current_step
    if policy == "exp":
        return base * p.gamma ** it
    if policy == "inv":
        return base * (1 + p.gamma * it) ** (-p.power)
    if policy == "multistep":
        if not len(p.stepvalue):
            raise SeqgenError("lr_policy 'multistep' needs at least one stepvalue")
        if state.current_step < len(p.stepvalue) and it >= p.stepvalue[state.current_step]:
            state.current_step += 1
        return base * p.gamma ** state.current_step
    if policy == "poly":
        return base * (1 - it / p.max_iter) ** p.power
    if policy == "sigmoid":
        return base / (1 + math.exp(-p.gamma * (it - p.stepsize)))
    raise SeqgenError(f"unknown lr_policy '{policy}' "
                      "(known: fixed, step, exp, inv, multistep, poly, sigmoid)")
