"""Which backups `backup prune` keeps: a pure function of their times and the policy."""

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class Policy:
    keep_last: int = 3
    keep_daily: int = 7
    keep_weekly: int = 4
    keep_monthly: int = 12


def _day(moment: datetime) -> Hashable:
    return moment.astimezone(UTC).date()


def _week(moment: datetime) -> Hashable:
    return moment.astimezone(UTC).isocalendar()[:2]


def _month(moment: datetime) -> Hashable:
    utc = moment.astimezone(UTC)
    return (utc.year, utc.month)


def kept_indices(created: Sequence[datetime], policy: Policy) -> set[int]:
    """The positions in `created` of the backups to keep: the newest `keep_last`, and the
    newest backup of each of the newest `keep_daily` days, `keep_weekly` ISO weeks and
    `keep_monthly` months (UTC) that have a backup. The newest backup is always kept."""
    order = sorted(range(len(created)), key=lambda index: created[index], reverse=True)
    kept = set(order[: max(policy.keep_last, 1)])
    periods: list[tuple[int, Callable[[datetime], Hashable]]] = [
        (policy.keep_daily, _day),
        (policy.keep_weekly, _week),
        (policy.keep_monthly, _month),
    ]
    for count, period in periods:
        seen: set[Hashable] = set()
        for index in order:
            if len(seen) >= count:
                break
            key = period(created[index])
            if key not in seen:
                seen.add(key)
                kept.add(index)
    return kept
