"""AdamW over flat parameter groups, with gradient clipping folded into its step.

A model's ~40 parameter tensors cost torch's AdamW and clip_grad_norm_ a loop of small ops each
on the CPU (the norm of every gradient, a multiply, the step counters), and their passes over
memory: ~1.5 ms of a 20-ms pointer step. Here each group's parameters become views into one flat
tensor, and their gradients views into one flat gradient that backward accumulates into in
place. A step is then the gradient norm (one dot product per group) and one fused AdamW call per
group, which divides the gradients by the clipping factor as it reads them.

The optimizer is a torch.optim.AdamW whose parameters are the flat tensors: learning-rate
schedulers, state_dict() and load_state_dict() work as for AdamW, and load_state_dict() also takes
the per-parameter state of torch's AdamW over the same model (what resume checkpoints held before).
"""

from __future__ import annotations

import torch
from torch import nn


class DetachedGradient(RuntimeError):
    """A parameter or its gradient is no longer FlatAdamW's view: our bug, or a caller's misuse."""


class FlatAdamW(torch.optim.AdamW):
    """AdamW (decoupled weight decay on tensors of 2 or more dimensions, none on biases and norms)
    over `model`'s trainable parameters, which become views into one flat tensor per group.
    `max_norm` > 0 clips the gradients' total norm to it, as clip_grad_norm_ would, inside step().

    The flat gradients are zeroed in place by zero_grad(); the parameters' .grad must stay the views
    it set (never set them to None), and the model must not be moved to another device or dtype:
    step() raises DetachedGradient where either happened, rather than silently skip a parameter."""

    def __init__(self, model: nn.Module, lr: float, weight_decay: float, max_norm: float = 0.0):
        groups: dict[tuple, list[nn.Parameter]] = {}
        for p in model.parameters():
            if p.requires_grad:
                groups.setdefault((p.dim() > 1, p.dtype, p.device), []).append(p)
        flats = [{"params": [_flatten(params)], "weight_decay": weight_decay if decay else 0.0, "decay": decay}
                 for (decay, _, _), params in groups.items()]
        super().__init__(flats, lr=lr)
        self.max_norm = max_norm
        self._grads_at = [(name, p, p.grad.data_ptr()) for name, p in model.named_parameters() if p.requires_grad]

    def load_state_dict(self, state_dict: dict) -> None:
        if any(len(g["params"]) != 1 for g in state_dict["param_groups"]):
            state_dict = self._from_per_parameter(state_dict)
        super().load_state_dict(state_dict)

    def _from_per_parameter(self, saved: dict) -> dict:
        """torch AdamW's state over [weights, biases and norms] groups, as nextsweep's engine saved it
        before FlatAdamW, laid out as this optimizer's flat groups: each moment concatenated in the
        model's parameter order, which both keep."""
        old = saved["param_groups"]
        kinds = [g["decay"] for g in self.param_groups]
        if len(old) != 2 or len(set(kinds)) != len(kinds):
            raise ValueError(f"optimizer state has {len(old)} parameter groups; expected AdamW's 2 "
                             "(weights, then biases and norms) over a model of one dtype and device")
        groups, state = [], {}
        for i, (group, decay) in enumerate(zip(self.param_groups, kinds)):
            was = old[0 if decay else 1]
            flat = group["params"][0]
            per_param = [saved["state"].get(k, {}) for k in was["params"]]
            if all(per_param):
                state[i] = {"step": per_param[0]["step"].clone(),
                            **{m: torch.cat([s[m].reshape(-1) for s in per_param]) for m in ("exp_avg", "exp_avg_sq")}}
                if state[i]["exp_avg"].numel() != flat.numel():
                    raise ValueError(f"optimizer state holds {state[i]['exp_avg'].numel()} values for a group of "
                                     f"{flat.numel()} parameters; it is from another model")
            groups.append({**was, "params": [i], "decay": decay, "fused": group["fused"]})
        return {"state": state, "param_groups": groups}

    def zero_grad(self, set_to_none: bool = False) -> None:
        for group in self.param_groups:
            group["params"][0].grad.zero_()

    @torch.no_grad()
    def step(self, closure=None):
        if closure is not None:
            raise NotImplementedError("FlatAdamW.step takes no closure")
        self._check_views()
        scale = self._clip_scale()
        for group in self.param_groups:
            p = group["params"][0]
            state = self.state[p]
            if not state:  # as AdamW(fused=True) makes it, so that state_dict() reads the same
                state.update(step=torch.zeros((), dtype=torch.float32, device=p.device),
                             exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
            state["step"] += 1
            beta1, beta2 = group["betas"]
            torch._fused_adamw_([p], [p.grad], [state["exp_avg"]], [state["exp_avg_sq"]], [], [state["step"]],
                                amsgrad=False, lr=group["lr"], beta1=beta1, beta2=beta2,
                                weight_decay=group["weight_decay"], eps=group["eps"], maximize=False,
                                grad_scale=scale, found_inf=None)
        return None

    def _check_views(self) -> None:
        """A gradient no longer inside the flat tensors would silently never be stepped. Addresses,
        not identities: Module.to() swaps a gradient's storage (with its parameter's) and keeps the
        object. ~20 us a step for 40 parameters."""
        for name, p, grad_at in self._grads_at:
            grad = p.grad
            if grad is None or grad.data_ptr() != grad_at:
                raise DetachedGradient(f"parameter {name!r}: its .grad is no longer FlatAdamW's view (set to None, "
                                       "or the model moved to another device or dtype after the optimizer was built); "
                                       "zero gradients with the optimizer's zero_grad() and build it after moving the model")

    def _clip_scale(self) -> torch.Tensor | None:
        """What the fused step divides the gradients by: clip_grad_norm_'s factor, inverted."""
        if self.max_norm <= 0:
            return None
        grads = [g["params"][0].grad for g in self.param_groups]
        norm = torch.stack([torch.dot(g, g) for g in grads]).sum().sqrt()
        return ((norm + 1e-6) / self.max_norm).clamp_(min=1.0).float()


def _flatten(params: list[nn.Parameter]) -> torch.Tensor:
    """One flat tensor holding `params`' values, with a flat .grad; each parameter (and its .grad)
    becomes a view into them."""
    flat = torch.cat([p.detach().reshape(-1) for p in params])
    flat.grad = torch.zeros_like(flat)
    offset = 0
    for p in params:
        n = p.numel()
        p.data = flat[offset:offset + n].view_as(p)
        p.grad = flat.grad[offset:offset + n].view_as(p)
        offset += n
    return flat
