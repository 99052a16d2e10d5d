"""The public AR-DMVC code run on one of our dataset files: the other half of `public_differential.py`.

    cd PUBLIC_CHECKOUT && python /path/to/robustmvc/benchmarks/public_side.py \
        --data noisyfashion-10k.npz --dataset noisyfashionmnist --model comvc --seed 0 --width 16 \
        --train-epochs 10 --atk-epochs 10 --atk-eps 0.15 --out pub-noisyfashion-comvc-seed0.json

Runs inside a checkout of libertyhhn/AR-DMVC (not part of this project, and not shipped with it), in
an environment with its requirements (pytorch-lightning 1.9 and pydantic 1.10 work with current torch).
It imports that code's own modules and calls them unchanged: the CoMVC model and loss from its
config, the training loops of `run_other.py` (CoMVC) and `run.py` (AR-DMVC / AR-DMVC-AM, with its
PGD), and `trainer.GAN_Attack`. What it sets around them is what a user has to:
- the data: our file's train half trains, its eval half is attacked and scored (the public code
  takes the first and second halves of its own shuffled file), in shuffled loaders of 100 as its
  DataModule gives them, so both sides see the same samples;
- no SEM module and no torchvision are needed (the first is missing from the repository, the second
  serves pretrained ResNets and augmentation only): both are stubbed;
- `self.log` outside a Lightning trainer is silenced, the encoder width and the seed are arguments
  (the public code fixes 64 channels and seed 5).
Writes one JSON: clean ACC on the eval half (running statistics), the attack's pre and post
[ACC, NMI, ARI] (the target on batch statistics, as the public code scores), the ACC after each
attack epoch, and the seconds.
"""
import argparse
import json
import logging
import os
import sys
import time
import types

import numpy as np
import pytorch_lightning  # noqa: F401  (imported before the torchvision stub: it probes for torchvision)
import torch
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, os.getcwd())
sys.modules["torchvision"] = types.SimpleNamespace(models=None)
sys.modules["torchvision.transforms"] = types.SimpleNamespace(transforms=None)
sys.modules["models.SEM"] = types.SimpleNamespace(Network=None)
sys.modules["models.SEM_trainer"] = types.SimpleNamespace(sem_train=None)

import config  # noqa: E402  (the public code's modules, from the working directory)
import run as public_run  # noqa: E402
import run_other as public_run_other  # noqa: E402
from config.templates import layers  # noqa: E402
from models.base.base_model import BaseModel  # noqa: E402
from models.build_model import build_model  # noqa: E402
from trainer import GAN_Attack  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="a `robustmvc data build` .npz")
    p.add_argument("--dataset", default="noisyfashionmnist", help="the public code's dataset name")
    p.add_argument("--model", default="comvc", choices=["comvc", "ardmvc", "ardmvc_am"])
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--train-epochs", type=int, default=10)
    p.add_argument("--atk-epochs", type=int, default=10)
    p.add_argument("--atk-eps", type=float, default=0.15)
    p.add_argument("--para-ad", type=float, default=0.1, help="AR-DMVC's adversarial weight (run.py's para_ad)")
    p.add_argument("--para-kl", type=float, default=1.0, help="AR-DMVC-AM's KL weight (run.py's para_kl)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--load", help="attack this state_dict instead of training one")
    p.add_argument("--save", help="save the trained state_dict here")
    p.add_argument("--out", required=True)
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    public_run.logger = public_run_other.logger = logging.getLogger("public")
    BaseModel._log_dict = lambda *args, **kwargs: None
    for layer in layers.DEFAULT_LAYERS["cnn_small"]:
        if hasattr(layer, "out_channels"):
            layer.out_channels = a.width

    d = np.load(a.data)
    views = [torch.from_numpy(d[f"view_{v}"]) for v in range(len([k for k in d.files if k.startswith("view_")]))]
    labels = torch.from_numpy(d["labels"])
    train_set, eval_set = (TensorDataset(*[v[d[k]] for v in views], labels[d[k]]) for k in ("train_idx", "eval_idx"))

    def loader(ds, drop_last):
        return DataLoader(ds, batch_size=100, shuffle=True, drop_last=drop_last)

    _, cfg = config.get_experiment_config(a.dataset, a.model)
    cfg.n_epochs = a.train_epochs
    args = argparse.Namespace(device=config.DEVICE, data_name=a.dataset, atk_mode=1, eps=0.2, alpha=0.02,
                              para_ad=a.para_ad, para_kl=0.0 if a.model == "ardmvc" else a.para_kl,
                              save_dir=os.path.join("/tmp", f"public-side-{os.getpid()}"))
    os.makedirs(args.save_dir, exist_ok=True)
    public_run_other.args = args

    start = time.time()
    public_run.set_seed(a.seed)
    net = build_model(cfg.model_config)
    if a.load:
        net.load_state_dict(torch.load(a.load))
    elif a.model == "comvc":
        public_run_other.ori_train(cfg, net, loader(train_set, True), loader(train_set, False))
    else:
        public_run.train(args, cfg, net, loader(train_set, True), loader(train_set, False))
    if a.save:
        torch.save(net.state_dict(), a.save)
    train_s = time.time() - start

    with torch.no_grad():
        net.eval()
        steps = [net._val_test_step(list(b), i, "test") for i, b in enumerate(loader(eval_set, False))]
        clean = net._val_test_epoch_end(steps, "test")

    public_run.set_seed(a.seed)
    target = build_model(cfg.model_config)  # a fresh module in train mode, as the public atk_main loads it
    target.load_state_dict(net.state_dict())
    for q in target.parameters():
        q.requires_grad = False
    start = time.time()
    _, history = GAN_Attack(args, target, perb_eps=a.atk_eps).train(loader(eval_set, True), loader(eval_set, False),
                                                                    a.atk_epochs)
    result = {"side": "public", "dataset": a.dataset, "model": a.model, "seed": a.seed, "width": a.width,
              "train_epochs": a.train_epochs, "atk_epochs": a.atk_epochs, "eps": a.atk_eps,
              "clean_acc": float(clean["acc"]), "pre": [float(x) for x in history[0]],
              "post": [float(x) for x in history[-1]], "history_acc": [float(h[0]) for h in history],
              "train_seconds": train_s, "attack_seconds": time.time() - start}
    with open(a.out, "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
