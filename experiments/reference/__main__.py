"""``python -m payroute.experiments.reference [DIR]``: rewrite every generated reference under docs/ (or DIR)."""

import sys
from pathlib import Path

from payroute.experiments.reference import DOCS, write_references

for path in write_references(Path(sys.argv[1]) if len(sys.argv) > 1 else DOCS):
    print(path)
