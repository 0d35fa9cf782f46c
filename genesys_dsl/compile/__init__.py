"""IR -> standalone PyTorch source (one nn.Module class per unit), build(), the LM scaffold."""

from .backends import BACKENDS, BackendError
from .codegen import CompileError
from .module import build, compile_source, load_source

__all__ = ["BACKENDS", "BackendError", "CompileError", "build", "compile_source", "load_source"]
