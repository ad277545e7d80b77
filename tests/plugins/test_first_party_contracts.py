"""Every first-party plugin passes the same contract tests a third-party plugin would subclass."""

from __future__ import annotations

from dememo import plugins
from dememo.families import Scorer
from dememo.testing import (ArchitectureContract, AttackContract, DatasetContract, MetricContract, PoisonerContract,
                            ScorerContract, UnlearnerContract)

CONTRACTS = {"poisoner": PoisonerContract, "unlearner": UnlearnerContract, "attack": AttackContract,
             "metric": MetricContract, "dataset": DatasetContract, "architecture": ArchitectureContract}
#: entry points of datasets that read files a test cannot have without a download (their own tests load small fixtures)
NEEDS_FILES = {"local-data", "torchvision-datasets"}
#: architectures that need larger images than the contract's default 8×8
SHAPES = {"lenet": ((1, 16, 16), (3, 16, 16))}


def _first_party():
    registry = plugins.get_registry()
    for family, contract in CONTRACTS.items():
        for name in registry.names(family):
            info = registry.info(family, name)
            if info.distribution == "dememo" and info.plugin not in NEEDS_FILES:
                yield family, name, contract, info.cls


for _family, _name, _contract, _cls in _first_party():
    _test_name = "Test_" + _family + "_" + _name.replace("-", "_")
    _base = ScorerContract if issubclass(_cls, Scorer) else _contract
    _extra = {"shapes": SHAPES[_name]} if _name in SHAPES else {}
    globals()[_test_name] = type(_test_name, (_base,), {"plugin_class": _cls, **_extra})


def test_every_first_party_method_is_covered_by_a_contract():
    covered = {(f, n) for f, n, _, _ in _first_party()}
    assert ("poisoner", "em") in covered and ("unlearner", "retrain") in covered
    assert ("attack", "weight-noise") in covered and ("metric", "avg-gap") in covered
    assert len(covered) >= 15


# tap and hypo with non-default parameters (the generated classes above run the defaults)
from dememo_plugins.poisoners.hypo import HypocriticalPerturbation  # noqa: E402
from dememo_plugins.poisoners.tap import TargetedAdversarialPoisoning  # noqa: E402


class TestTapShifted(PoisonerContract):
    plugin_class = TargetedAdversarialPoisoning
    params = {"steps": 10, "step_fraction": 0.2, "shift": 2}


class TestHypoShortCraftingModel(PoisonerContract):
    plugin_class = HypocriticalPerturbation
    params = {"steps": 10, "crafting_epochs": 2, "random_start": True}


# rem and sep with small parameters (the generated classes above run the paper-like defaults)
from dememo_plugins.poisoners.rem import RobustErrorMinimizing  # noqa: E402
from dememo_plugins.poisoners.sep import SelfEnsembleProtection  # noqa: E402


class TestRemFewSteps(PoisonerContract):
    plugin_class = RobustErrorMinimizing
    params = {"max_rounds": 2, "train_steps": 3, "pgd_steps": 2, "adv_steps": 2, "samples": 2, "adv_fraction": 0.25}


class TestSepFewCheckpoints(PoisonerContract):
    plugin_class = SelfEnsembleProtection
    params = {"checkpoints": 3, "steps": 5, "step_fraction": 0.25}


# ueraser, orthogonal-projection and dfr with small and non-default parameters
from dememo_plugins.attacks.dfr import DeepFeatureReweighting  # noqa: E402
from dememo_plugins.attacks.orthogonal_projection import OrthogonalProjection  # noqa: E402
from dememo_plugins.attacks.ueraser import UEraser  # noqa: E402


class TestUEraserTwoDraws(AttackContract):
    plugin_class = UEraser
    track = "unlearnability"
    params = {"repeats": 2, "adversarial_fraction": 0.5, "brightness_intensity": 0.5, "shuffle_probability": 1.0}


class TestOrthogonalProjectionCentred(AttackContract):
    plugin_class = OrthogonalProjection
    track = "unlearnability"
    params = {"linear_steps": 50, "center": True}


class TestDfrHalfHoldoutFineTune(AttackContract):
    plugin_class = DeepFeatureReweighting
    track = "unlearnability"
    params = {"fraction": 0.5, "reinit": False, "epochs": 5}


# weight-recovery (both searches) and certified-learnability with small parameters
from dememo_plugins.attacks.weight_recovery import WeightRecovery  # noqa: E402
from dememo_plugins.metrics.certified_learnability import CertifiedLearnability  # noqa: E402


class TestWeightRecoverySgdSmall(AttackContract):
    plugin_class = WeightRecovery
    track = "unlearnability"
    params = {"eta": 0.5, "epochs": 5, "fraction": 0.5, "keep_best": False}


class TestWeightRecoveryRandomSmall(AttackContract):
    plugin_class = WeightRecovery
    track = "unlearnability"
    params = {"eta": 2.0, "method": "random", "tries": 8, "fraction": 1.0}


class TestCertifiedLearnabilitySmall(MetricContract):
    plugin_class = CertifiedLearnability
    params = {"sigma": 0.05, "draws": 50, "eta": 0.01, "samples": 30}


# sal and ud (SAL / Unlearnable Distance) with a short surrogate run
from dememo_plugins.metrics.sal import SAL, UD  # noqa: E402


class TestSalSmall(MetricContract):
    plugin_class = SAL
    params = {"subsample": 64, "epochs": 6, "probes": 3, "passes": 1, "batch_size": 32}


