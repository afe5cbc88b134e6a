"""The app's statistics computed directly on folders the DS may read (the owners' mocks).

    python -m fed_app.preview OUT_DIR DATA_DIR...

Writes OUT_DIR/aggregate.json and OUT_DIR/figures/ exactly as the ServerApp does for
the private data, so the two can be put side by side.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from fed_app.atomic import atomic_file
from fed_app.figures import write_figures
from fed_app.stats import aggregate, load_csvs, local_stats


def preview(out_dir: Path, data_dirs: list[Path], dataset: str = "") -> dict:
    features = aggregate([local_stats(load_csvs(d)) for d in data_dirs])
    result = {"dataset": dataset, "source": "mock", "folders": [str(d) for d in data_dirs],
              "replied": len(data_dirs), "expected": len(data_dirs), "features": features}
    write_figures(features, out_dir / "figures")
    with atomic_file(out_dir / "aggregate.json", "w", encoding="utf-8") as fh:
        json.dump(result, fh, indent=2)
    return result


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: python -m fed_app.preview OUT_DIR DATA_DIR...")
    import os

    preview(Path(sys.argv[1]), [Path(a) for a in sys.argv[2:]], os.environ.get("DATASET_NAME", ""))
