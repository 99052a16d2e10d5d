"""Seeds side by side (`stack.py`): seed s of a stack is the lone run of seed s, and no seed of a stack
depends on the others.

Tolerances. The stack computes each seed with batched kernels (grouped convolutions, batched matmuls),
which round differently from the lone kernels, so after the initialisation (equal bit for bit) the
comparison is within rounding. Training is compared in float64: in float32 the rounding differences are
processor-dependent and, in AR-DMVC-AM, PGD's sign steps turn a gradient that rounds to the other sign
into a pixel moved 2 steps apart; on a 2-core AMD EPYC without AVX-512 that moved one seed's first-epoch
loss by 3e-3 relative and its fused representation by 0.7, a tenth of what a wrong data order moves them.
In float64 the same code differs by rounding only (measured there, seeds 4 and 9: parameters <= 3e-12
outside the exemption below, outputs <= 2e-10), so both are held to 1e-8: 50 times the largest, and a
hundred-millionth of what a wrong data order moves the outputs (3 to 5). One kind of parameter is exempt: a bias that reaches a
normalisation layer through ReLUs and linear layers only (conv -> BatchNorm, conv -> ReLU -> conv ->
BatchNorm, conv -> InstanceNorm) has, wherever the ReLUs pass the whole batch, a gradient of exactly zero
in exact arithmetic, since the normalisation subtracts the shift again; its computed gradient is rounding
noise of either sign, and Adam, which divides each gradient by its own running size, turns the noise into
steps of up to lr (measured in float64: up to 5e-6). Those biases (and the running means they shift) are
held to Adam's bound, 2 lr per step; they change no output in train mode, which the outputs' comparison
checks. The attacks are compared in float32 (one step, or averages over pixels), as stated at each test.
"""
import copy
from pathlib import Path

import pytest
import torch
from torch import nn

from robustmvc import attack_settings, protocols, registry, stack
from robustmvc import train as train_module
from robustmvc.attacks import gan, pgd
from robustmvc.device import seed_everything, to_tensors
from robustmvc.loop import run_epochs
from robustmvc.train import train

ROOT = Path(__file__).resolve().parents[1]
LR, BATCH, N = 1e-3, 50, 100  # two steps per epoch
SETTINGS = {"comvc": {"encoder_width": 4},
            "ardmvc-am": {"encoder_width": 4, "pgd_steps": 2, "pgd_step": 0.1}}  # PGD in train mode (default)
CFG = {"batch_size": BATCH, "lr": LR, "epochs": 1}


@pytest.fixture(scope="module")
def views(demo_data):
    return [v[:N] for v in demo_data.part("train")[0]]


def lone_model(name, view_shapes, seed):
    seed_everything(seed)  # as runs.train_run builds a model
    return registry.build(name, view_shapes, 10, **SETTINGS[name])


NORMS = (nn.modules.batchnorm._BatchNorm, nn.InstanceNorm2d)