class TestUdSmall(MetricContract):
    plugin_class = UD
    params = {"subsample": 64, "epochs": 6, "probes": 3, "passes": 1, "batch_size": 32}


# random-label and salun with labels redrawn every step, salun with a 30 % mask, l1-sparse with CIFAR's γ
from dememo_plugins.unlearners.l1_sparse import L1Sparse  # noqa: E402
from dememo_plugins.unlearners.random_label import RandomLabel  # noqa: E402
from dememo_plugins.unlearners.salun import SalUn  # noqa: E402


class TestRandomLabelPerStep(UnlearnerContract):
    plugin_class = RandomLabel
    params = {"relabel": "per-step", "epochs": 3}


class TestSalunPerStepSmallMask(UnlearnerContract):
    plugin_class = SalUn
    params = {"relabel": "per-step", "mask_ratio": 0.3, "epochs": 3}


class TestL1SparseCifarGamma(UnlearnerContract):
    plugin_class = L1Sparse
    params = {"gamma": 1e-4, "epochs": 3}


# ssd with α below |D|/|D_f| (it selects weights), fisher with the exact Fisher and the paper's exponent,
# influence with few samples and small damping
from dememo_plugins.unlearners.fisher import FisherForgetting  # noqa: E402
from dememo_plugins.unlearners.influence import InfluenceUnlearning  # noqa: E402
from dememo_plugins.unlearners.ssd import SelectiveSynapticDampening  # noqa: E402


class TestSsdSelecting(UnlearnerContract):
    plugin_class = SelectiveSynapticDampening
    params = {"alpha": 2.0, "lam": 0.5}


class TestFisherExactPaperExponent(UnlearnerContract):
    plugin_class = FisherForgetting
    params = {"alpha": 1e-4, "exponent": 0.5, "exact": True}


class TestInfluenceFewSamples(UnlearnerContract):
    plugin_class = InfluenceUnlearning
    params = {"alpha": 3.0, "damping": 0.1, "samples": 16}


# eu-k / cf-k on the whole tiny model and certified-newton without noise (the defaults run above)
from dememo_plugins.unlearners.certified_newton import CertifiedNewton  # noqa: E402
from dememo_plugins.unlearners.cf_k import CfK  # noqa: E402
from dememo_plugins.unlearners.eu_k import EuK  # noqa: E402


class TestEuKOneLayerShort(UnlearnerContract):
    plugin_class = EuK
    params = {"k": 1, "epochs": 3, "lr": 0.01}


class TestCfKOneLayer(UnlearnerContract):
    plugin_class = CfK
    params = {"k": 1, "epochs": 3}


class TestCertifiedNewtonNoNoise(UnlearnerContract):
    plugin_class = CertifiedNewton
    params = {"epsilon": float("inf"), "l2": 0.01}


# memorization proxies with non-default parameters: loss-curvature with one draw at a coarse step every
# 3rd epoch, holdout-retraining with three folds and a short, slower fine-tuning
from dememo_plugins.scorers.holdout_retraining import HoldoutRetraining  # noqa: E402
from dememo_plugins.scorers.loss_curvature import LossCurvature  # noqa: E402


class TestLossCurvatureSparse(ScorerContract):
    plugin_class = LossCurvature
    params = {"h": 0.01, "draws": 1, "every": 3}


class TestHoldoutRetrainingThreeFolds(ScorerContract):
    plugin_class = HoldoutRetraining
    params = {"folds": 3, "finetune_epochs": 2, "finetune_lr": 0.01}


# relearn from the retain set plus shots, prototype-relearn with the published unit-norm rule and forget-set shots
from dememo_plugins.attacks.prototype_relearn import PrototypeRelearn  # noqa: E402
from dememo_plugins.attacks.relearn import Relearn  # noqa: E402


class TestRelearnRetainPlusShots(AttackContract):
    plugin_class = Relearn
    params = {"source": "retain+forget", "shots": 3, "epochs": 1.0}


class TestPrototypeRelearnUnitFromForget(AttackContract):
    plugin_class = PrototypeRelearn
    params = {"alpha": 0.5, "scale": "unit", "shots_from": "forget"}


# residual-knowledge on a short grid, ou-at-eps with the margin filter and several draws
from dememo_plugins.metrics.ou_at_eps import OverUnlearning  # noqa: E402
from dememo_plugins.metrics.residual_knowledge import ResidualKnowledge  # noqa: E402


class TestResidualKnowledgeShortGrid(MetricContract):
    plugin_class = ResidualKnowledge
    params = {"taus": [0.0, 0.05], "tau": 0.05, "gauss_draws": 4, "fgsm_draws": 2, "pgd_draws": 2}


class TestOverUnlearningFiltered(MetricContract):
    plugin_class = OverUnlearning
    params = {"beta": 3.0, "draws": 2}


# depth and the (q, η) certificate on the unlearning track (the generated classes run the first track)
from dememo_plugins.metrics.depth import Depth  # noqa: E402


class TestDepthUnlearningSmall(MetricContract):
    plugin_class = Depth
    track = "unlearning"
    params = {"etas": [1.0, 4.0], "sigmas": [0.1], "draws": 2, "epochs": 3}


class TestCertifiedLearnabilityOnForgetSet(MetricContract):
    plugin_class = CertifiedLearnability
    track = "unlearning"
    params = {"draws": 20, "sigma": 0.03, "eta": 0.005}
