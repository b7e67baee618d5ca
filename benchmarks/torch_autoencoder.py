"""lerpnet's default autoencoder written the way a researcher would in PyTorch (the speed baseline).

Same architecture as lerpnet.models with its default config: encoder conv k4 s2 1->32, relu,
conv k4 s2 32->16, relu, conv k4 s4 16->8 (2^3 x 8 latent); decoder Linear 64->8^3xC0, relu,
ConvTranspose k4 s2 C0->C1, relu, ConvTranspose k4 s2 C1->1 (logits), with (C0, C1) the decoder
widths: the study's (16, 32) by default, (64, 64) for configs/modelnet_chairs.py:wide_decoder's model. PyTorch's
`padding=1` for k4 s2 equals Flax's 'SAME' here. cuDNN, the optimiser and loss of
benchmarks/bench_model.py. Decoding comes in the forms a PyTorch user would try for speed
(`make_decode`): eager NCDHW, channels-last-3d, a captured CUDA graph, torch.compile (default and
max-autotune), each in float32 (TF32 allowed) or bfloat16 weights and activations.
torch is not a lerpnet dependency (`pip install -e .[bench]` adds it): only the benchmark imports this
module, and only when torch is importable.
"""

from __future__ import annotations

import functools

import torch
from torch import nn


DECODE_FORMS = ("eager", "channels_last", "cuda_graph", "compile", "compile_max_autotune")


class TorchAutoencoder(nn.Module):
    def __init__(self, decoder_features: tuple[int, int] = (16, 32), channels_last: bool = False):
        super().__init__()
        c0, c1 = decoder_features
        self.c0, self.channels_last = c0, channels_last
        self.encoder = nn.Sequential(
            nn.Conv3d(1, 32, 4, 2, padding=1), nn.ReLU(),
            nn.Conv3d(32, 16, 4, 2, padding=1), nn.ReLU(),
            nn.Conv3d(16, 8, 4, 4),
        )
        self.fc = nn.Linear(64, 8 * 8 * 8 * c0)
        self.up = nn.Sequential(
            nn.ConvTranspose3d(c0, c1, 4, 2, padding=1), nn.ReLU(),
            nn.ConvTranspose3d(c1, 1, 4, 2, padding=1),
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B,32,32,32) -> (B,64)."""
        return self.encoder(x[:, None]).flatten(1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B,64) -> logits (B,32,32,32)."""
        h = torch.relu(self.fc(z)).view(-1, self.c0, 8, 8, 8)
        if self.channels_last:
            h = h.contiguous(memory_format=torch.channels_last_3d)
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


def make_decode(decoder_features: tuple[int, int], z: torch.Tensor, *, dtype: torch.dtype, form: str):
    """A call decoding the latents `z` (B, 64) to occupancy (B, 32, 32, 32) bool (threshold at logit 0),
    with a fresh decoder of these widths in `dtype`, written in `form` (one of DECODE_FORMS)."""
    if form not in DECODE_FORMS:
        raise ValueError(f"unknown decode form {form!r}; known: {', '.join(DECODE_FORMS)}")
    model = TorchAutoencoder(decoder_features, channels_last=form != "eager").to(z.device, dtype).eval()
    if form != "eager":
        model = model.to(memory_format=torch.channels_last_3d)
    z = z.to(dtype)

    def decode(z):
        with torch.no_grad():
            return model.decode(z) > 0

    if form.startswith("compile"):
        return functools.partial(torch.compile(decode, mode="max-autotune" if form.endswith("autotune") else None), z)
    if form != "cuda_graph":
        return functools.partial(decode, z)
    side = torch.cuda.Stream()  # warm up (cuDNN's algorithm choice) off the capture, then capture one decode
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            decode(z)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        decode(z)
    return graph.replay
