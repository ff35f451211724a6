"""What only a CUDA device can check: the cuDNN path of the model against its loop, the
project's training step under bf16 autocast, a run stopped and resumed on the GPU, and an NCCL
all-reduce between two processes (on one GPU the skip says that NCCL refuses two ranks).
Skipped without CUDA; scripts/gpu_check.sh runs them."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from conftest import finish, start_ranks
from test_train import StopAt, final_params, steps_logged, steps_on_disk, train_here

from hpc_rnn.config import ModelConfig, TrainConfig
from hpc_rnn.data import Batch
from hpc_rnn.distributed import World
from hpc_rnn.model import RecurrentLM
from hpc_rnn.train import EXIT_STOPPED, make_optimizer, train_step

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


def test_the_training_step_runs_in_bf16_and_lowers_the_loss() -> None:
    torch.manual_seed(0)
    cfg = TrainConfig(objective="last", lr=3e-3)
    model = RecurrentLM(N_WORDS, cfg.model).cuda()
    optimizer = make_optimizer(cfg, model)
    world = World(0, 1, 0, torch.device("cuda", torch.cuda.current_device()))
    inputs = _tokens(64, 50).cpu()
    batch = Batch(inputs, inputs[:, -1].roll(1), torch.ones(64), 64)
    dtypes = []
    model.output.register_forward_hook(lambda _m, _i, out: dtypes.append(out.dtype))
    losses = []
    for _ in range(10):
        loss_sum, _, windows = train_step(cfg, model, model, optimizer, [batch], world).tolist()
        losses.append(loss_sum / windows)
    assert set(dtypes) == {torch.bfloat16}, "the output layer ran under bf16 autocast"
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.9 * losses[0]


# Each rank sums rank + 1 through the project's process group: 1 + 2 = 3 on both.
_ALL_REDUCE = """
import torch
from hpc_rnn.distributed import all_sum, close_world, init_world
world = init_world("cuda", timeout_s=120)
assert torch.distributed.get_backend() == "nccl"
total = all_sum(torch.full((3,), world.rank + 1.0, device=world.device), world)
print("rank", world.rank, "device", world.device, "sum", total.tolist())
close_world()
"""


@pytest.mark.skipif(
    torch.cuda.device_count() < 2,
    reason="NCCL refuses two ranks on one GPU ('Duplicate GPU detected'): needs 2 GPUs",
)
def test_nccl_all_reduce_between_two_processes() -> None:
    for r, (rc, out, err) in enumerate(finish(start_ranks([sys.executable, "-c", _ALL_REDUCE], 2))):
        assert rc == 0, err[-3000:]
        assert f"rank {r} device cuda:{r} sum [3.0, 3.0, 3.0]" in out


def test_a_run_stopped_on_the_gpu_resumes_at_its_step_and_ends_as_the_uninterrupted_one(
    demo_data: Path, tmp_path: Path
) -> None:
    # The checkpoint-requeue-resume of a Slurm job, on the GPU: stop at step 6 (the signal's
    # checkpoint), start again (the requeue), and end at step 12. cuDNN and bf16 are not
    # bitwise deterministic, so the parameters agree within bf16's tolerance, not exactly.
    common = ("--device", "cuda", "--batch-size", "64", "--max-steps", "12")
    common += ("--epochs", "100", "--ckpt-every-steps", "4")
    straight, run = tmp_path / "straight", tmp_path / "run"
    assert train_here(demo_data, straight, *common) == 0
    assert train_here(demo_data, run, *common, stop=StopAt(6)) == EXIT_STOPPED
    assert max(steps_on_disk(run)) == 6
    assert train_here(demo_data, run, *common) == 0
    assert steps_logged(run) == list(range(1, 13))  # each step once over both starts
    resumed, uninterrupted = final_params(run), final_params(straight)
    for name, value in uninterrupted.items():
        torch.testing.assert_close(resumed[name], value, atol=2e-2, rtol=1.6e-2, msg=name)
