"""Evaluation metrics of the paper's protocol (section 5.1, Appendix A).

* :mod:`.defaults` -- the protocol's defaults (KID subsets, FID resize, mIoU average), one table;
* :mod:`.networks` -- the Inception and LPIPS networks, built strictly from given weights;
* :mod:`.weights` -- their offline weights, prepared once into the cache and hash-checked;
* :mod:`.fid` -- FID, KID and FID-infinity on torch-fidelity's InceptionV3 (offline weights);
* :mod:`.segmentation` -- confusion matrix, mIoU (named averaging rules), pixel accuracy;
* :mod:`.diversity` -- mean pairwise LPIPS (AlexNet) and MS-SSIM per label map (Table 3);
* :mod:`.images` -- folders of generated images matched to label maps by name;
* :mod:`.scoring` -- one pass over a folder computing all of them (``scpdiff score``).

Imports go one way: ``networks`` <- ``weights`` <- ``fid`` / ``diversity`` <- ``scoring``. The package
may import :mod:`scpdiff.config`, :mod:`scpdiff.datasets`, :mod:`scpdiff.segmenters`, :mod:`scpdiff.utils` and
:mod:`scpdiff.errors`; :mod:`.folder_score` is what ``scpdiff score`` runs.
"""

from .segmentation import MIOU_AVERAGES, ConfusionMatrix, class_iou, confusion_matrix, mean_iou, pixel_accuracy

__all__ = ["MIOU_AVERAGES", "ConfusionMatrix", "class_iou", "confusion_matrix", "mean_iou", "pixel_accuracy"]
