"""The models' defaults that the configuration shows, in a module of their own so that loading
the configuration loads no model code (no torch, no OpenCV)."""
from pathlib import Path

IMGSZ = 512  # detector input size: best validation mAP of 384 (training size), 512 and 640
# Minimum detection confidence: on the real validation frames 0.4 halved the boxes that
# match no plate (48 -> 24 of 107 frames) for 1 of 131 plates missed.
MIN_CONFIDENCE = 0.4
OCR_DIR = Path(__file__).parent / "ocr"
NETWORK = "alpr_crnn"  # the OCR network's name in EasyOCR's custom-model layout
