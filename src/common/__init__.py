"""Code that more than one step needs; shipped in every image. Each module is one contract."""
