"""The model families: what each one takes, returns and is trained on (no torch here).

Builders live in ``edge.models`` (torch); this table is what the runtime, export and
bench agree on.  Input sizes are the CPU defaults; export takes ``--imgsz`` to change them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edge.errors import EdgeError
from edge.manifest import InputSpec

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
# ImageNet statistics averaged over RGB, for grayscale input fed to an ImageNet backbone.
GRAY_IMAGENET_MEAN = [0.449]
GRAY_IMAGENET_STD = [0.226]

ASL_LETTERS = [chr(c) for c in range(ord("A"), ord("Z") + 1)]
FER_CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
TOMATO_CLASSES = ["green", "half_ripened", "fully_ripened"]
TRAIL_CLASSES = ["Aman", "Berbahaya"]
TRAIL_FEATURES = ["temperature_c", "humidity_pct", "wind_kmh"]


@dataclass(frozen=True)
class Family:
    """One model family: builder, input, outputs, data and the paper's figure."""

    name: str
    title: str
    kind: str  # image | tree
    task: str  # classify | embed
    builder: str  # "module:function" in edge.models
    builder_kwargs: dict[str, Any]
    channels: int
    imgsz: int
    mean: list[float]
    std: list[float]
    classes: list[str] = field(default_factory=list)
    embedding_size: int | None = None
    dataset: str = ""  # folder under EDGE_DATA
    paper: str = ""
    # camera frame -> model input crop, written into every manifest (see edge.prestep)
    prestep: dict[str, Any] = field(default_factory=lambda: {"kind": "whole"})

    def input_spec(self, imgsz: int | None = None) -> InputSpec:
        if self.kind == "tree":
            return InputSpec(
                shape=[None, len(TRAIL_FEATURES)], layout="NF", color="none", scale=1.0,
                features=list(TRAIL_FEATURES),
            )
        s = imgsz or self.imgsz
        return InputSpec(
            shape=[None, self.channels, s, s],
            color="gray" if self.channels == 1 else "rgb",
            resize=[s, s],
            mean=list(self.mean),
            std=list(self.std),
        )


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in [
        Family(
            name="face",
            title="Siamese SqueezeNet face embedder",
            kind="image",
            task="embed",
            builder="edge.models.siamese:siamese_squeezenet",
            builder_kwargs={"embedding_size": 128, "in_channels": 1},
            channels=1,
            imgsz=112,
            mean=[0.5],
            std=[0.5],
            embedding_size=128,
            dataset="faces/orl",
            prestep={"kind": "face", "margin": 0.15, "square": True},
            paper="F1 1.00 (30 people, 8:2 split, Adam lr 0.001)",
        ),
        Family(
            name="asl",
            title="EfficientNet-B4 with a Spatial Transformer, ASL letters",
            kind="image",
            task="classify",
            builder="edge.models.stn:stn_efficientnet_b4",
            builder_kwargs={"num_classes": 26, "in_channels": 1, "stn": True},
            channels=1,
            imgsz=128,
            mean=[0.5],
            std=[0.5],
            classes=ASL_LETTERS,
            dataset="asl/kaggle_alphabet",
            # the paper's guide box: the hand goes in a square on the right of the frame (x, y, w, h as fractions)
            prestep={"kind": "roi", "box": [0.5, 0.1, 0.45, 0.6], "square": True},
            paper="86.09% from scratch, 100% pretrained",
        ),
        Family(
            name="fer",
            title="MobileNetV2 facial expression (FER2013, 7 classes)",
            kind="image",
            task="classify",
            builder="edge.models.classifiers:mobilenet_v2_classifier",
            builder_kwargs={"num_classes": 7, "in_channels": 1},
            channels=1,
            imgsz=96,
            mean=GRAY_IMAGENET_MEAN,
            std=GRAY_IMAGENET_STD,
            classes=FER_CLASSES,
            dataset="fer2013",
            # FER2013's faces are Haar boxes with no margin: the detector's box on one of them is the picture itself
            # (docs/bench/fer-live-framing-x86-2core.md); a wider crop shows the model a smaller face than it learnt
            prestep={"kind": "face", "margin": 0.0, "square": True},
            paper="71.9% val accuracy",
        ),
        Family(
            name="tomato",
            title="ResNet50 tomato ripeness (3 stages)",
            kind="image",
            task="classify",
            builder="edge.models.classifiers:resnet50_classifier",
            builder_kwargs={"num_classes": 3},
            channels=3,
            imgsz=128,
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            classes=TOMATO_CLASSES,
            dataset="tomato/laboro_big",
            prestep={"kind": "center_crop", "fraction": 0.8},
            paper="95% accuracy (ResNet50, ripe/unripe)",
        ),
        Family(
            name="trail",
            title="Decision tree, trail safety (Aman / Berbahaya)",
            kind="tree",
            task="classify",
            builder="edge.models.tree:trail_tree",
            builder_kwargs={},
            channels=0,
            imgsz=0,
            mean=[],
            std=[],
            classes=TRAIL_CLASSES,
            dataset="weather/bmkg_semarang_2017_2023.csv",
            paper="99.27% accuracy on 682 test rows",
        ),
    ]
}


def get_family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise EdgeError(f"unknown family '{name}'; choose from: {', '.join(FAMILIES)}") from None


def parse_families(text: str | None) -> list[Family]:
    """'all' / None -> every family; else a comma list of names."""
    if not text or text == "all":
        return list(FAMILIES.values())
    return [get_family(n.strip()) for n in text.split(",") if n.strip()]
