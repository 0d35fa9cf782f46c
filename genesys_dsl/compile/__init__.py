"""IR -> standalone PyTorch source (one nn.Module class per unit), build(), the LM scaffold."""

from .codegen import CompileError
from .module import build, compile_source, load_source

__all__ = ["CompileError", "build", "compile_source", "load_source"]
