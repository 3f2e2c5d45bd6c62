"""The study's outputs: the paper's Tables 1-3 (:mod:`.tables`) and Figures 3, 7, 8 (:mod:`.plots`)."""
