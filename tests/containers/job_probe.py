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
files = sorted(str(p.relative_to(base)) for p in base.rglob("*")
               if p.is_file() and model_dir not in p.parents and "code" not in p.relative_to(base).parts[:1])
config = {p.name: json.loads(p.read_text()) for p in sorted((base / "input" / "config").glob("*.json"))}
report = {"argv": sys.argv[1:], "base": str(base), "files": files, "config": config,
          "env": {k: v for k, v in os.environ.items() if k.startswith("SM_")}}
model_dir.mkdir(parents=True, exist_ok=True)
(model_dir / "probe.json").write_text(json.dumps(report, indent=2, sort_keys=True))
print("probe: wrote", model_dir / "probe.json")
