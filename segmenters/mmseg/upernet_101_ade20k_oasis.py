# CSAIL ade20k-resnet101-upernet, OASIS protocol: images scored at their own size with CSAIL's
# five test scales (short side 300..600, max 1000, padded to /32; averaged softmax).
# Card: segmenters/upernet_101/README.md
_base_ = ["./_protocol_common.py"]
model = dict(
    type="OASISUPerNetSegmentor",
    checkpoint="checkpoints/ade20k-resnet101-upernet/",  # encoder_epoch_50.pth + decoder_epoch_50.pth
    data_preprocessor={{_base_.data_preprocessor}},
    img_sizes=(300, 375, 450, 525, 600),
    img_max_size=1000,
    padding_constant=32,
)
test_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="LoadAnnotations", reduce_zero_label=True),  # ADE class k -> train id k-1, 0 -> 255
    dict(type="ProtocolResize", scale=(256, 256)),  # the synthesis resolution (512 for SCP-Diff)
    dict(type="PackSegInputs"),
]
test_dataloader = dict(
    dataset=dict(
        type="ADE20KDataset",
        data_root="data/ade/ADEChallengeData2016",
        data_prefix=dict(img_path="images/validation", seg_map_path="annotations/validation"),
        pipeline=test_pipeline,
    ),
)
