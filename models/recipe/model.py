"""CRNN line recognizer: small conv stack, 2-layer BiLSTM, CTC head.

Sized (~1 M parameters, a strided stem) so it trains in under two hours on 2
CPU cores without bf16 support (this AVX2 machine runs bf16 10x slower) and
runs in ~1-2 ms per line once quantized; height 32 keeps stacked accents
legible while leaving width (time steps = width / 4) for CTC.
"""

from __future__ import annotations

import torch
from torch import nn


def _block(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(True),
    ]


class CRNN(nn.Module):
    def __init__(self, n_classes: int, hidden: int = 128) -> None:
        super().__init__()
        self.cnn = nn.Sequential(
            *_block(1, 32, 2),  # 16 x W/2: strided stem, full-res maps cost most on CPU
            *_block(32, 48), nn.MaxPool2d(2, 2),  # 8 x W/4
            *_block(48, 96), nn.MaxPool2d((2, 1), (2, 1)),  # 4 x W/4
            *_block(96, 160), nn.MaxPool2d((2, 1), (2, 1)),  # 2 x W/4
        )
        self.proj = nn.Linear(160 * 2, 256)
        self.rnn = nn.LSTM(256, hidden, num_layers=2, bidirectional=True, batch_first=True)
        self.head = nn.Linear(2 * hidden, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N,1,32,W] normalised to [-1,1]; returns logits [N, W/4, C]."""
        f = self.cnn(x)
        n, c, h, w = f.shape
        f = f.permute(0, 3, 1, 2).reshape(n, w, c * h)
        f = torch.relu(self.proj(f))
        f, _ = self.rnn(f)
        return self.head(f)
