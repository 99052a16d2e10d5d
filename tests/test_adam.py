"""robustmvc.adam.Adam against torch.optim.Adam, the independent fact it reproduces: on CPU every parameter
after every step is bit for bit torch's, across parameter groups with their own rates and betas, a rate changed
mid-run (the attack's schedule) and parameters left without a gradient for a step; and a training and an attack
run without it ever importing torch._dynamo, which is what it is for."""
import subprocess
import sys

import pytest
import torch
from torch import nn

from robustmvc.adam import Adam
from conftest import ROOT


def two_copies():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    twin = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    twin.load_state_dict(net.state_dict())
    return net, twin


def groups(net, lr_head):
    return [{"params": net[0].parameters(), "betas": (0.5, 0.999)},
            {"params": list(net[1].parameters()) + list(net[4].parameters()), "lr": lr_head}]


@pytest.mark.parametrize("grouped", [False, True])
def test_every_step_is_torch_adam_bit_for_bit(grouped):
    ours_net, torch_net = two_copies()
    if grouped:
        ours = Adam(groups(ours_net, 3e-3), lr=1e-3, betas=(0.9, 0.99))
        reference = torch.optim.Adam(groups(torch_net, 3e-3), lr=1e-3, betas=(0.9, 0.99))
    else:
        ours, reference = Adam(ours_net.parameters(), lr=2e-3), torch.optim.Adam(torch_net.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(1)
    for step in range(12):
        x, y = torch.rand(16, 1, 8, 8, generator=gen), torch.randint(0, 3, (16,), generator=gen)
        if step == 7:  # a schedule's new rate, set on every group
            for opt in (ours, reference):
                for group in opt.param_groups:
                    group["lr"] = group["lr"] / 10
        for net, opt in ((ours_net, ours), (torch_net, reference)):
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(net(x), y).backward()
            if step == 3:  # a parameter without a gradient this step keeps its value and its moments
                net[4].bias.grad = None
            opt.step()
        for (name, a), b in zip(ours_net.named_parameters(), torch_net.parameters()):
            assert torch.equal(a, b), (step, name, (a - b).abs().max().item())
    assert not torch.equal(ours_net[4].weight, two_copies()[0][4].weight)  # it did move


def test_zero_grad_keeps_or_drops_the_gradients_as_asked():
    p = nn.Parameter(torch.ones(3))
    opt = Adam([p])
    p.grad = torch.full((3,), 2.0)
    opt.zero_grad(set_to_none=False)
    assert torch.equal(p.grad, torch.zeros(3))
    opt.zero_grad()
    assert p.grad is None


def test_training_and_attacking_never_import_the_compiler():
    """~3.7 s of CPU per job on a 2-core AMD EPYC without AVX-512 when torch.optim pulls it in."""
    script = """
import sys, torch
from robustmvc import registry, train
from robustmvc.attacks import gan
torch.manual_seed(0)
views = [torch.rand(40, 1, 28, 28) for _ in range(2)]
model = registry.build("comvc", [(1, 28, 28)] * 2, 3, encoder_width=4)
train.train(model, views, {"epochs": 1, "batch_size": 20, "lr": 1e-3, "seed": 0}, progress=False)
gan.fit(model, views, {"epochs": 1, "batch_size": 20, "seed": 0, "eps": 0.1, "protocol": "paper"}, progress=False)
print(sorted(m for m in sys.modules if m.startswith("torch._dynamo")))
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip() == "[]", run.stdout
