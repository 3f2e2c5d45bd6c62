"""How mu maps to DDIM steps: the scheduler that runs only the last steps of its grid (paper Eq. 6).

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


def last_steps_scheduler(scheduler, steps_to_run: int):
    """A DDIM scheduler with ``scheduler``'s config that runs only the last ``steps_to_run`` steps."""
    sched = _ddim_class().from_config(scheduler.config)
    sched.steps_to_run = int(steps_to_run)
    return sched


def run_timesteps(scheduler, mu: float, num_steps: int) -> torch.Tensor:
    """The timesteps denoised for ``mu`` with ``num_steps`` DDIM steps (the first is ``t_start``)."""
    sched = last_steps_scheduler(scheduler, denoising_steps(mu, num_steps))
    sched.set_timesteps(num_steps)
    return sched.timesteps
