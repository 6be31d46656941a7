"""Purifiers (hosts) with a timestep per sample, planned walks run active-only or streamed, and the SSNI wrapper."""

from ssni.purify.base import Purifier, Stage, noise_word
from ssni.purify.ddpm import DDPMPurifier, DiscretePurifier
from ssni.purify.defence import SSNI
from ssni.purify.gdmp import GDMPPurifier
from ssni.purify.gns import GNSDefense, GNSPurifier, majority_vote
from ssni.purify.sde import SDEPurifier
from ssni.purify.stream import StreamingPurifier, StreamStats
from ssni.purify.walks import Walks, run_active

__all__ = [
    "StreamingPurifier",
    "StreamStats",
    "Purifier",
    "Stage",
    "Walks",
    "noise_word",
    "run_active",
    "DiscretePurifier",
    "DDPMPurifier",
    "SDEPurifier",
    "GNSPurifier",
    "GNSDefense",
    "majority_vote",
    "GDMPPurifier",
    "SSNI",
]
