"""How mu maps to DDIM steps: the scheduler that runs only the last steps of its grid (paper Eq. 6).

Two start rules (the protocol knob ``start_rule``, docs/protocol.md), both on SD's "leading" DDIM
grid of ``S`` steps, ``t_k = (S-1-k) * (T // S) + 1`` (S = 20, T = 1000: 951, 901, ..., 1):

``official`` (AIR-DISCOVER/SCP-Diff-Toolkit @ 859f671, noise_prior_inference.py:136-137, 260-266,
cldm/ddim_hacked.py:139-141): the prior draw is noised by Eq. 6 to ``D = round(mu*T) - 1`` (the
script's ``--diffusion_steps``; mu = 0.8 -> D = 799, mu = 1 -> D = 999); with ``k`` the index of the
first ascending grid step ``>= D`` (``k = S`` when there is none, and for D = T - 1), the sampler
runs ``n = int(min((k + 2) / S, 1) * S) - 1`` steps (``subset_end``), the grid's last n, from
``t_start = (n-1) * (T // S) + 1``. So the first step is the first grid step at or above D, except
that the top grid step never runs; the prior was noised to D, the network is first asked at
t_start >= D. For S = 20 (T = 1000):

==========  =====  =========  ===========  ===================================
mu           D     t_start    steps run    note
==========  =====  =========  ===========  ===================================
0.50         499     501        11
0.60         599     601        13
0.70         699     701        15
0.75         749     751        16
0.80         799     801        17          the official script's D
0.85         849     851        18          the paper's figures (0.85T)
0.90         899     901        19
0.95         949     901        19          951 is dropped by subset_end
1.00         999     901        19          = the normal prior (plain ControlNet)
==========  =====  =========  ===========  ===================================

The normal prior under the ``controlnet`` start (knob ``normal_prior_start``) ignores mu: pure
noise enters as ``x_t`` at the rule's own start for D = T - 1 (official: t = 901, 19 steps;
grid_tail: t = 951, all 20 steps), which is plain ControlNet inference (paper sec. 5.2).

``grid_tail`` (the paper's "noise for muT steps, denoise the last muT steps", sec. 4.1), below:

With ``S`` DDIM steps the scheduler's grid is ``timesteps = [t_0 > t_1 > ... > t_{S-1}]``
(SD's "leading" spacing: ``t_k = (S-1-k) * (T // S) + 1``, e.g. 951, 901, ..., 1 for S = 20).
For ``mu`` in (0, 1] we run the last

    n = max(1, floor(mu * S + 1/2))        (mu * S rounded half up)

steps of that grid, ``t_{S-n}, ..., t_{S-1}``: the prior sample is noised to ``t_start = t_{S-n}``
by Eq. 6, ``x_t = sqrt(abar_t) x + sqrt(1 - abar_t) eps`` (``scheduler.add_noise``), and the
ControlNet pipeline denoises from there. So "noise for mu*T steps, denoise the last mu*T steps"
is realised on the DDIM grid, ``t_start = (n-1) * (T // S) + 1`` (e.g. S = 20, mu = 0.85: n = 17,
t_start = 801), and mu = 1 runs all S steps from ``t_0``, exactly like the plain pipeline, which
is also where diffusers' img2img pipelines start at strength 1 (they take ``n = int(strength * S)``,
which truncates products like ``0.57 * 100 = 56.99...`` to one step fewer; we round). Each DDIM step keeps its
full-grid stride ``T // S`` (the scheduler still knows ``S``), so the steps run at mu < 1 are exactly
the tail of the steps run at mu = 1.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

from ..errors import InputError


def denoising_steps(mu: float, num_steps: int) -> int:
    """``n = max(1, round_half_up(mu * S))``: the number of DDIM steps run for ``mu`` (module doc)."""
    if not 0.0 < float(mu) <= 1.0:
        raise InputError(f"mu must lie in (0, 1], got {mu}")
    if int(num_steps) < 1:
        raise InputError(f"the number of DDIM steps must be >= 1, got {num_steps}")
    # the small slack keeps products like 0.85 * 20 = 16.999999999999996 on the intended side
    return max(1, min(int(num_steps), math.floor(float(mu) * int(num_steps) + 0.5 + 1e-9)))


@functools.lru_cache(maxsize=None)
def _ddim_class():
    # defined on first use so that importing this module (for image_seed) does not import diffusers
    from diffusers import DDIMScheduler

    class LastStepsDDIMScheduler(DDIMScheduler):
        """DDIM that runs only the last ``steps_to_run`` steps of its ``S``-step grid.

        ``set_timesteps(S)`` builds the usual grid and keeps ``timesteps[S - n:]``; ``step`` still
        uses the full grid's stride ``T // S``, so each step is the one the full run would take.
        """

        steps_to_run: int | None = None

        def set_timesteps(self, num_inference_steps: int, device=None):
            super().set_timesteps(num_inference_steps, device=device)
            if self.steps_to_run is not None:
                self.timesteps = self.timesteps[num_inference_steps - self.steps_to_run :]

    return LastStepsDDIMScheduler


START_RULES = ("official", "grid_tail")


@dataclass(frozen=True)
class StartPlan:
    """Where one run starts: ``steps`` grid steps are denoised; the prior draw is noised to
    ``noise_step`` by Eq. 6 first (None: the draw is used as ``x_t`` as it is, the normal prior)."""

    steps: int
    noise_step: int | None


def official_noise_step(mu: float, num_train_timesteps: int = 1000) -> int:
    """The official script's ``--diffusion_steps`` D for ``mu``: ``round(mu * T) - 1``."""
    if not 0.0 < float(mu) <= 1.0:
        raise InputError(f"mu must lie in (0, 1], got {mu}")
    return max(0, int(round(float(mu) * num_train_timesteps)) - 1)


