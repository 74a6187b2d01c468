"""The one vocabulary of outcomes, shared by the report, the command line and its table.

A check ends PASS, FAIL, TODO (the learner's function still raises NotImplementedError) or SKIP
(not run, after an earlier check ran out of time). A graded name in a notebook ends as one of
the first three, or MISSING (the notebook never defines it), NOT_GRADED (the notebook could
not be graded at all) or VOID (tampering was found: see grader.guard). A notebook's run ends
as one of the NOTEBOOK_* states.
"""

PASS = "pass"
FAIL = "fail"
TODO = "not implemented"
SKIP = "not run"
MISSING = "missing"
NOT_GRADED = "not graded"
VOID = "void"  # the code under test replaced what the checks rely on, or forged a result

NOTEBOOK_OK = "ok"
NOTEBOOK_CELL_ERRORS = "cell errors"  # some cells raised; the rest still ran and were graded
NOTEBOOK_TIMED_OUT = "timed out"
NOTEBOOK_KERNEL_DIED = "kernel died"
NOTEBOOK_UNREADABLE = "unreadable"
NOTEBOOK_ERROR = "error"  # the grading itself could not run or report
NOTEBOOK_VOID = "void"  # tampering found: no row of this notebook counts

# A notebook whose graded names count: it ran (possibly with some failing cells).
NOTEBOOK_GRADABLE = (NOTEBOOK_OK, NOTEBOOK_CELL_ERRORS)