def normalised_biases(module: nn.Module) -> set[str]:
    """Biases whose layer reaches a normalisation through ReLUs and linear layers only, and the running
    means of those normalisations. Where the ReLUs pass the whole batch, the bias only shifts what the
    normalisation subtracts again: its gradient is zero in exact arithmetic."""
    names = set()
    for prefix, seq in module.named_modules():
        if not isinstance(seq, nn.Sequential):
            continue
        layers = list(seq.named_children())
        for i, (a, first) in enumerate(layers):
            if getattr(first, "bias", None) is None or isinstance(first, NORMS):
                continue
            for b, later in layers[i + 1:]:
                if isinstance(later, NORMS):
                    names |= {f"{prefix}.{a}.bias", f"{prefix}.{b}.running_mean"}
                if not isinstance(later, (nn.ReLU, nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                    break
    return names


def assert_close_after_steps(stacked: nn.Module, lone: nn.Module, steps: int, param_tol: float):
    exempt = normalised_biases(lone)
    assert exempt, "the models have biases ahead of a normalisation: the exemption is about them"
    lone_state = lone.state_dict()
    for key, value in stacked.state_dict().items():
        if not value.is_floating_point():
            assert torch.equal(value, lone_state[key]), key  # num_batches_tracked
            continue
        tol = 2 * LR * steps * 1.01 if key in exempt else param_tol
        diff = float((value - lone_state[key]).abs().max())
        assert diff <= tol, f"{key}: {diff:.3g} > {tol:.3g}"


def assert_histories_close(stacked: list[dict], lone: list[dict]):
    assert len(stacked) == len(lone)
    for a, b in zip(stacked, lone):
        assert set(a) == set(b)
        for key, value in b.items():
            if isinstance(value, float) and key != "seconds":
                assert a[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key


def test_stacked_loop_orders_each_seed_as_its_lone_loop():
    seen = []
    run_epochs(lambda epoch, idx: seen.append(idx.clone()) or {"n": torch.ones(len(idx))}, 10, 4, 2,
               seed=[3, 8], device="cpu", label="toy", fix="", progress=False)
    for s, seed in enumerate([3, 8]):
        lone = []
        run_epochs(lambda epoch, idx: lone.append(idx.clone()) or {"n": 1.0}, 10, 4, 2, seed=seed, device="cpu",
                   label="toy", fix="", progress=False)
        assert [idx[s].tolist() for idx in seen] == [idx.tolist() for idx in lone]


@pytest.mark.parametrize("name", ["comvc", "ardmvc-am"])
def test_stack_initialises_each_seed_as_its_lone_run_bit_for_bit(demo_data, name):
    seeds = [4, 9]
    models = [lone_model(name, demo_data.view_shapes, s) for s in seeds]
    st = stack.Stacked(models)
    for s, seed in enumerate(seeds):
        lone = lone_model(name, demo_data.view_shapes, seed)
        for key, value in [*lone.named_parameters(), *lone.named_buffers()]:
            held = st.params[key] if key in st.params else st.buffers[key]
            assert torch.equal(held[s], value), key
        if name == "ardmvc-am":  # PGD's random starts: each seed's own generator, in its lone state
            assert torch.equal(models[s].pgd_generator.get_state(), lone.pgd_generator.get_state())


@pytest.fixture
def float64(monkeypatch):
    """Models built and trained in float64: the stack's and the trainer's input tensors too."""
    def as_float64(views, device):
        return [torch.as_tensor(v, dtype=torch.float64, device=device) for v in views]

    for module in (stack, train_module):
        monkeypatch.setattr(module, "to_tensors", as_float64)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield as_float64
    torch.set_default_dtype(default)


@pytest.mark.parametrize("name", ["comvc", "ardmvc-am"])
def test_seed_of_a_stack_trains_as_its_lone_run(demo_data, views, name, float64):
    seeds = [4, 9]
    results = stack.train_seeds(name, demo_data.view_shapes, 10, SETTINGS[name], views, CFG, seeds, progress=False,
                                  mechanism="stack")
    batch = float64([v[N - BATCH:] for v in views], "cpu")
    for seed, (model, history) in zip(seeds, results):
        lone = lone_model(name, demo_data.view_shapes, seed)
        lone_history = train(lone, views, {**CFG, "seed": seed}, progress=False)
        assert next(model.parameters()).dtype == next(lone.parameters()).dtype == torch.float64
        assert_histories_close(history, lone_history)  # the history holds float32 values
        assert_close_after_steps(model, lone, steps=N // BATCH, param_tol=1e-8)
        # what the model computes in train mode (batch statistics: the exempt biases cancel)
        with torch.no_grad():
            a, b = copy.deepcopy(model).train()(batch), copy.deepcopy(lone).train()(batch)
        torch.testing.assert_close(a.probs, b.probs, rtol=0, atol=1e-8)
        torch.testing.assert_close(a.h, b.h, rtol=0, atol=1e-8)
        if name == "ardmvc-am":  # the PGD generators advanced alike (same draws, same number)
            assert torch.equal(model.pgd_generator.get_state(), lone.pgd_generator.get_state())


@pytest.fixture(scope="module")
def targets(demo_data):
    return [lone_model("comvc", demo_data.view_shapes, 20 + s) for s in range(3)]


@pytest.mark.parametrize("protocol", ["paper", "strict"])
def test_stacked_gan_attack_fits_each_seed_as_its_lone_fit(views, targets, protocol):
    """One step, terms to 1e-5. The generators' weights are held to Adam's bound only: the reference
    initialisation (conv weights ~ N(0, 1)) saturates their tanh, so the gradients of many weights are
    sums that cancel down to rounding, and Adam's first step is +-lr whatever a gradient's size. What
    the generators compute is compared instead: their perturbations, on average within 1e-3 of eps."""
    seeds = [4, 9]
    settings = {"eps": 0.3, "epochs": 1, "batch_size": BATCH, "protocol": protocol}
    x = to_tensors([v[:BATCH] for v in views], "cpu")
    before = [copy.deepcopy(t.state_dict()) for t in targets[:2]]
    results = stack.fit_gan_seeds(targets[:2], x, settings, seeds, progress=False)
    for target, state in zip(targets, before):  # the targets are unchanged
        assert all(torch.equal(v, target.state_dict()[k]) for k, v in state.items())
    for seed, target, (perturber, history) in zip(seeds, targets, results):
        lone, lone_history = gan.fit(target, x, {**settings, "seed": seed}, progress=False)
        assert_histories_close(history, lone_history)
        for key, value in perturber.state_dict().items():
            assert float((value - lone.state_dict()[key]).abs().max()) <= 2 * LR * 1.01, key
        assert not perturber.training
        with torch.no_grad():
            gap = [(a - b).abs().mean() for a, b in zip(perturber.perturb(x), lone.perturb(x))]
        assert max(gap) <= 1e-3 * settings["eps"], gap


@pytest.mark.parametrize("protocol", ["paper", "strict"])
def test_stacked_pgd_attack_searches_each_seed_as_its_lone_search(views, targets, protocol):
    """Each seed's adversarial views as its lone `pgd_set`: the same random start, then sign steps, so a
    pixel whose gradient rounds to the other sign moves 2 step apart; on average within 1e-3 of eps."""
    eps, seeds = 0.3, [4, 9]
    x = to_tensors(views, "cpu")
    batchnorm = protocols.PROTOCOLS[protocol]["batchnorm"]
    with protocols.frozen_target(targets[0], batchnorm), protocols.frozen_target(targets[1], batchnorm):
        adv = stack.pgd_set_seeds(targets[:2], [torch.stack([v, v]) for v in x], pgd.probs_kl, eps, 0.05, 3, seeds,
                                  batch_size=BATCH)
        for s, (target, seed) in enumerate(zip(targets, seeds)):
            lone = pgd.pgd_set(target, x, pgd.probs_kl, eps, 0.05, 3, BATCH, seed=seed)
            for a, b, clean in zip(adv, lone, x):
                assert float((a[s] - clean).abs().max()) <= eps + 1e-6
                assert float((a[s] - b).abs().mean()) <= 1e-3 * eps


def test_gan_stack_starts_from_each_seeds_lone_networks(views):
    x = to_tensors(views, "cpu")
    s = attack_settings.check_gan({"eps": 0.3})
    nets = [gan.networks(x, {**s, "seed": seed}) for seed in (4, 9)]
    st = stack.Stacked([net[0] for net in nets])
    lone = gan.networks(x, {**s, "seed": 9})[0]
    assert all(torch.equal(st.params[k][1], v) for k, v in lone.named_parameters())


# ---------------------------------------------------------------------------------------------
# Independence: seed a's results may not depend on what else is in its stack


def train_pairs(demo_data, views, name):
    """Seed 4 trained in two stacks: beside seed 9 (first) and beside seed 6 (second)."""
    first, second = (stack.train_seeds(name, demo_data.view_shapes, 10, SETTINGS[name], views, CFG, seeds,
                                       progress=False, mechanism="stack") for seeds in ([4, 9], [6, 4]))
    return first[0], second[1]


def assert_independent(pair):
    """Equal bit for bit: the same arithmetic on the same numbers, whatever the partner computes.
    Shared BatchNorm statistics, optimiser state, perturbations or data order would all show."""
    (model_a, history_a), (model_b, history_b) = pair
    for key, value in model_a.state_dict().items():
        assert torch.equal(value, model_b.state_dict()[key]), f"seed 4 depends on its partner: {key}"
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in history_a] == \
           [{k: v for k, v in r.items() if k != "seconds"} for r in history_b]


@pytest.mark.parametrize("name", ["comvc", "ardmvc-am"])
def test_no_seed_of_a_stack_shares_anything_with_another(demo_data, views, name):
    assert_independent(train_pairs(demo_data, views, name))


def test_gan_stack_seeds_share_nothing(views, targets):
    x = to_tensors(views, "cpu")
    settings = {"eps": 0.3, "epochs": 1, "batch_size": BATCH, "protocol": "paper"}
    first = stack.fit_gan_seeds([targets[0], targets[1]], x, settings, [4, 9], progress=False)
    second = stack.fit_gan_seeds([targets[2], targets[0]], x, settings, [6, 4], progress=False)
    assert_independent((first[0], second[1]))


def test_the_independence_check_catches_shared_batchnorm_statistics(demo_data, views, monkeypatch):
    """The check above, on a stack whose seeds pool their BatchNorm running statistics after every
    step (the mean over seeds): it must fail."""
    stacks, init, loop = [], stack.Stacked.__init__, stack.run_epochs

    def recorded(self, *args, **kwargs):
        init(self, *args, **kwargs)
        stacks.append(self)

    def pooled(step, *args, **kwargs):
        def pooling_step(epoch, idx):
            terms = step(epoch, idx)
            with torch.no_grad():
                for key, buffer in stacks[-1].buffers.items():
                    if key.endswith(("running_mean", "running_var")):
                        buffer.copy_(buffer.mean(0, keepdim=True).expand_as(buffer))
            return terms
        return loop(pooling_step, *args, **kwargs)

    monkeypatch.setattr(stack.Stacked, "__init__", recorded)
    monkeypatch.setattr(stack, "run_epochs", pooled)
    with pytest.raises(AssertionError, match="seed 4 depends on its partner"):
        assert_independent(train_pairs(demo_data, views, "comvc"))


@pytest.mark.parametrize("name, mechanism", [("sem", "stack"), ("comvc", "auto"), ("comvc", "loop")])
def test_a_loop_over_seeds_is_the_lone_trainer_seed_by_seed(demo_data, views, name, mechanism):
    """SEM re-fits between epochs, so it never stacks; off CUDA `auto` loops too: either way the same
    call trains each seed by the lone trainer, bit for bit."""
    assert not stack.stacks("sem", {}) and stack.stacks("ardmvc-am", {"backbone": "comvc"})
    settings = {"encoder_width": 4, **({"head_hidden": 16} if name == "sem" else {})}
    cfg = {**CFG, "pretrain_epochs": 0}
    results = stack.train_seeds(name, demo_data.view_shapes, 10, settings, views, cfg, [4, 7], progress=False,
                                mechanism=mechanism)
    for seed, (model, history) in zip([4, 7], results):
        seed_everything(seed)
        lone = registry.build(name, demo_data.view_shapes, 10, **settings)
        lone_history = train(lone, views, {**cfg, "seed": seed}, progress=False)
        assert all(torch.equal(v, lone.state_dict()[k]) for k, v in model.state_dict().items())
        assert [r["total"] for r in history] == [r["total"] for r in lone_history]


def test_bad_stack_requests_are_refused(demo_data, views, targets):
    with pytest.raises(ValueError, match="mechanism 'vmap' is not one of auto, stack, loop"):
        stack.train_seeds("comvc", demo_data.view_shapes, 10, {}, views, CFG, [0], mechanism="vmap")
    x = to_tensors(views, "cpu")
    with pytest.raises(ValueError, match="eval_every to 0"):
        stack.fit_gan_seeds(targets[:2], x, {"eps": 0.3, "eval_every": 1}, [0, 1], progress=False)
    with pytest.raises(ValueError, match="one target per seed"):
        stack.fit_gan_seeds(targets[:2], x, {"eps": 0.3}, [0, 1, 2], progress=False)


def test_demo_metrics_at_the_end_agree_over_seeds(demo_data):
    """CoMVC on the demo as `config/demo.yaml` trains it (10 epochs, width 16), seeds 0-2, stacked and lone:
    the mean clean ACC over the three seeds within 0.05. Over 80 steps the stack's rounding differences
    grow as any rounding difference does, so single seeds are not compared: on a 2-core AMD EPYC the lone
    runs under AVX2 kernels instead of AVX-512 (ATEN_CPU_CAPABILITY=avx2) moved single-seed ACC by up to
    0.052 and the three-seed mean by 0.019; the stack moved them by up to 0.054 and 0.008."""
    from robustmvc import config
    from robustmvc.protocols import clean_scores

    settings, cfg = config.resolve(config.load(ROOT / "config" / "demo.yaml"), "comvc", "demo")
    views, seeds = demo_data.part("train")[0], [0, 1, 2]
    stacked = stack.train_seeds("comvc", demo_data.view_shapes, demo_data.n_clusters, settings, views, cfg, seeds,
                                progress=False, mechanism="stack")
    lone = stack.train_seeds("comvc", demo_data.view_shapes, demo_data.n_clusters, settings, views, cfg, seeds,
                             progress=False, mechanism="loop")
    acc = [[clean_scores(model, *demo_data.part("eval"))["acc"] for model, _ in runs] for runs in (stacked, lone)]
    assert abs(sum(acc[0]) - sum(acc[1])) / len(seeds) <= 0.05, acc


def test_stacked_attack_files_write_each_seeds_lone_record(tmp_path, float64, monkeypatch):
    """`runs.attack_seeds_files` as the lease runs it on CUDA (the paper's attack, seeds side by side, from files)
    against the same call one seed at a time, in float64 (so no prediction can flip on rounding): every seed's
    record, under both protocols, equals its lone one but for the timings and the stack's provenance."""
    from robustmvc import config, runs
    from robustmvc import data as data_mod
    from robustmvc.attacks import run as attack_run

    for module in (attack_run, protocols):  # the eval half's tensors, fitted on and scored
        monkeypatch.setattr(module, "to_tensors", float64)
    cfg = config.load(ROOT / "config" / "demo.yaml", ROOT / "tests" / "lease-rehearsal.yaml")
    data = tmp_path / "demo.npz"
    data_mod.save(data, data_mod.build("demo", max_samples=300))
    seeds = [4, 9]
    checkpoints = [tmp_path / f"seed{s}.pt" for s in seeds]
    runs.train_runs(data, "comvc", seeds, checkpoints, config.train_job(cfg, "comvc", "demo"), progress=False)
    for protocol in ("paper", "strict"):
        jobs = [config.attack_job(cfg, "gan", "demo", protocol=protocol, seed=s, objective="both") for s in seeds]
        made = {mechanism: runs.attack_seeds_files(data, checkpoints, [tmp_path / f"{mechanism}-{protocol}-{s}.json"
                                                                        for s in seeds], jobs, progress=False,
                                                   mechanism=mechanism)
                for mechanism in ("stack", "loop")}
        for stacked, lone in zip(made["stack"], made["loop"]):
            assert stacked["provenance"]["seeds_in_job"] == 2
            for key in ("clean", "attacked", "assignment_changed", "n_fit", "n_eval", "settings", "lineage",
                        "cluster_sizes"):
                assert stacked[key] == lone[key], (protocol, key)
            assert abs(stacked["max_abs_perturbation"] - lone["max_abs_perturbation"]) < 1e-9
            assert_histories_close(stacked["history"], lone["history"])
