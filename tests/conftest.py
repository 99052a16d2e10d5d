from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MNIST_10K = ROOT.parent / "shared" / "data" / "mnist-10k"
FASHION_SYSTEM = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(scope="session")
def demo_data():
    from robustmvc import data

    return data.build("demo")


@pytest.fixture(scope="session")
def mnist10k():
    if not MNIST_10K.is_dir():
        pytest.skip(f"{MNIST_10K} not present (the shared 10k MNIST digits)")
    return MNIST_10K
