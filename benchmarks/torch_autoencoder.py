"""lerpnet's default autoencoder written the way a researcher would in PyTorch (the speed baseline).

Same architecture as lerpnet.models with its default config: encoder conv k4 s2 1->32, relu,
conv k4 s2 32->16, relu, conv k4 s4 16->8 (2^3 x 8 latent); decoder Linear 64->8^3x16, relu,
ConvTranspose k4 s2 16->32, relu, ConvTranspose k4 s2 32->1 (logits). PyTorch's `padding=1` for
k4 s2 equals Flax's 'SAME' here. NCDHW, cuDNN, the optimiser and loss of benchmarks/bench_model.py.
torch is not a lerpnet dependency (`pip install -e .[bench]` adds it): only the benchmark imports this
module, and only when torch is importable.
"""

from __future__ import annotations

import torch
from torch import nn


class TorchAutoencoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv3d(1, 32, 4, 2, padding=1), nn.ReLU(),
            nn.Conv3d(32, 16, 4, 2, padding=1), nn.ReLU(),
            nn.Conv3d(16, 8, 4, 4),
        )
        self.fc = nn.Linear(64, 8 * 8 * 8 * 16)
        self.up = nn.Sequential(
            nn.ConvTranspose3d(16, 32, 4, 2, padding=1), nn.ReLU(),
            nn.ConvTranspose3d(32, 1, 4, 2, padding=1),
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B,32,32,32) -> (B,64)."""
        return self.encoder(x[:, None]).flatten(1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B,64) -> logits (B,32,32,32)."""
        h = torch.relu(self.fc(z)).view(-1, 16, 8, 8, 8)
        return self.up(h)[:, 0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


def make_train_step(model: TorchAutoencoder, *, bf16: bool, pos_weight: float, lr: float, compile: bool):
    """One Adam step on weighted BCE; bf16 = autocast (float32 master weights)."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    weight = torch.tensor(pos_weight, device=next(model.parameters()).device)

    def loss_fn(x):
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
        return nn.functional.binary_cross_entropy_with_logits(logits.float(), x, pos_weight=weight)

    loss_fn = torch.compile(loss_fn) if compile else loss_fn

    def step(x):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(x)
        loss.backward()
        opt.step()
        return loss

    return step


def make_decode(model: TorchAutoencoder, *, bf16: bool, compile: bool):
    """Latents (B,64) -> occupancy (B,32,32,32) bool (decode, threshold at logit 0)."""

    def decode(z):
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            return model.decode(z) > 0

    return torch.compile(decode) if compile else decode
