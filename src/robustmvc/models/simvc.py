"""SiMVC (Trosten et al., CVPR 2021): weighted-mean fusion + DDC head, no view alignment.

Exactly CoMVC without its contrastive term, so it is CoMVC with the contrastive weight fixed at 0
(the setting cannot be passed: a SiMVC with a contrastive term would be a CoMVC).
"""
from __future__ import annotations

from robustmvc.models.comvc import CoMVC


class SiMVC(CoMVC):
    def __init__(self, view_shapes, n_clusters: int, *, encoder_width: int, hidden: int, rel_sigma: float):
        super().__init__(view_shapes, n_clusters, encoder_width=encoder_width, hidden=hidden,
                         contrast_weight=0.0, tau=None, rel_sigma=rel_sigma)
