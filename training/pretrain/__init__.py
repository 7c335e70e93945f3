"""Gradient-field contrastive pretraining of the depth encoder (``depth-ros-train pretrain``).

:mod:`.gradient_field` (the key view), :mod:`.moco` (momentum contrast, InfoNCE, queue),
:mod:`.module` (Lightning), :mod:`.data` (frames from bags, two views each), :mod:`.cli`.
"""
