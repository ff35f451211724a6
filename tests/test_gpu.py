"""What only a CUDA device can check: the cuDNN path of the model against its loop, a bf16
training step, and an NCCL process group. Skipped without CUDA; scripts/gpu_check.sh runs them."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
import torch
import torch.distributed as dist

from hpc_rnn.config import ModelConfig
from hpc_rnn.data import Batch
from hpc_rnn.distributed import close_world, init_world
from hpc_rnn.model import RecurrentLM
from hpc_rnn.train import objective_loss

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
]

N_WORDS = 500


@pytest.fixture
def exact_float32() -> Iterator[None]:
    """TF32 off: cuDNN uses it for RNNs by default, which alone differs by ~1e-3."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _tokens(batch: int, steps: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, N_WORDS, (batch, steps), generator=g).cuda()


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_cudnn_path_equals_loop_path_in_float32(cell: str, exact_float32: None) -> None:
    torch.manual_seed(0)
    model = RecurrentLM(N_WORDS, ModelConfig(cell=cell, hidden=256, layers=2)).cuda()
    tokens = _tokens(16, 50)
    found = {}
    for functional in (True, False):
        model._functional = functional
        model.zero_grad()
        logits, state = model(tokens)
        states = state if isinstance(state, tuple) else (state,)
        (logits.square().mean() + sum(s.square().mean() for s in states)).backward()
        grads = [p.grad.clone() for p in model.parameters()]
        found[functional] = [logits.detach(), *(s.detach() for s in states), *grads]
    for fused, loop in zip(found[True], found[False], strict=True):
        torch.testing.assert_close(fused, loop, atol=1e-4, rtol=1e-4)


def test_bf16_autocast_training_step_lowers_the_loss() -> None:
    torch.manual_seed(0)
    model = RecurrentLM(N_WORDS, ModelConfig()).cuda()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    inputs = _tokens(64, 50)
    batch = Batch(inputs, inputs[:, -1].roll(1), torch.ones(64), 64)
    device = inputs.device
    losses = []
    for _ in range(10):
        # As train.py steps on a GPU.
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits, _ = model(inputs, last_only=True)
        assert logits.dtype == torch.bfloat16
        loss, _ = objective_loss(logits.float(), batch, 1, device)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.9 * losses[0]


def test_nccl_process_group_of_one_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for name, value in {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0"}.items():
        monkeypatch.setenv(name, value)
    world = init_world("cuda", timeout_s=60)
    assert (world.size, world.device.type) == (1, "cuda")
    assert torch.cuda.current_device() == world.device.index
    # init_world starts a group only for 2+ ranks; the backend it would pick is checked here.
    dist.init_process_group("nccl", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        assert dist.get_backend() == "nccl"
        t = torch.arange(3.0, device=world.device)
        dist.all_reduce(t)
        assert t.tolist() == [0.0, 1.0, 2.0]
    finally:
        close_world()
    assert not dist.is_initialized()
