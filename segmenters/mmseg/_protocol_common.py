# Shared pieces of the OASIS-protocol mmseg configs (scpdiff's optional mmseg extra).
# The recipes normalise by themselves: the preprocessor only converts mmcv's BGR loading to RGB.
# Pipelines resize with ProtocolResize (scpdiff.segmenters.mmseg_models): Pillow-exact BICUBIC,
# the same pixels as the plain-torch route, not mmcv's OpenCV-bilinear Resize.
default_scope = "mmseg"
custom_imports = dict(imports=["scpdiff.segmenters.mmseg_models"], allow_failed_imports=False)
data_preprocessor = dict(
    type="SegDataPreProcessor", mean=[0.0, 0.0, 0.0], std=[1.0, 1.0, 1.0], bgr_to_rgb=True, pad_val=0, seg_pad_val=255
)
test_cfg = dict(type="TestLoop")
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend="nccl"))
# Every protocol config scores one image at a time in file order with mmseg's accumulated
# confusion-matrix mIoU; a config adds its dataset (type, root, prefixes, pipeline), which mmengine
# merges into this dict.
test_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type="DefaultSampler", shuffle=False),
)
test_evaluator = dict(type="IoUMetric", iou_metrics=["mIoU"])
