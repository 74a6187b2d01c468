"""The `dino_loss` mistakes the checks can recognise, one string each: every check that sees a
mistake's signature names it in exactly these words, so that one mistake is one diagnosis in the
report however many checks it fails.
"""

# -- the reduction over K and the softmax axes ---------------------------------------------------
MEAN_OVER_K = ("the cross-entropy is averaged over the K dimensions instead of summed, so the "
               "loss comes out K times too small (a uniform student gives log(K)/K, not log K)")
TEACHER_OVER_BATCH = ("the teacher's softmax runs over the batch axis (dim=0) instead of over the "
                      "K output dimensions")
STUDENT_OVER_BATCH = ("the student's log-softmax runs over the batch axis (dim=0) instead of over "
                      "the K output dimensions")
STUDENT_SOFTMAX = ("the student's side uses softmax instead of log_softmax: the cross-entropy "
                   "-sum_k P_teacher[k] * log P_student[k] needs the student's log-probabilities "
                   "(a uniform student then gives -1/K instead of log K)")
BATCH_SUMMED = "the cross-entropy is summed over the batch instead of averaged"

# -- the view pairs ------------------------------------------------------------------------------
SAME_VIEW = ("same-view pairs are included: each global view is also compared with itself (the "
             "teacher and the student see the same crop, an easy, useless target)")
PAIRS_SUMMED = "the pair losses are summed instead of averaged over the pairs"
ALL_PAIRS_DIVISOR = ("the sum skips same-view pairs but is divided by the number of all pairs "
                     "(G x V) instead of the number of terms added")
BY_STUDENT_VIEWS = ("the sum is divided by the number of student views instead of the number of "
                    "pairs")
BY_TEACHER_VIEWS = ("the sum is divided by the number of teacher views instead of the number of "
                    "pairs")
ONLY_SAME_VIEW = ("only same-view pairs are used: a view should be compared with every *other* "
                  "view, never with itself")
LOCAL_LEFT_OUT = ("the local views are left out: every student view, local crops included, must "
                  "match each teacher view")
GLOBAL_LEFT_OUT = ("the student's global views are left out: they too must match the other "
                   "global view of the teacher")

# -- the temperatures ----------------------------------------------------------------------------
TEMPS_SWAPPED = ("the temperatures are swapped: the student is divided by teacher_temp (and the "
                 "teacher by student_temp)")
STUDENT_MULTIPLIED = "the student's logits are multiplied by student_temp instead of divided"
STUDENT_NOT_DIVIDED = "the student's logits are not divided by the temperature"
STUDENT_TEMP_HARD_CODED = "student_temp is hard-coded to 0.1: the argument is ignored"
TEACHER_MULTIPLIED = "the teacher's logits are multiplied by teacher_temp instead of divided"


def both(*mistakes):
    """Two mistakes made together, in the words the checks use for each (None: not made)."""
    found = [m for m in mistakes if m]
    return "; and ".join(found) if found else None


# -- gradients -----------------------------------------------------------------------------------
STUDENT_DETACHED = "the student's side is detached as well: no gradient can reach the student"
