"""Step 1: GTSRB (official or Kaggle layout) or folder-per-class data -> track-aware split -> RecordIO + manifest.json."""
