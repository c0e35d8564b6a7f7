"""Test-session setup: SciPy reads SCIPY_ARRAY_API once, at import, so it is set before anything imports it.

scikit-learn's array API checks (tensor in, tensor out) run only with it; see README, "Tensors in,
tensors out".
"""

import os

os.environ.setdefault("SCIPY_ARRAY_API", "1")
