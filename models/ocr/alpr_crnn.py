"""The plate recognizer network, in EasyOCR's custom-model layout (this file + alpr_crnn.yaml).

A small CRNN read out row by row: the convolutions pool the plate down to two feature rows
and the sequence is the top row followed by the bottom row, so a stacked two-row plate
reads top row first and a one-row plate is read on whichever row the network prefers.
The input is resized to a fixed size inside `forward`, so EasyOCR's aspect-keeping resize
and our own batched path feed it the same pixels.
"""
import torch
import torch.nn.functional as F
from torch import nn

INPUT_H, INPUT_W = 48, 144


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Model(nn.Module):
    def __init__(self, input_channel: int, output_channel: int, hidden_size: int, num_class: int):
        super().__init__()
        c = output_channel
        self.features = nn.Sequential(
            _block(input_channel, c // 4), nn.MaxPool2d(2),  # 24 x 72
            _block(c // 4, c // 2), nn.MaxPool2d(2),  # 12 x 36
            _block(c // 2, c * 3 // 4), nn.MaxPool2d((2, 1)),  # 6 x 36
            _block(c * 3 // 4, c), _block(c, c), nn.MaxPool2d((3, 1)),  # 2 x 36
        )
        self.rnn = nn.LSTM(c, hidden_size, num_layers=2, bidirectional=True, batch_first=True)
        self.head = nn.Linear(2 * hidden_size, num_class)

    def forward(self, input: torch.Tensor, text: torch.Tensor | None = None) -> torch.Tensor:
        """input: (B, 1, H, W) grey in [-1, 1]; returns CTC logits (B, 2 * INPUT_W / 4, num_class)."""
        if input.shape[-2:] != (INPUT_H, INPUT_W):
            input = F.interpolate(input, size=(INPUT_H, INPUT_W), mode="bilinear", align_corners=False)
        f = self.features(input)  # (B, C, 2, T)
        seq = f.permute(0, 2, 3, 1).flatten(1, 2)  # (B, 2T, C): top row, then bottom row
        return self.head(self.rnn(seq)[0])
