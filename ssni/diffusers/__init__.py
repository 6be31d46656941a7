"""Drop-ins for diffusers (an optional dependency: `pip install diffusers`) on ssni's fused ops.

- `DDPMScheduler`, `DDIMScheduler`: diffusers' schedulers whose `step` and `add_noise` take a timestep per sample
  ([B]) as well as a scalar, seeded and batch-invariant, on `ssni_kernels.reverse_step` / `noise_inject`.
- `per_sample_walks`: every sample's own reverse walk from its own timestep (`set_timesteps_per_sample`).
- `DiffusersPurifier`: purification with a diffusers `UNet2DModel` (or a local pipeline folder) and per-sample
  timesteps, evaluating the network only on the samples whose walk is running.

Importing `ssni` does not import diffusers; importing `ssni.diffusers` does, and says how to install it when
it is missing.
"""

from ssni.diffusers.purifier import DiffusersPurifier
from ssni.diffusers.schedulers import DDIMScheduler, DDPMScheduler
from ssni.diffusers.walks import per_sample_walks, previous_in_rows

__all__ = ["DDPMScheduler", "DDIMScheduler", "DiffusersPurifier", "per_sample_walks", "previous_in_rows"]