def official_steps_run(noise_step: int, num_steps: int, num_train_timesteps: int = 1000) -> int:
    """``subset_end`` of cldm/ddim_hacked.py:140 for the official script's D (module doc)."""
    S, T = int(num_steps), int(num_train_timesteps)
    grid = [k * (T // S) + 1 for k in range(S)]  # ascending, as make_ddim_timesteps returns it
    if noise_step == T - 1:
        index = S  # noise_prior_inference.py:261-262
    else:
        # :264; the official script raises IndexError when no grid step reaches D; we run like D = T - 1
        first = next((k for k, t in enumerate(grid) if t >= noise_step), S)
        index = first + 2
    return max(1, int(min(index / S, 1) * S) - 1)


def start_plan(mu: float, num_steps: int, rule: str = "grid_tail", *, normal: bool = False,
               normal_start: str = "mu", num_train_timesteps: int = 1000) -> StartPlan:
    """Steps run and noise step for ``mu`` under ``rule`` (module doc); ``normal``: the normal prior."""
    if rule not in START_RULES:
        raise InputError(f"unknown start rule {rule!r}; known: {list(START_RULES)}")
    if normal and normal_start == "controlnet":
        mu = 1.0  # plain ControlNet inference: its own start, whatever mu
    if rule == "grid_tail":
        n = denoising_steps(mu, num_steps)
        t_start = (n - 1) * (num_train_timesteps // int(num_steps)) + 1
        return StartPlan(n, None if normal else t_start)
    D = official_noise_step(mu, num_train_timesteps)
    return StartPlan(official_steps_run(D, num_steps, num_train_timesteps), None if normal else D)


def last_steps_scheduler(scheduler, steps_to_run: int):
    """A DDIM scheduler with ``scheduler``'s config that runs only the last ``steps_to_run`` steps."""
    sched = _ddim_class().from_config(scheduler.config)
    sched.steps_to_run = int(steps_to_run)
    return sched


def run_timesteps(scheduler, mu: float, num_steps: int, plan: StartPlan | None = None) -> torch.Tensor:
    """The timesteps denoised for ``mu`` with ``num_steps`` DDIM steps (the first is ``t_start``);
    ``plan``: a :func:`start_plan` (default: the grid_tail rule)."""
    sched = last_steps_scheduler(scheduler, plan.steps if plan is not None else denoising_steps(mu, num_steps))
    sched.set_timesteps(num_steps)
    return sched.timesteps
