"""Reference checks of the reference rows: the clean release, standard training, the original model, exact
retraining, and the run-time ratio. Each is a definition rather than an algorithm, so each check pins the
definition's observable consequence (what the row may and may not depend on), which a wrong row would break.
"""

from __future__ import annotations

import pytest
import torch

from dememo.data import Data
from dememo.evaluation import Evaluation
from dememo.testing import tiny_context, tiny_splits, tiny_task
from dememo.context import standard_training
from dememo_plugins.attacks.none import NoAttack
from dememo_plugins.metrics.run_time import RunTime
from dememo_plugins.poisoners.none import NoPoison
from dememo_plugins.unlearners.original import Original
from dememo_plugins.unlearners.retrain import Retrain


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


@pytest.mark.reference("poisoner", "none", source="paper: Huang et al. ICLR 2021, the 'clean' row of Table 1")
def test_none_poisoner_releases_the_images_unchanged_as_a_copy():
    splits = tiny_splits()
    out = NoPoison().poison(splits.train, tiny_context(splits))
    assert torch.equal(out, splits.train.x) and out.data_ptr() != splits.train.x.data_ptr()


@pytest.mark.reference("attack", "none", source="paper: Huang et al. ICLR 2021, standard training (no defence)")
def test_none_attack_is_standard_training_and_the_identity_on_models():
    splits = tiny_splits()
    trained = NoAttack().train(splits, tiny_context(splits, seed=3))
    expected = standard_training(tiny_context(splits, seed=3), splits.train)[0]
    assert _same_weights(trained, expected)
    assert NoAttack().attack(trained, splits, tiny_context(splits)) is trained


@pytest.mark.reference("unlearner", "original", source="paper: Fan et al. ICLR 2024 (SalUn), Table 1 row 'original'")
def test_original_returns_the_trained_model_itself():
    splits = tiny_splits()
    model = standard_training(tiny_context(splits), splits.train)[0]
    assert Original().unlearn(model, tiny_task(splits), tiny_context(splits)) is model


@pytest.mark.reference("unlearner", "retrain", source="paper: Fan et al. ICLR 2024 (SalUn), §5: 'Retrain' = training "
                       "from scratch on the retain set D_r with the original recipe")
def test_retrain_is_standard_training_on_the_retain_set_and_ignores_the_forget_set():
    splits = tiny_splits()
    task = tiny_task(splits, seed=1)
    model = standard_training(tiny_context(splits), splits.train)[0]
    retrained = Retrain().unlearn(model, task, tiny_context(splits, seed=2))
    assert _same_weights(retrained, standard_training(tiny_context(splits, seed=2), task.retain)[0])
    # the forget set's images and the model it is given change nothing
    scrambled = task.__class__(retain=task.retain, forget=task.forget.with_images(torch.rand_like(task.forget.x), "scrambled"),
                               val=task.val)
    other = standard_training(tiny_context(splits, seed=9), splits.train)[0]
    assert _same_weights(Retrain().unlearn(other, scrambled, tiny_context(splits, seed=2)), retrained)
    # and it is not the full-data model
    assert not _same_weights(retrained, standard_training(tiny_context(splits, seed=2), splits.train)[0])


@pytest.mark.reference("metric", "run-time", source="paper: Fan et al. ICLR 2024 (SalUn), Table 1 'RTE' = run time "
                       "of the unlearning method relative to Retrain")
@pytest.mark.parametrize(("unlearn", "retrain"), [(2.5, 10.0), (10.0, 10.0), (0.0, 4.0), (7.0, 0.5)])
def test_run_time_is_the_ratio_of_unlearning_to_retraining_time(unlearn, retrain):
    splits = tiny_splits()
    ev = Evaluation(model=torch.nn.Identity(), splits=splits, track="unlearning",
                    costs={"unlearn_seconds": unlearn, "retrain_seconds": retrain})
    out = RunTime().compute(ev, tiny_context(splits))
    assert out["rte"] == pytest.approx(unlearn / retrain) and out["unlearn_seconds"] == unlearn
    missing = RunTime().compute(Evaluation(model=torch.nn.Identity(), splits=splits, track="unlearning",
                                           costs={"unlearn_seconds": unlearn}), tiny_context(splits))
    assert missing["rte"] != missing["rte"]  # NaN, never a made-up ratio


@pytest.mark.reference("unlearner", "boundary-shrink",
                       source="paper: Chen et al., Boundary Unlearning, CVPR 2023, and its released code (Boundary-Unlearning-Code): "
                              "boundary_unlearning.py:boundary_shrink with adv_generator.py:FGSM, bound 0.1")
def test_boundary_shrink_labels_are_the_released_fgsm_predictions_on_a_linear_model():
    """The released code labels each forget sample with the original model's prediction on its one-step FGSM
    example x' = clip(x + 0.1·sign(∇ₓ CE(f(x), y)), 0, 1). For a linear model f(x) = Wx + b the gradient is
    Wᵀ(softmax(f(x)) − e_y), so x' and the label are computed here in closed form with NumPy. Where the
    attack succeeds (prediction ≠ y) the plugin's label must equal it; where it fails the plugin takes the
    best other class (its documented deviation), never y."""
    import numpy as np

    from dememo_plugins.unlearners.boundary_shrink import nearest_wrong_labels

    g = torch.Generator().manual_seed(0)
    k, d, n = 4, 6, 200
    lin = torch.nn.Linear(d, k)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(k, d, generator=g))
        lin.bias.copy_(0.1 * torch.randn(k, generator=g))
    model = torch.nn.Sequential(torch.nn.Flatten(), lin)
    x = torch.rand(n, 1, 1, d, generator=g)
    y = torch.randint(0, k, (n,), generator=g)
    labels = nearest_wrong_labels(model, Data.from_tensors(x, y, k, tag="ref"), 0.1, exclude=torch.zeros(k, dtype=torch.bool))

    w, b = lin.weight.detach().double().numpy(), lin.bias.detach().double().numpy()
    xs, ys = x.reshape(n, d).double().numpy(), y.numpy()
    z = xs @ w.T + b
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    grad = (p - np.eye(k)[ys]) @ w
    x_adv = np.clip(xs + 0.1 * np.sign(grad), 0, 1)
    z_adv = x_adv @ w.T + b
    released = z_adv.argmax(1)
    best_other = np.where(np.eye(k, dtype=bool)[ys], -np.inf, z_adv).argmax(1)
    success = released != ys
    assert 0.1 < success.mean() < 0.9  # both cases occur on this draw
    assert (labels.numpy()[success] == released[success]).all()
    assert (labels.numpy()[~success] == best_other[~success]).all() and (labels.numpy() != ys).all()
