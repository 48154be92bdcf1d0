"""Train the plate recognizer (CTC) on generated plate crops.

    python -m models.train_ocr [--minutes 90] [--resume | --init WEIGHTS] [--real DIR] [--device auto|cpu|cuda]

Crops are generated on the fly by worker processes (a new plate every sample, so the
network never sees the same one twice). With `--real DIR` (a crops dataset, e.g. the one
`models.label_crops` writes) a share of the samples are real crops, each time with a new
small shift, tilt and camera degradation; DIR/../val, if there, is scored at checkpoints. The run checkpoints every few minutes to
`runs/ocr/last.pt` and `--resume` continues it, so a run can span sessions; `--init` starts
a new schedule from weights in EasyOCR's layout (fine-tuning shipped weights). At the end
(and at every checkpoint) the weights are written in EasyOCR's layout to
`models/ocr/alpr_crnn.pth`. What is scored and written is an exponential moving average of
the weights, not the last step's: single checkpoints of a run differ by several points on
a small real validation set, and the average does not chase the last few batches.
"""
from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from models.defaults import resolve_device
from models.evaluate import load_dataset
from models.recognizer import CHARSET, OCR_DIR, build_network, preprocess
from models.synth.camera import degrade, ocr_crop
from models.synth.plates import TRAIN_FONTS, render_plate

RUN_DIR = Path("runs/ocr")


def sample(rng: np.random.Generator, fonts: tuple[str, ...] = TRAIN_FONTS) -> tuple[np.ndarray, str]:
    plate = render_plate(rng, fonts=fonts)
    return ocr_crop(rng, plate), plate.text


def jitter(rng: np.random.Generator, crop: np.ndarray) -> np.ndarray:
    """A real crop as another detector box and camera might give it: corners moved by a few
    percent (margin, tilt, perspective), then mild blur, noise, light and JPEG."""
    h, w = crop.shape[:2]
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = (src + rng.uniform(-0.06, 0.06, (4, 2)) * [w, h]).astype(np.float32)
    out = cv2.warpPerspective(crop, cv2.getPerspectiveTransform(src, dst), (w, h), borderMode=cv2.BORDER_REPLICATE)
    return degrade(rng, out, h, severity=rng.uniform(0.0, 0.5))


def load_crops(root: Path) -> list[tuple[np.ndarray, str]]:
    ds = load_dataset(root)
    return [(cv2.imread(str(root / "images" / f)), plate) for f, rows in ds.labels.items() for _, plate, _ in rows]


class Crops(torch.utils.data.IterableDataset):
    """An endless stream of (crop tensor, label indices); each worker has its own seed.
    `real_share` of the samples are jittered `real` crops, the rest generated ones."""

    def __init__(self, seed: int, real: list[tuple[np.ndarray, str]] = (), real_share: float = 0.0):
        self.seed, self.real, self.real_share = seed, real, real_share if real else 0.0

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        rng = np.random.default_rng([self.seed, info.id if info else 0])
        while True:
            if rng.random() < self.real_share:
                img, text = self.real[rng.integers(len(self.real))]
                crop = jitter(rng, img)
            else:
                crop, text = sample(rng)
            yield preprocess([crop])[0], torch.tensor([CHARSET.index(c) + 1 for c in text])


def collate(batch):
    images = torch.stack([b[0] for b in batch])
    labels = [b[1] for b in batch]
    return images, torch.cat(labels), torch.tensor([len(t) for t in labels])


def greedy(logits: torch.Tensor) -> list[str]:
    out = []
    for seq in logits.argmax(2).tolist():
        chars, prev = [], 0
        for k in seq:
            if k and k != prev:
                chars.append(CHARSET[k - 1])
            prev = k
        out.append("".join(chars))
    return out


def validation_set(n: int = 600) -> tuple[torch.Tensor, list[str]]:
    rng = np.random.default_rng(12345)
    crops, texts = zip(*(sample(rng) for _ in range(n)))
    return preprocess(list(crops)), list(texts)


def evaluate(model: nn.Module, images: torch.Tensor, texts: list[str], device: str) -> float:
    model.eval()
    with torch.no_grad():
        preds = []
        for i in range(0, len(images), 128):
            preds += greedy(model(images[i:i + 128].to(device)).cpu())
    model.train()
    return sum(p == t for p, t in zip(preds, texts)) / len(texts)


