"""channel_models is the bottom layer: it must import neither torch, simpy nor wsim."""

import subprocess
import sys
from pathlib import Path

CODE = """
import sys
import channel_models
channel_models.pathloss_db(100.0)
bad = sorted(m for m in sys.modules if m.split('.')[0] in {'torch', 'simpy', 'wsim'})
print(' '.join(bad))
"""


def test_channel_models_imports_no_torch_simpy_wsim() -> None:
    out = subprocess.run(
        [sys.executable, "-c", CODE],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert out.stdout.strip() == "", f"channel_models pulled in: {out.stdout.strip()}"
