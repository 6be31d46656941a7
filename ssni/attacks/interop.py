"""A defence as a plain `nn.Module` `model(x) -> logits`, for attack libraries that take one (torchattacks,
AutoAttack, RobustBench): `Purifier.as_classifier(classifier, seed=...)` and `SSNI.as_classifier(...)`.

Noise. Every forward call k (counted from construction or `reset`) is a fresh, keyed draw of the defence: it
purifies with the seed derive_seed(seed, STREAM_MODULE_CALL, k), and the sample ids of the call are the rows'
positions 0..B−1. This is the randomised defence that DiffPure evaluates with AutoAttack's "rand" version and
torchattacks' EOT attacks (which average over repeated calls at the same input), made reproducible: the same
sequence of calls gives the same outputs. Why not content-hashed ids: a sample's noise would then be a function
of its pixels, so a repeated input (EOT over calls, or x.repeat(n, 1, 1, 1) in one call) would get the same
noise every time, and the model would look deterministic to the attack. Positions as ids make a sample's noise
depend on its position in the call, which is harmless when every call draws anew (ssni's own evaluation, which
keys noise on dataset ids for batch invariance, is `ssni.evaluate`).

Gradients. With autograd recording and x.requires_grad (an attack's gradient step), the call is differentiable:
gradient="full" (default) returns classifier(purify_grad(x, t)), the exact gradient through the host's
differentiable surrogate (its `grad_num_steps`; the defence's own schedule when that is unset; SSNI-N without
its b extra steps, as the authors' code); gradient="bpda" returns the defence's own purification in the
forward pass and passes the gradient straight through it (BPDA, the identity as the purifier's Jacobian).
SSNI's t is recomputed at every call from the call's input, without gradient (the adaptive protocol). Any other
call (under torch.no_grad, or an input without requires_grad) runs the defence exactly as evaluated:
classifier(defence.purify(x)), no graph.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ssni.attacks.adapters import GradientMode, PurifiedClassifier, check_gradient_mode
from ssni.attacks.adaptive import AdaptiveSSNI
from ssni.attacks.defended import STREAM_MODULE_CALL, DefendedModel, derive_seed
from ssni.validate import check_int, check_seed

__all__ = ["DefendedClassifier"]


class DefendedClassifier(nn.Module):
    """`forward(x [B, C, H, W] in [0, 1]) -> logits [B, K]` of classifier ∘ defence (module docstring).

    defence: a purifier (`ssni.Purifier`, constant t*) or `ssni.SSNI` (adaptive: t from each call's input);
    classifier: images in [0, 1] → logits; seed: the base seed of the calls' keyed noise; gradient: "full" or
    "bpda"; num_steps: the surrogate's step count for "full" gradients (None: the host's grad_num_steps).
    `calls` counts forward calls since construction or `reset()`. The defence and classifier are submodules, so
    `.to(device)` and `.eval()` reach them. The module starts in eval mode and puts them in it (dropout off): an
    attack library that restores the mode it found (torchattacks does) would otherwise leave a default-train
    wrapper's classifier in train mode.
    """

    def __init__(
        self,
        defence: nn.Module,
        classifier: nn.Module,
        *,
        seed: int,
        gradient: GradientMode = "full",
        num_steps: int | None = None,
    ):
        super().__init__()
        if not callable(classifier):
            raise TypeError(f"classifier must be a callable nn.Module, got {type(classifier).__name__}")
        check_gradient_mode(gradient)
        self.defence = defence
        self.classifier = classifier
        self.seed = check_seed(seed)
        self.gradient = gradient
        self.num_steps = check_int("num_steps", num_steps, low=1, optional=True)
        self.adaptive = hasattr(defence, "timesteps")  # SSNI chooses t from its score norm
        self.calls = 0
        self.eval()

    def reset(self, seed: int | None = None) -> None:
        """Restart the call counter (and change the base seed if given): the next calls repeat the noise."""
        if seed is not None:
            self.seed = check_seed(seed)
        self.calls = 0

    def defended(self, call: int) -> DefendedModel:
        """The `ssni.attacks` view of call `call`: the adapter at that call's seed."""
        seed = derive_seed(self.seed, STREAM_MODULE_CALL, call)
        adapter = AdaptiveSSNI if self.adaptive else PurifiedClassifier
        return adapter(self.defence, self.classifier, seed, num_steps=self.num_steps, gradient=self.gradient)

    def forward(self, x: Tensor) -> Tensor:
        call, self.calls = self.calls, self.calls + 1
        model = self.defended(call)
        ids = torch.arange(x.shape[0], device=x.device)
        if torch.is_grad_enabled() and x.requires_grad:
            return model.surrogate(x.detach(), sample_ids=ids, iteration=0)(x, draw=0)
        return model.logits(x.detach(), sample_ids=ids)
