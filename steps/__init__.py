"""The step kinds of the workflow language, one module each (steps/task.py, ...).

Each kind's module holds its model and how it is checked and drawn (steps/base.py says
what a kind declares); steps/kinds.py lists them in KINDS and builds the `Step` union.
definitions/language.py re-exports the models under their old names.
"""

# The definitions package imports these modules (definitions.models -> .language ->
# steps.*), and they import definitions.names and definitions.graph: importing it first
# lets `import steps` work before anything else imported definitions.
import definitions  # noqa: F401  # isort: skip
from steps.kinds import KINDS, Step

__all__ = ["KINDS", "Step"]
