"""When to poll a task next, from what the service says, within a budget. No bpy here.

The official SDK waits max(2 s, running_left_time / 2) between polls: sparse, but the poll
that sees success comes on average half a poll after it. Here the schedule works out the
earliest moment the task can be done (its time left, whose whole seconds may be rounded
up, narrowed by the rate its progress rises), waits for it, then polls every FAST seconds
until it is; it pays for that by polling sparsely before. Far from the end it waits half
the time left, as the SDK does, so a changed estimate is read again in time; queued it
backs off (unless next in line), and with nothing to go by it backs off from poll_min to
poll_max. Over a task's life it never polls more than once a second on average (once per
poll_min when a test or dev setting makes that shorter), and what it saved is spent at most
BURST polls at once: the budget is checked on every wait, so no estimate, right or wrong
(a task at 99 % for a minute), can spend more.
"""

from __future__ import annotations

FAST = 0.1  # seconds between polls once the task may be done any moment
SPACING = 1.0  # seconds per poll, on average over a task's life, at the least
BURST = 10  # polls above that average at most, however much was saved
BACK_OFF = 1.5


class Schedule:
    """One task's polls. `start` is the monotonic time it was created when `fresh` (we
    just created it: its first poll waits for news), else when following it began (a
    resumed or attached task: its first poll is at once, outside the budget)."""

    def __init__(self, start, fresh=True):
        self.start = start
        self.fresh = fresh
        self.polls = 0
        self.due = start  # a steady rate's time for the next poll (bounds the bursts)
        self.idle = 0  # polls in a row with nothing to go by
        self.queued = 0  # polls in a row that said queued
        self.since = None  # (time, progress) of the first running poll since progress fell
        self.last = 0  # the progress the last running poll read

    def first(self, now, poll_min):
        """Seconds from `now` until the first poll."""
        return self._budget(now, poll_min if self.fresh else 0.0, poll_min)

    def after(self, now, status, progress, left, position, poll_min, poll_max):
        """Seconds from `now` until the next poll, after the one answered at `now` said the
        task is still `status` ('queued', 'running', or one nobody knows) at `progress`
        (0-100), with `left` seconds to go and `position` in the queue (each -1 when the
        service did not say)."""
        self.polls += 1
        self.due = max(self.due, now) + min(poll_min, SPACING)
        if status == "queued":
            self.since, self.idle = None, 0
            self.queued += 1
            wanted = poll_min if position == 0 else self._back_off(self.queued, poll_min, poll_max)
            return self._budget(now, wanted, poll_min)
        self.queued = 0
        soonest = self._soonest(now, progress, left) if status == "running" else None
        if soonest is None:
            self.idle += 1
            wanted = self._back_off(self.idle, poll_min, poll_max)
        else:
            self.idle = 0
            wanted = (min(poll_max, soonest / 2) if soonest > 2 * poll_min
                      else max(min(FAST, poll_min), soonest))
        return self._budget(now, wanted, poll_min)

    def _soonest(self, now, progress, left):
        """The fewest seconds the task may still take, or None when nothing says."""
        if self.since is None or progress < self.last:
            self.since = (now, progress)
        self.last = progress
        by_progress = None
        if progress >= 100:
            by_progress = 0.0
        elif progress > self.since[1] and now > self.since[0]:
            then, was = self.since
            # Each reading may be up to 1 % under the truth (whole percent): the fastest
            # rate the two allow, to the earliest finish.
            fastest = (progress - was + 1) / (now - then)
            by_progress = max(0.0, (99 - progress) / fastest)
        if left > 0:
            low = max(0.0, left - 1)  # whole seconds, maybe rounded up
            return low if by_progress is None else min(left, max(low, by_progress))
        return by_progress

    @staticmethod
    def _back_off(count, poll_min, poll_max):
        return min(poll_max, poll_min * BACK_OFF ** (count - 1))

    def _budget(self, now, wanted, poll_min):
        """`wanted`, or longer when the next poll would spend more than the budget: by the
        time of poll n, at most n polls a SPACING (or poll_min) since the start, and no
        more than BURST ahead of a steady rate."""
        spacing = min(poll_min, SPACING)
        counted = self.polls + (1 if self.fresh else 0)
        earliest = max(self.start + counted * spacing, self.due - (BURST - 1) * spacing)
        return max(wanted, earliest - now)
