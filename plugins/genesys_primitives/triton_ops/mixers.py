"""Triton kernels of the sequence mixers, as this catalog module's IMPLEMENTATIONS: gated
linear attention (gla.py: 64-token chunks with 16-token sub-chunks), and retention and
Mamba-2's SSD through the scalar-decay kernels of ssd.py. Drop-ins for
../torch_ops/mixers.py (the contract is in __init__.py); the chunk walk they share is
chunked.py's.
"""

import math

import torch

from . import TritonImpl
from .gla import gla  # noqa: F401 - this catalog module's primitives are found here
from .ssd import _chunk_scalar_decay_triton


def retention(q, k, v, *, chunk_size=None):
    """retention (see torch_ops.mixers.retention) by the scalar-decay Triton kernels of ssd.py."""
    batch, length, heads, size = q.shape
    h = torch.arange(heads, dtype=torch.promote_types(v.dtype, torch.float32), device=q.device)
    log_gamma = torch.log1p(-torch.exp2(-5 - h))  # gamma_h = 1 - 2^(-5 - h)
    return _chunk_scalar_decay_triton(q.to(v.dtype), k.to(v.dtype), v, log_gamma.expand(batch, length, heads),
                                      1 / math.sqrt(size), chunk_size)


# ------------------------------------------------------------------------------ registry

_HERE = "genesys_primitives.triton_ops.mixers:"
_SSD = "genesys_primitives.triton_ops.ssd:"
_TORCH = "genesys_primitives.torch_ops.mixers:"
_SCAN = tuple(_TORCH + name for name in (  # the fallback
    "_segsum", "_chunks", "_chunk_tokens", "_unchunk", "_chunk_starts"))
_CHUNKED = tuple("genesys_primitives.triton_ops.chunked:" + name for name in (  # the chunk walk, shared
    "_chunked_rows", "_chunked_tile", "_chunked_load", "_chunked_load_qk", "_chunked_store", "_chunked_state",
    "_chunked_load_state", "_chunked_store_state", "_chunked_dqk_over_v", "_chunked_dims", "_chunked_forward",
    "_chunked_backward_dh_dv", "_chunked_kernels_take"))
_SCALAR = _SCAN + (_TORCH + "_chunk_scalar_decay",) + _CHUNKED + tuple(_SSD + name for name in (
    "_scalar_decay_chunk_decays", "_scalar_decay_between", "_scalar_decay_fwd_h_kernel",
    "_scalar_decay_fwd_o_kernel", "_scalar_decay_bwd_dh_kernel", "_scalar_decay_bwd_dv_kernel",
    "_scalar_decay_bwd_dqk_kernel", "_ChunkScalarDecay", "_chunk_scalar_decay_triton"))
_GLA_HERE = "genesys_primitives.triton_ops.gla:"
_GLA = _SCAN + (_TORCH + "_chunk_channel_decay",) + _CHUNKED + tuple(_GLA_HERE + name for name in (
    "_gla_row", "_gla_totals", "_gla_chunk_total", "_gla_decay_between", "_gla_scores", "_gla_fwd_h_kernel",
    "_gla_fwd_intra_kernel", "_gla_fwd_o_kernel", "_gla_bwd_dh_kernel", "_gla_bwd_dA_kernel",
    "_gla_bwd_dv_kernel", "_gla_bwd_dqk_kernel", "_gla_local_cumsums", "_GlaChunked"))

IMPLEMENTATIONS: dict[str, TritonImpl] = {
    "gla": TritonImpl(_GLA_HERE + "gla", uses=_GLA),
    "retention": TritonImpl(_HERE + "retention", uses=_SCALAR),
    "ssd": TritonImpl(_SSD + "ssd", uses=_SCALAR + (_TORCH + "_ssd_parameters",)),
}
