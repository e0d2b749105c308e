"""Round-trip a zoo model through the local Hub: save_pretrained -> olah -> ltzoo and timm load the same weights."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import timm
import torch

import ltzoo
from ltzoo.hub_server import LocalHub, use_endpoint

NAME = "resnet32_ldam_drw_cifar10_lt.if100"


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        model = ltzoo.create_model(NAME).eval()
        ltzoo.save_pretrained(model, Path(tmp) / "releases" / NAME, ltzoo_meta={"name": NAME.split(".")[0]})
        with LocalHub(Path(tmp) / "releases") as hub:
            use_endpoint(hub.endpoint, cache_dir=Path(tmp) / "hf-cache")
            print(f"local Hub at {hub.endpoint} serving {hub.repo_ids}")
            x = torch.randn(4, 3, 32, 32)
            expected = model(x)
            for label, loaded in (
                ("ltzoo.create_model", ltzoo.create_model(f"hf-hub:ltzoo/{NAME}", pretrained=True)),
                ("timm.create_model", timm.create_model(f"hf-hub:ltzoo/{NAME}", pretrained=True)),
            ):
                same = torch.equal(loaded.eval()(x), expected)
                print(f"{label}('hf-hub:ltzoo/{NAME}'): outputs identical to the original: {same}")
                if not same:
                    return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
