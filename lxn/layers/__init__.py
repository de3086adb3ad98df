"""The three attention modules of LogoXpertNet, one paper module per file."""

from lxn.layers.clff import CrossLayerFeatureFusion
from lxn.layers.fa_cbam import FrequencyAwareCBAM
from lxn.layers.hse_sab import HierarchicalSESpatialAttention

__all__ = ["CrossLayerFeatureFusion", "HierarchicalSESpatialAttention", "FrequencyAwareCBAM"]
