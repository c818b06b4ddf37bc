"""The write fence's bookkeeping (state/fence.py): a read sent after the process saw a fence
must not find less, an epoch seen replaced must not come back, and reads that merely raced
with a change are not taken for a rollback."""
from extender.state.fence import FenceWatch


def test_a_lower_fence_under_the_same_epoch_went_back_in_time() -> None:
    watch = FenceWatch()
    assert watch.check(watch.mark(), "e1", 10) is None
    assert watch.check(watch.mark(), "e1", 12) is None
    assert "went back in time" in (watch.check(watch.mark(), "e1", 11) or "")


def test_a_read_sent_before_a_higher_one_was_seen_is_no_rollback() -> None:
    watch = FenceWatch()
    watch.check(watch.mark(), "e1", 10)
    early = watch.mark()  # sent while the highest seen was 10
    assert watch.check(watch.mark(), "e1", 14) is None  # another thread's later read, answered first
    assert watch.check(early, "e1", 12) is None


def test_an_epoch_seen_replaced_must_not_come_back() -> None:
    watch = FenceWatch()
    watch.check(watch.mark(), "e1", 50)
    racing = watch.mark()  # a read sent before the new epoch was seen
    assert watch.check(watch.mark(), "e2", 3) is None  # a load: a new epoch, its fence restarts lower
    assert watch.check(racing, "e1", 50) is None  # answered before the load, processed after it
    assert "replaced" in (watch.check(watch.mark(), "e1", 50) or "")


def test_no_epoch_is_left_to_the_epoch_check() -> None:
    watch = FenceWatch()
    watch.check(watch.mark(), "e1", 10)
    assert watch.check(watch.mark(), "", 0) is None
