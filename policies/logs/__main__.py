"""``python -m payroute.policies.logs docs/log_schema.md``: write the log schema documentation."""

import sys

from payroute.policies.logs.reading import write_log_schema

write_log_schema(sys.argv[1] if len(sys.argv) > 1 else "docs/log_schema.md")
