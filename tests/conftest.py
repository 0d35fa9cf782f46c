import os

# The suite runs offline: nothing may reach a model or dataset hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

# One torch thread: on a shared machine, torch's default of one thread per core
# oversubscribes the cores and small models train up to 10x slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")
try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover - torch is a dependency
    pass

# Property tests draw the same examples every run, so a run's result depends on the code
# alone (the project's determinism rule); HYPOTHESIS_PROFILE=explore draws fresh ones.
from hypothesis import settings  # noqa: E402

settings.register_profile("deterministic", derandomize=True, database=None)
settings.register_profile("explore")
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))