def save_easyocr(model: nn.Module, path: Path) -> None:
    # EasyOCR loads CPU weights by stripping a 7-character "module." prefix (DataParallel's).
    state = {"module." + k: v.detach().cpu() for k, v in model.state_dict().items()}
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=90, help="training time budget (whole schedule)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave default)")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    ap.add_argument("--resume", action="store_true", help="continue runs/ocr/last.pt")
    ap.add_argument("--init", type=Path, help="start from these weights (EasyOCR layout), new schedule")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--real", type=Path, help="crops dataset (images/, labels.csv) mixed into training")
    ap.add_argument("--real-share", type=float, default=0.05, help="share of samples taken from --real")
    ap.add_argument("--ema", type=float, default=0.999, help="decay of the weight average that is scored and saved")
    ap.add_argument("--out", type=Path, default=OCR_DIR / "alpr_crnn.pth")
    args = ap.parse_args()
    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    RUN_DIR.mkdir(parents=True, exist_ok=True)

    model = build_network().to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    elapsed, step, best = 0.0, 0, 0.0
    if args.init:
        state = torch.load(args.init, map_location=device)
        model.load_state_dict({k.removeprefix("module."): v for k, v in state.items()})
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(args.ema), use_buffers=True)
    # The average is a deep copy, whose LSTM weights on CUDA no longer lie in the one chunk
    # cuDNN wants (torch warns and copies them at every call); a no-op on the CPU.
    ema.module.rnn.flatten_parameters()
    if args.resume and (RUN_DIR / "last.pt").exists():
        ck = torch.load(RUN_DIR / "last.pt", map_location=device)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        ema.module.load_state_dict(ck.get("ema", ck["model"]))  # runs checkpointed before the average
        ema.n_averaged.fill_(1)
        elapsed, step, best = ck["elapsed"], ck["step"], ck["best"]
        print(f"resumed at step {step}, {elapsed / 60:.1f} min trained, best val {best:.3f}")
    budget = args.minutes * 60
    ctc = nn.CTCLoss(blank=0, zero_infinity=True)
    real = load_crops(args.real) if args.real else []
    real_val = args.real.parent / "val" if args.real else None
    real_val = load_crops(real_val) if real_val and (real_val / "labels.csv").is_file() else []
    loader = torch.utils.data.DataLoader(Crops(args.seed + step, real, args.real_share), batch_size=args.batch,
                                         num_workers=args.workers, collate_fn=collate,
                                         persistent_workers=args.workers > 0)
    val_images, val_texts = validation_set()
    if real_val:
        real_images, real_texts = preprocess([c for c, _ in real_val]), [t for _, t in real_val]
    t0, last_ck, losses = time.time() - elapsed, time.time(), []

    for images, labels, lengths in loader:
        elapsed = time.time() - t0
        # One-cycle schedule over the time budget: warm up 5 %, then cosine down.
        frac = min(1.0, elapsed / budget)
        lr = args.lr * (frac / 0.05 if frac < 0.05 else 0.5 * (1 + math.cos(math.pi * (frac - 0.05) / 0.95)))
        for g in opt.param_groups:
            g["lr"] = max(lr, args.lr * 0.01)
        logits = model(images.to(device)).log_softmax(2)
        T = logits.shape[1]
        loss = ctc(logits.permute(1, 0, 2), labels, torch.full((len(lengths),), T, dtype=torch.long), lengths)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        ema.update_parameters(model)
        losses.append(loss.item())
        step += 1
        done = elapsed >= budget
        if time.time() - last_ck > 300 or done:
            acc = evaluate(ema.module, val_images, val_texts, device)
            best = max(best, acc)
            real_acc = f" real val exact {evaluate(ema.module, real_images, real_texts, device):.3f}" if real_val else ""
            print(f"step {step} {elapsed / 60:.1f} min loss {np.mean(losses[-200:]):.3f} lr {lr:.2e} val exact {acc:.3f}"
                  f"{real_acc}", flush=True)
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "ema": ema.module.state_dict(),
                        "elapsed": elapsed, "step": step, "best": best}, RUN_DIR / "last.tmp")
            os.replace(RUN_DIR / "last.tmp", RUN_DIR / "last.pt")
            save_easyocr(ema.module, args.out)
            last_ck = time.time()
        if done:
            break
    print(f"done: {step} steps, {elapsed / 60:.1f} min, weights at {args.out}")


if __name__ == "__main__":
    main()
