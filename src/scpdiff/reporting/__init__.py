"""The study's outputs: the paper's Tables 1-3 (:mod:`.tables`), Figures 3 and 8 (:mod:`.plots`) and
the samples grid of Fig. 7 (:mod:`.samples`).

May import :mod:`scpdiff.datasets`, :mod:`scpdiff.models` (the mask rendering), :mod:`scpdiff.utils`
and :mod:`scpdiff.errors`.
"""
