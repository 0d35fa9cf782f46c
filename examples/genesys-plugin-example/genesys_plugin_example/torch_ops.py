"""The torch implementation of swish_beta, following the contract in
genesys_primitives/torch_ops/__init__.py: a top-level function named like the
primitive, tensor inputs positionally, scalar parameters as keywords, nothing
used but the generated file's prelude (math, torch, nn, F)."""

import torch

from genesys_dsl.ops import TorchImpl


def swish_beta(x, beta=1.0):
    return x * torch.sigmoid(beta * x)


IMPLEMENTATIONS = {
    "swish_beta": TorchImpl("genesys_plugin_example.torch_ops:swish_beta", "function"),
}
