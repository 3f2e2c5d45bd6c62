# fyu/drn DRN-D-105 on Cityscapes, OASIS protocol: images and labels at 512x256 (labels nearest),
# multi-scale test (1.0 + 0.5, 0.75, 1.25, 1.5, 1.75; summed log-softmax). Card: segmenters/drn_d_105/README.md
_base_ = ["./_protocol_common.py"]
model = dict(
    type="OASISDRNSegmentor",
    checkpoint="checkpoints/drn-d-105_ms_cityscapes.pth",  # http://dl.yf.io/drn/drn-d-105_ms_cityscapes.pth
    data_preprocessor={{_base_.data_preprocessor}},
    scales=(0.5, 0.75, 1.25, 1.5, 1.75),
)
test_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="LoadAnnotations"),  # before Resize: the labels are downsampled (nearest) to 512x256
    dict(type="ProtocolResize", scale=(512, 256)),
    dict(type="PackSegInputs"),
]
test_dataloader = dict(
    dataset=dict(
        type="CityscapesDataset",
        data_root="data/cityscapes/",  # or a folder of generated images named like the labels
        data_prefix=dict(img_path="leftImg8bit/val", seg_map_path="gtFine/val"),
        pipeline=test_pipeline,
    ),
)
