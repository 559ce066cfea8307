"""Step 1: GTSRB (official or Kaggle layout) -> track-aware split -> RecordIO + manifest.json."""
