"""The training step's pieces that the CUDA-graph path relies on, checked on the CPU: the
device-side learning-rate schedule equals the host one, the device-side batch selection walks
the epoch's permutation, and undoing warm-up restores weights and optimiser state exactly."""

import math

import numpy as np
import pytest
import torch
from engine_testdata import TINY_CNN_ARGS

from trainer.engine.step import (
    LrSchedule,
    StepData,
    TrainStepper,
    epoch_permutation,
    make_optimizer,
)
from trainer.models import create_model


@pytest.mark.parametrize("kind,warmup", [("cosine", 5), ("cosine", 0), ("constant", 3)])
def test_device_schedule_equals_host_schedule(kind, warmup):
    s = LrSchedule(1e-3, kind, warmup_steps=warmup, total_steps=40)
    for step in [0, 1, 2, 4, 5, 6, 20, 39, 40, 55]:
        got = float(s.tensor_at(torch.tensor(step)))
        assert got == pytest.approx(s.at(step), rel=1e-5, abs=1e-12), step
    if kind == "cosine":
        assert s.at(warmup) == pytest.approx(1e-3) and s.at(40) == pytest.approx(0.0)
        assert s.at(warmup + (40 - warmup) // 2) == pytest.approx(
            1e-3 * 0.5 * (1 + math.cos(math.pi * ((40 - warmup) // 2) / (40 - warmup))))
    if warmup:
        assert s.at(0) == pytest.approx(1e-3 / warmup)


def test_epoch_permutation_depends_only_on_seed_and_epoch():
    a = epoch_permutation(42, 3, 1000)
    assert np.array_equal(a, epoch_permutation(42, 3, 1000))
    assert not np.array_equal(a, epoch_permutation(42, 4, 1000))
    assert np.array_equal(np.sort(a), np.arange(1000))


def _stepper(batch=16, n=40):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, n)
    patches = rng.integers(0, 60, (n, 40, 40, 3)).astype(np.uint8)
    patches[np.arange(n), :, :, labels] += 150
    from trainer.formats.augment_plan import build_augmented_index

    data = StepData(inputs=torch.from_numpy(patches), labels=torch.from_numpy(labels),
                    plan=torch.from_numpy(build_augmented_index(n, 0)),
                    mean=torch.full((3, 40, 40), 0.4), augment=True)
    model = create_model("cnn", 3, **TINY_CNN_ARGS, input_dropout=0.0, hidden_dropout=0.0)
    dev = torch.device("cpu")
    opt = make_optimizer(model, "adamw", 3e-3, 0.0, dev)
    return TrainStepper(model, opt, data, batch, dev, None, LrSchedule(3e-3)), data


def test_steps_walk_the_permutation_and_the_loss_falls():
    torch.set_num_threads(1)
    st, data = _stepper()
    assert st.steps_per_epoch == data.n_entries // 16
    perm = epoch_permutation(0, 1, data.n_entries)
    st.start_epoch(perm)
    losses = []
    for epoch in range(1, 4):
        st.start_epoch(epoch_permutation(0, epoch, data.n_entries))
        for _ in range(st.steps_per_epoch):
            st.step()
        loss_sum, correct = st.read()
        losses.append(loss_sum / st.steps_per_epoch)
        assert int(st.pos) == st.steps_per_epoch * 16  # the device counter advanced
    assert losses[-1] < losses[0] * 0.7
    assert st.global_step == 3 * st.steps_per_epoch


def test_a_resumed_epoch_starts_at_its_step_with_its_sums():
    st, data = _stepper()
    st.start_epoch(epoch_permutation(0, 1, data.n_entries), start_step=5, loss_sum=2.5,
                   correct=7)
    assert int(st.pos) == 5 * 16
    assert st.read() == (2.5, 7)


def test_snapshot_restore_undoes_steps_exactly():
    """What capture does after its warm-up steps: weights, buffers and optimiser state back to
    where they were (a fresh optimiser's state back to zeros)."""
    st, data = _stepper()
    before = {k: v.clone() for k, v in st.model.state_dict().items()}
    snap = st._snapshot()
    st.start_epoch(epoch_permutation(0, 1, data.n_entries))
    for _ in range(3):
        st.step()
    assert not all(torch.equal(before[k], v) for k, v in st.model.state_dict().items())
    st._restore(snap)
    assert all(torch.equal(before[k], v) for k, v in st.model.state_dict().items())
    for state in st.optimizer.state.values():
        assert float(state["step"]) == 0.0
        assert not state["exp_avg"].any() and not state["exp_avg_sq"].any()
    assert st.global_step == 0 and int(st.pos) == 0 and st.read() == (0.0, 0)
