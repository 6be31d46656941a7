"""Purifiers (hosts) with a timestep per sample, active-only execution, and the SSNI wrapper."""

from ssni.purify.base import Purifier, noise_step
from ssni.purify.ddpm import DDPMPurifier
from ssni.purify.engine import run_active
from ssni.purify.gdmp import GDMPPurifier
from ssni.purify.gns import GNSDefense, GNSPurifier, majority_vote
from ssni.purify.sde import SDEPurifier
from ssni.purify.ssni import SSNI
from ssni.purify.stream import StreamingPurifier, StreamStats

__all__ = [
    "StreamingPurifier",
    "StreamStats",
    "Purifier",
    "noise_step",
    "run_active",
    "DDPMPurifier",
    "SDEPurifier",
    "GNSPurifier",
    "GNSDefense",
    "majority_vote",
    "GDMPPurifier",
    "SSNI",
]
