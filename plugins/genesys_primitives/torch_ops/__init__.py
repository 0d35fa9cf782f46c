"""PyTorch implementations of the built-in primitives.

The compiler copies these implementations, as source text, into every generated
model file, so a compiled design needs nothing but torch. That fixes the rules
every implementation here follows:

* Each primitive is one top-level function or `nn.Module` subclass, named exactly
  like the primitive, in one of the modules of this package. Its source (found with
  `inspect.getsource`) must run on its own given the module prelude below plus the
  helpers it lists in `uses` (other top-level functions or classes of this
  package, copied before it). No other imports, no module-level state.
* Tensors are `[batch, length, *dims]` exactly as the signature's `seq[...]` says.
* A primitive **with learned parameters** is an `nn.Module` whose constructor takes
  keyword arguments named exactly like the signature's names: every size bound by
  the tensor inputs (`I`, `W`, `H`, `K`, ...; a rest dim `*S` arrives as a tuple of
  ints) and every scalar parameter (`out`, `bias`, `eps`, `kernel`, ...). Its
  `forward` takes the tensor inputs positionally, in signature order. Its parameter
  count must equal the registry's `params` formula for the same bindings (tested).
* A primitive **without parameters** is a plain function taking the tensor inputs
  positionally, then its scalar parameters as keyword arguments (sizes are not
  passed: read them from the tensors).
* Sequence mixers have a plain reference form (`<name>_reference`: an explicit
  recurrence over time, or the masked quadratic form) next to the efficient
  default (chunked or parallel), with parity tests for forward and gradients.
* Deterministic given the torch seed; float32 and float64 both work; any length
  >= 1 and any batch size.
"""

from genesys_dsl.ops.torch_impl import PRELUDE, TorchImpl

__all__ = ["PRELUDE", "TorchImpl"]
