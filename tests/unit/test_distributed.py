import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from advkit import distributed


def test_single_process_fallbacks():
    assert not distributed.is_distributed()
    assert distributed.rank() == 0 and distributed.world_size() == 1 and distributed.is_main()
    assert distributed.shard_indices(5).tolist() == [0, 1, 2, 3, 4]
    out = distributed.gather_records({"index": np.array([2, 0, 1]), "v": torch.tensor([20, 0, 10])})
    assert out["index"].tolist() == [0, 1, 2] and out["v"].tolist() == [0, 10, 20]
    with pytest.raises(ValueError):
        distributed.gather_records({"v": np.zeros(2)})
    with pytest.raises(ValueError):
        distributed.gather_records({"index": np.zeros(2), "v": np.zeros(3)})


SCRIPT = textwrap.dedent("""
    import json, sys, numpy as np, torch
    from advkit import distributed as d
    assert d.init_from_env()
    idx = d.shard_indices(7)
    recs = d.gather_records({"index": idx, "square": idx ** 2})
    m = d.all_reduce_mean(torch.tensor([float(d.rank())]))
    if d.is_main():
        json.dump({"index": recs["index"].tolist(), "square": recs["square"].tolist(), "mean": m.item(),
                   "world": d.world_size()}, open(sys.argv[1], "w"))
    else:
        assert recs is None
    d.barrier()
""")


def test_two_process_gather(tmp_path):
    script = tmp_path / "s.py"
    script.write_text(SCRIPT)
    out = tmp_path / "out.json"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
           str(script), str(out)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=90)
    assert r.returncode == 0, r.stderr[-2000:]
    import json
    res = json.loads(out.read_text())
    assert res["index"] == list(range(7)) and res["square"] == [i * i for i in range(7)]
    assert res["world"] == 2 and res["mean"] == 0.5
