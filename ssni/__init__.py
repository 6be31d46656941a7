"""ssni: Sample-specific Score-aware Noise Injection for diffusion-based adversarial purification.

Public API: schedules (`step_sequence`), the EPS score norm (`eps_score_norm`), calibration (`Calibration`,
`calibrate`), reweighting (`sigmoid_t`, `linear_t`), the ε-model interface (`EpsModel`), the purifiers and `SSNI`
(each with `as_classifier`, a plain nn.Module for other attack libraries), one-call evaluation (`evaluate`), and
`__version__`. Conventions: images in [0, 1] (model space 2x − 1 inside); t is int64 per sample ([B], or [B, S]
per stage); noise is keyed on (seed, sample id, step) as laid out in `ssni.purify.base`; network-call counters on
every host.
"""

from ssni._version import package_version
from ssni.calibration import Calibration, CalibrationMismatchError, calibrate, propose_tau, tau_sweep
from ssni.eval.evaluate import Evaluation, evaluate  # noqa: E402  (after the purifiers it evaluates)
from ssni.models.interface import CallCounter, EpsModel, as_eps_model
from ssni.purify import (
    SSNI,
    DDPMPurifier,
    GDMPPurifier,
    GNSDefense,
    GNSPurifier,
    Purifier,
    SDEPurifier,
    majority_vote,
    noise_word,
)
from ssni.reweight import linear_t, sigmoid_t
from ssni.schedules import ddpm_alphas_cumprod, step_sequence
from ssni.score import eps_score_norm
from ssni.zoo import embedded_calibration

__version__ = package_version()

__all__ = [
    "Calibration",
    "CalibrationMismatchError",
    "CallCounter",
    "DDPMPurifier",
    "EpsModel",
    "Evaluation",
    "GDMPPurifier",
    "GNSDefense",
    "GNSPurifier",
    "Purifier",
    "SDEPurifier",
    "SSNI",
    "as_eps_model",
    "calibrate",
    "ddpm_alphas_cumprod",
    "embedded_calibration",
    "eps_score_norm",
    "evaluate",
    "linear_t",
    "majority_vote",
    "noise_word",
    "propose_tau",
    "sigmoid_t",
    "step_sequence",
    "tau_sweep",
]
