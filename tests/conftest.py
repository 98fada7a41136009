"""Settings shared by the whole test suite."""

import torch

# The suite runs on two pytest-xdist workers on two cores: one intra-op thread per worker
# avoids oversubscription, which makes small ops many times slower.
torch.set_num_threads(1)
