"""The scoring protocol's defaults, in one table (torch-fidelity keeps its own the same way).

:class:`~.scoring.ScoreOptions`, the metric functions' keyword defaults and the ``scpdiff score`` /
``scpdiff ref-stats`` options all read these names, so a default changes in one place. KID follows
torch-fidelity (100 subsets of 1000 images, Binkowski et al. 2018); the subset seed is also the
FID-infinity subsets' seed in a scoring run.
"""

FID_RESIZE = "tf1_bilinear"  # one of fid.RESIZE_MODES: torch-fidelity's TF1-exact resize (TTUR / OASIS)
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
SUBSET_SEED = 2020  # KID / FID-infinity random subsets
MIOU_AVERAGE = "accumulated"  # one of segmentation.MIOU_AVERAGES: mmseg's IoUMetric
BATCH_SIZE = 32  # images per network call when scoring or computing reference statistics (GPU)
# on CPU: Inception's first activations at 299x299 exceed glibc's 32 MiB mmap ceiling above 4 images,
# so every batch maps and faults its buffers in afresh (a third of the scoring time on the toy);
# per-image features are the same up to float rounding (~1e-8 relative on FID)
CPU_BATCH_SIZE = 4
