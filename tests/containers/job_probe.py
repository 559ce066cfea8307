"""A training script that only reports what it was given: run as SageMaker would run ours.

Writes probe.json into SM_MODEL_DIR: its arguments, every SM_* variable, the files below the
job's /opt/ml (SAGEMAKER_BASE_DIR in the twin) outside the model folder, and the config files.
"""

import json
import os
import sys
from pathlib import Path

base = Path(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml"))
model_dir = Path(os.environ["SM_MODEL_DIR"])
# Every file a script can open below the base (followlinks: the twin's channels are symlinks).
files = sorted(str((Path(folder) / name).relative_to(base)) for folder, _, names in os.walk(base, followlinks=True)
               for name in names if not Path(folder, name).is_relative_to(model_dir)
               and Path(folder).relative_to(base).parts[:1] != ("code",))
config = {p.name: json.loads(p.read_text()) for p in sorted((base / "input" / "config").glob("*.json"))}
report = {"argv": sys.argv[1:], "base": str(base), "files": files, "config": config,
          "env": {k: v for k, v in os.environ.items() if k.startswith("SM_")}}
model_dir.mkdir(parents=True, exist_ok=True)
(model_dir / "probe.json").write_text(json.dumps(report, indent=2, sort_keys=True))
print("probe: wrote", model_dir / "probe.json")
