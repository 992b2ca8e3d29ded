"""Write a zoo SmallCNN's weights as a ``torch.save`` state dict in ``trades_smallcnn.py``'s layout.

    python benchmarks/models/export_weights.py zoo:mnist5k-pgdat out/user_pgdat.pt

The layers correspond one to one, in order; the script checks that the two definitions compute the
same logits before it writes anything.
"""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from trades_smallcnn import SmallCNN  # noqa: E402

from advkit.sources.models import load_model  # noqa: E402


def main(ref: str, out: str) -> None:
    zoo = load_model(ref).eval()
    user = SmallCNN().eval()
    user.load_state_dict(dict(zip(user.state_dict(), zoo.net.state_dict().values())))
    x = torch.rand(16, 1, 28, 28)
    with torch.no_grad():
        gap = float((zoo(x) - user(x)).abs().max())
    if gap > 1e-5:
        raise SystemExit(f"the layouts do not correspond: logits differ by {gap}")
    torch.save(user.state_dict(), out)
    print(f"wrote {out} (logits agree to {gap:.1e})")


if __name__ == "__main__":
    main(*sys.argv[1:3])
