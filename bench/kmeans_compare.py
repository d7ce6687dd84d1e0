"""The diverse seed set with the hand-written k-means (commit e0a5cf2) vs scipy's kmeans2.

Classes covered by a seed set of k samples from 150 synthetic Gaussian blobs of 40 points
(10 seeds each), and whether the selections are identical. CPU only, about 30 s:

    .venv/bin/python bench/kmeans_compare.py
"""

import importlib.util
import pathlib
import subprocess
import tempfile

import numpy as np

from lesslabels.coordinator import strategies as new

ROOT = pathlib.Path(__file__).resolve().parent.parent
with tempfile.TemporaryDirectory() as tmp:
    path = pathlib.Path(tmp) / "old_strategies.py"
    path.write_text(
        subprocess.run(
            ["git", "-C", str(ROOT), "show", "e0a5cf2:services/coordinator/strategies.py"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    spec = importlib.util.spec_from_file_location("old_strategies", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    old = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(old)
for spread in (0.5, 2.0, 4.0):  # blob sd vs centre sd 10/sqrt(dim)... harder as it grows
    for k in (50, 150):
        cov: dict[str, list[int]] = {"old": [], "new": []}
        for seed in range(10):
            rng = np.random.default_rng(seed)
            centres = rng.normal(size=(150, 32)) * 1.0
            x = np.concatenate([c + rng.normal(scale=spread / np.sqrt(32), size=(40, 32)) for c in centres])
            for name, mod in (("old", old), ("new", new)):
                sel = mod.select_seed("diverse", k, embeddings=x, rng=seed)
                cov[name].append(len(set((sel.indices // 40).tolist())))
        print(
            f"blob spread {spread} k={k}: classes covered old {np.mean(cov['old']):.1f} ± {np.std(cov['old']):.1f}"
            f", new {np.mean(cov['new']):.1f} ± {np.std(cov['new']):.1f} (10 seeds, 150 classes x 40)"
        )
rng = np.random.default_rng(0)
x = rng.normal(size=(3000, 32))
same = [
    np.array_equal(
        old.select_seed("diverse", 150, embeddings=x, rng=s).indices,
        new.select_seed("diverse", 150, embeddings=x, rng=s).indices,
    )
    for s in range(3)
]
print("identical selections on 3000 gaussian points, k=150, seeds 0-2:", same)
