# kazuto1011 DeepLab v2 ResNet-101 MSC on COCO-Stuff 164k, OASIS protocol: images scored at their
# own size, BGR minus (104.008, 116.669, 122.675), max of logits over scales 1.0, 0.5, 0.75.
# Card: segmenters/deeplabv2/README.md
_base_ = ["./_protocol_common.py"]
model = dict(
    type="OASISDeepLabV2Segmentor",
    checkpoint="checkpoints/deeplabv2_resnet101_msc-cocostuff164k-100000.pth",
    data_preprocessor={{_base_.data_preprocessor}},
)
test_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="LoadAnnotations"),  # stuffthingmaps: ids 0..181, 255 unlabeled
    dict(type="ProtocolResize", scale=(256, 256)),  # the synthesis resolution
    dict(type="PackSegInputs"),
]
test_dataloader = dict(
    dataset=dict(
        type="COCOStuffDataset",
        data_root="data/coco_stuff164k",
        data_prefix=dict(img_path="images/val2017", seg_map_path="annotations/val2017"),
        pipeline=test_pipeline,
    ),
)
