"""Liger-Kernel's GRPO losses (PyPI `liger-kernel`, pinned 0.8.5) as a GRPO backend, run only when
named (`--backends liger-grpo`; pip install 'xentcheck[liger]'):

    triton_grpo_loss(logits (B, L+1, K), old_logp, ref_logp, completion_ids, advantages, completion_mask,
                     temperature, beta, eps_low, eps_high, inplace=False, loss_type, reduce=True)
    LigerFusedLinearGRPOLoss(beta, compiled=False, epsilon_low, epsilon_high, loss_type,
                             max_completion_length=L, temperature)(h, W, ids, mask, advantages, ...)

From the source (ops/grpo_loss.py): one Triton program per token forms lse over the vocabulary in
float32 (an online maximum), log p = z_y / T - lse, coef_1 = exp(log p - old_logp), and
-min(coef_1 A, clamp(coef_1) A) + beta (exp(ref - log p) - (ref - log p) - 1); its backward passes
-coef_1 A where clamp(coef_1) A >= coef_1 A (the min picks the unclipped term) and 0 elsewhere,
times the loss type's weight, times (onehot - p) / T. The logits carry one more position than the
completion (the last is dropped, as a causal LM's are): the adapter appends a zero row and drops
its gradient. Its loss is float32 whatever the logits' dtype; its gradient is stored in the logits'.

The fused-linear one (chunked_loss/grpo_loss.py) is plain torch over hidden states and a weight:
it is fed h = z and W = I (K x K), whose products are exact, so its GRPO math is checked on the
same logits (its logits are (h W^T).float() * (1 / T)). Without a CUDA GPU the Triton kernel runs
on the CPU through Triton's interpreter (xentcheck.backends.torch.triton_interpret); bfloat16 is
skipped there.
"""

from __future__ import annotations

from xentcheck.backends.base import Output, Variant
from xentcheck.backends.torch import io as torch_io
from xentcheck.backends.torch import triton_interpret
from xentcheck.core.cases import Case
from xentcheck.problems.grpo.cases import parse

OPTIONS = ("hi", "kl", "t", "grpo", "bnpo", "drgrpo")
LOSS_TYPES = {"grpo": "grpo", "bnpo": "bnpo", "drgrpo": "dr_grpo"}


class LigerGrpo(triton_interpret.LigerBackend):
    name = "liger-grpo"
    label_forms = ("index",)
    dtypes = ("float16", "bfloat16", "float32", "float64")
    extra_dims = True

    def variants(self) -> list[Variant]:
        return [Variant("triton_grpo_loss", "triton", ("index",), options=OPTIONS, kind="grpo",
                        api="triton_grpo_loss(logits, old_logp, ref_logp, ids, advantages, mask, T, beta, eps_low, "
                            "eps_high, loss_type, reduce=True)"),
                Variant("LigerFusedLinearGRPOLoss", "eager", ("index",), options=OPTIONS, kind="grpo",
                        api="LigerFusedLinearGRPOLoss(beta, compiled=False, ...)(h=z, W=I, ids, mask, advantages)")]

    def load(self) -> None:
        triton_interpret.load_liger(self, "liger_kernel.ops.grpo_loss")
        from liger_kernel.chunked_loss import LigerFusedLinearGRPOLoss
        from liger_kernel.transformers.grpo_loss import triton_grpo_loss
        self.triton_grpo_loss, self.LigerFusedLinearGRPOLoss = triton_grpo_loss, LigerFusedLinearGRPOLoss

    def unsupported(self, case: Case, device: str) -> str | None:
        if not case.spec.startswith("grpo-"):
            return f"{self.name} computes GRPO losses only (cases with a grpo- segment)"
        if case.dtype == "bfloat16" and not self.cuda:
            return triton_interpret.BFLOAT16
        return super().unsupported(case, device)

    def run_variant(self, variant: Variant, case: Case, inputs, device: str) -> Output:
        torch = self.torch
        s = parse(case.spec)
        z = torch_io.tensor(torch, inputs.logits, device).requires_grad_(True)
        ids = torch.from_numpy(inputs.labels.copy()).to(device)
        mask = torch.from_numpy(inputs.mask.copy()).to(device)
        old, ref, adv = (torch_io.tensor(torch, a, device) for a in (inputs.old_logp, inputs.ref_logp,
                                                                     inputs.advantages))
        loss_type = LOSS_TYPES[case.reduction]
        if variant.impl == "triton_grpo_loss":
            padded = torch.cat([z, torch.zeros_like(z[:, :1])], dim=1)  # the position after the completion
            loss, _ = self.triton_grpo_loss(padded, old, ref if s.beta else None, ids, adv, mask, s.temperature,
                                            s.beta, s.eps_low, s.eps_high, inplace=False, loss_type=loss_type,
                                            reduce=True)
        else:
            fn = self.LigerFusedLinearGRPOLoss(beta=s.beta, compiled=False, use_ref_model=bool(s.beta),
                                               epsilon_low=s.eps_low, epsilon_high=s.eps_high, loss_type=loss_type,
                                               max_completion_length=case.extra[0], temperature=s.temperature)
            eye = torch.eye(case.k, dtype=z.dtype, device=device)
            loss, _ = fn(z, eye, ids, mask, adv, ref_per_token_logps=ref if s.beta else None, old_per_token_logps=old)
        (g,) = torch.autograd.grad(loss, z)
        return Output(torch_io.array(torch, loss), grads={"grad": torch_io.array(torch, g)},
                      loss_dtype=str(loss.dtype).removeprefix("torch."), grad_dtype=str(g.dtype).removeprefix("torch."))
