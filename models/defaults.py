"""The models' defaults that the configuration shows, in a module of their own so that loading
the configuration loads no model code (no torch, no OpenCV; `resolve_device` imports torch
when called)."""
from pathlib import Path

IMGSZ = 512  # detector input size: best validation mAP of 384 (training size), 512 and 640
# Minimum detection confidence: on the real validation frames 0.4 halved the boxes that
# match no plate (48 -> 24 of 107 frames) for 1 of 131 plates missed.
MIN_CONFIDENCE = 0.4
ROOT = Path(__file__).resolve().parent.parent
OCR_DIR = Path(__file__).parent / "ocr"
NETWORK = "alpr_crnn"  # the OCR network's name in EasyOCR's custom-model layout


def project_path(path: Path | str) -> Path | str:
    """A weights path from the configuration as given (`auto` too), or a relative one under
    the project's folder (so that a config naming models/... works from any working directory)."""
    if str(path) == "auto":
        return "auto"
    path = Path(path)
    return path if path.is_absolute() else ROOT / path


def resolve_device(device: str) -> str:
    """`auto` as the first CUDA GPU where torch sees one, else `cpu`; a CUDA device torch does
    not see is a ModelError saying so (not a failure to load weights on it later)."""
    import torch

    from models.errors import ModelError

    if device == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        index = int(device.partition(":")[2] or 0)
        if not torch.cuda.is_available() or index >= torch.cuda.device_count():
            raise ModelError(f"device {device}: torch sees {torch.cuda.device_count()} CUDA GPUs here "
                             "(use --device cpu, or auto)")
    return device
