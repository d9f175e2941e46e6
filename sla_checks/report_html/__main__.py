"""``python -m sla_checks.report_html REPORT.json [-o OUT.html]``."""

import sys

from sla_checks.report_html.cli import main

sys.exit(main())
