"""Adam, step for step as torch.optim.Adam computes it for CPU tensors, without importing torch.optim's machinery.

Building or stepping any torch.optim optimizer imports torch._dynamo (its methods are wrapped to keep the
compiler out), ~3.7 s of CPU on a 2-core AMD EPYC without AVX-512 (`python -X importtime -c 'import torch,
torch._dynamo'`): as much as importing torch itself, paid again by every job of the DAG, most of which train
or attack for seconds. The update below is torch's single-tensor Adam (what torch.optim.Adam runs for CPU
tensors) without weight decay, AMSGrad or complex parameters, which nothing here uses: the same operations in
the same order on the same dtypes, so a run is bit for bit the run torch.optim.Adam gives
(`tests/test_adam.py`). On CUDA torch would take its multi-tensor path, the same arithmetic in fewer launches.
"""
from __future__ import annotations

import torch


class Adam:
    """The subset of torch.optim.Adam's interface the trainers use: `param_groups` (dicts holding `params`,
    `lr`, `betas`, `eps`; a rate set on a group applies from the next step), `step()` and `zero_grad()`."""

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8):
        params = list(params)
        groups = params if params and isinstance(params[0], dict) else [{"params": params}]
        self.param_groups = [{"lr": lr, "betas": tuple(betas), "eps": eps, **group, "params": list(group["params"])}
                             for group in groups]
        self.state: dict[torch.Tensor, dict] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.detach_().zero_()

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state.get(p)
                if state is None:
                    # torch keeps the count as a float32 tensor and reads it back as a float: the same value
                    state = self.state[p] = {"step": 0.0, "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                                             "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format)}
                state["step"] += 1.0
                step, exp_avg, exp_avg_sq = state["step"], state["exp_avg"], state["exp_avg_sq"]
                exp_avg.lerp_(p.grad, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                step_size = lr / (1 - beta1 ** step)
                denom = (exp_avg_sq.sqrt() / (1 - beta2 ** step) ** 0.5).add_(eps)
                p.addcdiv_(exp_avg, denom, value=-step_size)
